"""Processors that change tones, orientation or mode: Adjust, Reflection, Transpose, ..."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar, Literal, Protocol

from PIL import Image, ImageColor, ImageEnhance, ImageFilter, ImageMode, ImageOps

from ..exceptions import ImproperlyConfigured
from .base import QUANTIZE_COST, Cost, copies, image_bytes
from .orientation import exif_orientation
from .resampling import palette_mode, resolve_palette

__all__ = ["Adjust", "Convert", "GaussianBlur", "Reflection", "Transpose"]


class _Enhancer(Protocol):
    def enhance(self, factor: float) -> Image.Image: ...


@dataclasses.dataclass(frozen=True)
class Adjust:
    """Enhance color (saturation), brightness, contrast and sharpness; 1.0 keeps each as is.

    As in pilkit, the result is RGBA and the alpha channel is kept.
    """

    color: float = 1.0
    brightness: float = 1.0
    contrast: float = 1.0
    sharpness: float = 1.0

    def process(self, img: Image.Image) -> Image.Image:
        """Return ``img`` as RGBA with the enhancements applied in pilkit's order."""
        original = img = img.convert("RGBA")
        steps: tuple[tuple[float, Callable[[Image.Image], _Enhancer], bool], ...] = (
            (self.color, ImageEnhance.Color, True),
            (self.brightness, ImageEnhance.Brightness, False),
            (self.contrast, ImageEnhance.Contrast, True),
            (self.sharpness, ImageEnhance.Sharpness, False),
        )
        for factor, enhancer, restore_alpha in steps:
            if factor == 1.0:
                continue
            try:
                img = enhancer(img).enhance(factor)
            except ValueError:
                continue
            if restore_alpha:
                # Color and Contrast go through L mode and lose the alpha channel.
                img = Image.merge("RGBA", (*img.split()[:3], original.getchannel("A")))
        return img

    def cost(self, size: tuple[int, int], mode: str) -> Cost:
        """The memory and size of :meth:`process`: RGBA copies, about four at the peak."""
        factors = (self.color, self.brightness, self.contrast, self.sharpness)
        count = 1.0 if all(factor == 1.0 for factor in factors) else 4.5
        return Cost(size, "RGBA", copies(size, count), size)


@dataclasses.dataclass(frozen=True)
class Reflection:
    """Add a reflection below the image, fading into ``background_color``.

    ``size`` is the reflection's height as a fraction of the image's, ``opacity`` its
    starting opacity. The result is RGBA, as in pilkit.
    """

    background_color: str = "#FFFFFF"
    size: float = 0.0
    opacity: float = 0.6

    def __post_init__(self) -> None:
        try:
            ImageColor.getrgb(self.background_color)
        except ValueError:
            msg = (
                f"Reflection: unknown background_color {self.background_color!r}; "
                "give a colour name or a '#rrggbb' string."
            )
            raise ImproperlyConfigured(msg) from None

    def process(self, img: Image.Image) -> Image.Image:
        """Return a taller RGBA image: ``img`` and its faded reflection below."""
        background_color = ImageColor.getrgb(self.background_color)
        img = img.convert("RGBA")
        reflection = img.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
        background = Image.new("RGBA", img.size, background_color)
        start = int(255 - (255 * self.opacity))
        steps = int(255 * self.size)
        # pilkit divides by steps; with size 0 the gradient is unused (no reflection).
        increment = (255 - start) / float(steps) if steps else 0.0
        gradient = bytes(int(y * increment + start) if y < steps else 255 for y in range(255))
        mask = Image.frombytes("L", (1, 255), gradient)
        alpha_mask = mask.resize(img.size, Image.Resampling.BICUBIC)
        reflection = Image.composite(background, reflection, alpha_mask)
        reflection_height = int(img.height * self.size)
        reflection = reflection.crop((0, 0, img.width, reflection_height))
        composite = Image.new(
            "RGBA", (img.width, img.height + reflection_height), background_color
        )
        composite.paste(img, (0, 0))
        composite.paste(reflection, (0, img.height))
        return composite

    def cost(self, size: tuple[int, int], mode: str) -> Cost:
        """The memory and size of :meth:`process` on an image of ``size`` and ``mode``."""
        fraction = max(0.0, self.size)
        out = (size[0], size[1] + max(0, int(size[1] * self.size)))
        # The flipped copy, the background and the blend, then the taller result.
        return Cost.of(out, "RGBA", copies(size, max(4.5, 3.5 + 2 * fraction)))


TransposeMethod = Literal["auto"] | Image.Transpose


@dataclasses.dataclass(frozen=True, init=False)
class Transpose:
    """Rotate or flip the image: ``Transpose(Transpose.ROTATE_90, Transpose.FLIP_VERTICAL)``.

    ``Transpose.AUTO`` (the default) turns the image upright from its EXIF orientation
    and ignores the other methods.
    """

    AUTO: ClassVar[Literal["auto"]] = "auto"
    FLIP_HORIZONTAL: ClassVar[Image.Transpose] = Image.Transpose.FLIP_LEFT_RIGHT
    FLIP_VERTICAL: ClassVar[Image.Transpose] = Image.Transpose.FLIP_TOP_BOTTOM
    ROTATE_90: ClassVar[Image.Transpose] = Image.Transpose.ROTATE_90
    ROTATE_180: ClassVar[Image.Transpose] = Image.Transpose.ROTATE_180
    ROTATE_270: ClassVar[Image.Transpose] = Image.Transpose.ROTATE_270

    methods: tuple[TransposeMethod, ...]

    def __init__(self, *methods: TransposeMethod) -> None:
        normalized: list[TransposeMethod] = []
        for method in methods:
            if method == Transpose.AUTO:
                normalized = [Transpose.AUTO]
                break
            try:
                normalized.append(Image.Transpose(method))
            except ValueError:
                msg = (
                    f"Unknown transpose method {method!r}: use Transpose.AUTO, "
                    "Transpose.FLIP_HORIZONTAL, FLIP_VERTICAL, ROTATE_90, ROTATE_180 "
                    "or ROTATE_270."
                )
                raise ImproperlyConfigured(msg) from None
        object.__setattr__(self, "methods", tuple(normalized or [Transpose.AUTO]))

    def process(self, img: Image.Image) -> Image.Image:
        """Return ``img`` transposed by each method in order, or upright for AUTO."""
        if self.methods == (Transpose.AUTO,):
            if exif_orientation(img) not in range(2, 9):
                return img
            # Pillow does the same steps in one transpose and also drops the
            # orientation tag from the result, so it is never applied twice.
            return ImageOps.exif_transpose(img)
        for method in self.methods:
            if method != Transpose.AUTO:
                img = img.transpose(method)
        return img

    def cost(self, size: tuple[int, int], mode: str) -> Cost:
        """The memory and size of :meth:`process`: a copy per method, two alive at once.

        For ``AUTO`` the orientation is only known from the image: the size is
        guessed, and the steps after this one are checked again once it has run.
        """
        if self.methods == (Transpose.AUTO,):
            return Cost(size, mode, image_bytes(size, mode), size, guessed=True)
        out = size
        for method in self.methods:
            if method in _SWAPPING:
                out = (out[1], out[0])
        count = min(len(self.methods), 2)
        return Cost(out, mode, count * image_bytes(size, mode), out)


_SWAPPING = frozenset(
    {
        Image.Transpose.ROTATE_90,
        Image.Transpose.ROTATE_270,
        Image.Transpose.TRANSPOSE,
        Image.Transpose.TRANSVERSE,
    }
)


@dataclasses.dataclass(frozen=True)
class Convert:
    """Convert the image to another mode, e.g. ``Convert("RGB")``."""

    mode: str

    def __post_init__(self) -> None:
        try:
            ImageMode.getmode(self.mode)
        except KeyError:
            msg = f"Convert: unknown mode {self.mode!r}; use a Pillow mode such as 'RGB' or 'L'."
            raise ImproperlyConfigured(msg) from None

    def process(self, img: Image.Image) -> Image.Image:
        """Return ``img`` converted to ``mode``."""
        return img.convert(self.mode)

    def cost(self, size: tuple[int, int], mode: str) -> Cost:
        """The memory and size of :meth:`process` on an image of ``size`` and ``mode``."""
        extra = image_bytes(size, self.mode)
        if self.mode in ("P", "PA") and mode not in ("P", "PA"):
            # RGBA images are quantized: a hash of every distinct colour.
            extra += int(size[0] * size[1] * QUANTIZE_COST)
        elif mode in ("P", "PA"):
            extra += copies(size, 1)  # through the palette's mode
        return Cost(size, self.mode, extra, size)


@dataclasses.dataclass(frozen=True)
class GaussianBlur:
    """Blur the image with a Gaussian filter of ``radius``."""

    radius: float

    def process(self, img: Image.Image) -> Image.Image:
        """Return ``img`` blurred; palette images are converted first (pilkit fails on them)."""
        return resolve_palette(img).filter(ImageFilter.GaussianBlur(self.radius))

    def cost(self, size: tuple[int, int], mode: str) -> Cost:
        """The memory and size of :meth:`process`: the blurred image and a work copy."""
        resolved = palette_mode(mode)
        converted = 0 if resolved == mode else image_bytes(size, resolved)
        return Cost(size, resolved, converted + copies(size, 2.25, resolved), size)
