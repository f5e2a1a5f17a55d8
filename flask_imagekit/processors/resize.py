"""Processors that scale the image: Resize, ResizeToCover/Fill/Fit, SmartResize, Thumbnail."""

from __future__ import annotations

import dataclasses

from PIL import Image

from ..exceptions import ImproperlyConfigured
from .adjust import Convert
from .base import (
    Anchor,
    AnchorLike,
    ColorLike,
    Cost,
    ResizePlan,
    chain_cost,
    check_size,
    freeze_color,
    processor_cost,
    resize_cost,
    unchanged,
)
from .canvas import ResizeCanvas
from .crop import Crop, SmartCrop
from .resampling import lanczos_resize, palette_mode, resolve_palette

__all__ = [
    "Resize",
    "ResizeToCover",
    "ResizeToFill",
    "ResizeToFit",
    "SmartResize",
    "Thumbnail",
]


def _full_box(size: tuple[int, int]) -> tuple[float, float, float, float]:
    return (0, 0, size[0], size[1])


def _scaled(size: tuple[int, int], ratio: float) -> tuple[int, int]:
    # pilkit's rounding; at least one pixel where pilkit would fail on a zero size.
    return (max(1, int(round(size[0] * ratio))), max(1, int(round(size[1] * ratio))))


def _require_both(owner: str, width: int | None, height: int | None) -> tuple[int, int]:
    if width is None or height is None:
        msg = f"{owner} needs both a width and a height, got {width!r} x {height!r}."
        raise ImproperlyConfigured(msg)
    return width, height


@dataclasses.dataclass(frozen=True)
class Resize:
    """Resize to exactly ``width`` x ``height``; with ``upscale=False`` only when shrinking.

    As in pilkit, ``upscale=False`` resizes only if the image is larger in both
    dimensions, and palette images are converted before resampling.
    """

    width: int
    height: int
    upscale: bool = True

    def __post_init__(self) -> None:
        _require_both("Resize", self.width, self.height)
        check_size("Resize", width=self.width, height=self.height)

    def resizes(self, size: tuple[int, int]) -> bool:
        """Tell whether an image of ``size`` gets resized (pilkit's upscale rule)."""
        return self.upscale or (self.width < size[0] and self.height < size[1])

    def process(self, img: Image.Image) -> Image.Image:
        """Return ``img`` resized with LANCZOS, or ``img`` itself when it is not resized."""
        if not self.resizes(img.size):
            return img
        return lanczos_resize(resolve_palette(img), (self.width, self.height))

    def plan(self, size: tuple[int, int]) -> ResizePlan | None:
        """The whole image resized to ``width`` x ``height``; None when it is not resized."""
        if not self.resizes(size):
            return None
        return ResizePlan(_full_box(size), (self.width, self.height))

    def cost(self, size: tuple[int, int], mode: str) -> Cost:
        """The memory and size of :meth:`process` on an image of ``size`` and ``mode``."""
        if not self.resizes(size):
            return unchanged(size, mode)
        out = (self.width, self.height)
        return resize_cost(size, palette_mode(mode), None, out, convert=mode)


@dataclasses.dataclass(frozen=True)
class ResizeToCover:
    """Resize, keeping the aspect ratio, to the smallest size covering ``width`` x ``height``."""

    width: int
    height: int
    upscale: bool = True

    def __post_init__(self) -> None:
        _require_both("ResizeToCover", self.width, self.height)
        check_size("ResizeToCover", width=self.width, height=self.height)

    def cover_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The size an image of ``size`` is resized to (when it is resized)."""
        ratio = max(float(self.width) / size[0], float(self.height) / size[1])
        return _scaled(size, ratio)

    def resize_for(self, size: tuple[int, int]) -> Resize:
        """The :class:`Resize` this processor does on an image of ``size``."""
        return Resize(*self.cover_size(size), upscale=self.upscale)

    def process(self, img: Image.Image) -> Image.Image:
        """Return ``img`` resized to cover the target size."""
        return self.resize_for(img.size).process(img)

    def plan(self, size: tuple[int, int]) -> ResizePlan | None:
        """The whole image resized to its cover size; None when it is not resized."""
        return self.resize_for(size).plan(size)

    def cost(self, size: tuple[int, int], mode: str) -> Cost:
        """The memory and size of :meth:`process` on an image of ``size`` and ``mode``."""
        return self.resize_for(size).cost(size, mode)


@dataclasses.dataclass(frozen=True)
class ResizeToFill:
    """Resize to cover ``width`` x ``height``, then crop to that size at ``anchor``.

    As in pilkit the result is RGBA (the crop goes through ``Crop``), the anchor
    defaults to the centre and ``upscale=False`` leaves small images uncropped-up.
    The resize and the crop are done in one pass: only the kept region is resampled.
    """

    width: int | None = None
    height: int | None = None
    anchor: AnchorLike | None = None
    upscale: bool = True

    def __post_init__(self) -> None:
        _require_both("ResizeToFill", self.width, self.height)
        check_size("ResizeToFill", width=self.width, height=self.height)
        # No anchor means the centre, as in pilkit; stored as such so equal means equal.
        object.__setattr__(self, "anchor", Anchor.validate(self.anchor or Anchor.CENTER))

    def plan(self, size: tuple[int, int]) -> ResizePlan | None:
        """The anchored crop region, mapped back to the input, resized to the target size.

        None when the image is not resized (``upscale=False`` and not larger).
        """
        width, height = _require_both("ResizeToFill", self.width, self.height)
        cover = ResizeToCover(width, height, upscale=self.upscale).resize_for(size)
        if not cover.resizes(size):
            return None
        # Where pilkit's Crop/ResizeCanvas would cut the resized image ...
        new_width, new_height = cover.width, cover.height
        crop_width, crop_height = min(new_width, width), min(new_height, height)
        anchor_x, anchor_y = Anchor.get_tuple(self.anchor or Anchor.CENTER)
        left = -int(float(crop_width - new_width) * float(anchor_x))
        top = -int(float(crop_height - new_height) * float(anchor_y))
        # ... in input pixels. Multiplying before dividing keeps the edges exact.
        src_width, src_height = size
        box = (
            left * src_width / new_width,
            top * src_height / new_height,
            (left + crop_width) * src_width / new_width,
            (top + crop_height) * src_height / new_height,
        )
        return ResizePlan(box, (crop_width, crop_height), (Convert("RGBA"),))

    def process(self, img: Image.Image) -> Image.Image:
        """Return the anchored ``width`` x ``height`` RGBA crop of the covering resize."""
        plan = self.plan(img.size)
        if plan is None:
            width, height = _require_both("ResizeToFill", self.width, self.height)
            return Crop(width, height, anchor=self.anchor).process(img)
        return plan.apply(img)

    def cost(self, size: tuple[int, int], mode: str) -> Cost:
        """The memory and size of :meth:`process` on an image of ``size`` and ``mode``."""
        plan = self.plan(size)
        if plan is None:
            width, height = _require_both("ResizeToFill", self.width, self.height)
            return Crop(width, height, anchor=self.anchor).cost(size, mode)
        return plan.cost(size, mode)


@dataclasses.dataclass(frozen=True)
class SmartResize:
    """Resize to cover ``width`` x ``height``, then ``SmartCrop`` (entropy) to that size."""

    width: int
    height: int
    upscale: bool = True

    def __post_init__(self) -> None:
        _require_both("SmartResize", self.width, self.height)
        check_size("SmartResize", width=self.width, height=self.height)

    def process(self, img: Image.Image) -> Image.Image:
        """Return ``img`` resized to cover the target size and smart-cropped to it."""
        img = ResizeToCover(self.width, self.height, upscale=self.upscale).process(img)
        return SmartCrop(self.width, self.height).process(img)

    def plan(self, size: tuple[int, int]) -> ResizePlan | None:
        """The covering resize, then ``SmartCrop``; None when the image is not resized."""
        plan = ResizeToCover(self.width, self.height, upscale=self.upscale).plan(size)
        if plan is None:
            return None
        return plan._replace(after=(SmartCrop(self.width, self.height),))

    def cost(self, size: tuple[int, int], mode: str) -> Cost:
        """The memory and size of :meth:`process` on an image of ``size`` and ``mode``."""
        cover = ResizeToCover(self.width, self.height, upscale=self.upscale)
        return chain_cost((cover, SmartCrop(self.width, self.height)), size, mode)


@dataclasses.dataclass(frozen=True)
class ResizeToFit:
    """Resize, keeping the aspect ratio, to fit within ``width`` x ``height``.

    Either dimension may be None. With ``mat_color`` the result is padded to exactly
    ``width`` x ``height`` (RGBA, image placed at ``anchor``), as in pilkit.
    """

    width: int | None = None
    height: int | None = None
    upscale: bool = True
    mat_color: ColorLike | None = None
    anchor: AnchorLike | None = Anchor.CENTER

    def __post_init__(self) -> None:
        check_size("ResizeToFit", width=self.width, height=self.height)
        if self.width is None and self.height is None:
            msg = "ResizeToFit needs a width, a height or both; got neither."
            raise ImproperlyConfigured(msg)
        if self.mat_color is not None:
            _require_both("ResizeToFit with a mat_color", self.width, self.height)
            object.__setattr__(self, "mat_color", freeze_color(self.mat_color))
        object.__setattr__(self, "anchor", Anchor.validate(self.anchor or Anchor.CENTER))

    def fit_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The size an image of ``size`` is resized to (when it is resized)."""
        ratios = []
        if self.width is not None:
            ratios.append(float(self.width) / size[0])
        if self.height is not None:
            ratios.append(float(self.height) / size[1])
        # min() of the given dimensions is pilkit's rule; one is always given (init).
        return _scaled(size, min(ratios))

    def _mat(self) -> ResizeCanvas | None:
        if self.mat_color is None:
            return None
        width, height = _require_both("ResizeToFit with a mat_color", self.width, self.height)
        return ResizeCanvas(width, height, self.mat_color, anchor=self.anchor)

    def process(self, img: Image.Image) -> Image.Image:
        """Return ``img`` resized to fit, on its mat when ``mat_color`` is set."""
        img = Resize(*self.fit_size(img.size), upscale=self.upscale).process(img)
        mat = self._mat()
        return img if mat is None else mat.process(img)

    def plan(self, size: tuple[int, int]) -> ResizePlan | None:
        """The whole image resized to fit, then the mat; None when it is not resized."""
        plan = Resize(*self.fit_size(size), upscale=self.upscale).plan(size)
        mat = self._mat()
        if plan is None or mat is None:
            return plan
        return plan._replace(after=(mat,))

    def cost(self, size: tuple[int, int], mode: str) -> Cost:
        """The memory and size of :meth:`process` on an image of ``size`` and ``mode``."""
        resize = Resize(*self.fit_size(size), upscale=self.upscale)
        mat = self._mat()
        return chain_cost((resize,) if mat is None else (resize, mat), size, mode)


@dataclasses.dataclass(frozen=True)
class Thumbnail:
    """Make a thumbnail with ``SmartResize``, ``ResizeToFill`` or ``ResizeToFit``, as pilkit.

    An anchor implies ``crop``; by default it crops when both dimensions are given, and
    then by entropy (``SmartResize``) unless ``anchor`` or ``crop=True`` was given
    (``ResizeToFill``). Without crop it fits (``ResizeToFit``). No upscaling unless
    ``upscale=True``.
    """

    width: int | None = None
    height: int | None = None
    anchor: AnchorLike | None = None
    crop: bool | None = None
    upscale: bool | None = None

    def __post_init__(self) -> None:
        check_size("Thumbnail", width=self.width, height=self.height)
        anchor, crop = self.anchor, self.crop
        if anchor:
            if crop is False:
                msg = "Thumbnail: an anchor point needs crop=True (or leave crop unset)."
                raise ImproperlyConfigured(msg)
            crop = True
        elif crop is None:
            # Crop when both dimensions are given; with only one, resize to fit.
            crop = self.width is not None and self.height is not None
            if crop and anchor is None:
                anchor = "auto"
        if crop and (not self.width or not self.height):
            msg = (
                "Thumbnail: cropping needs both a width and a height; give both, "
                "or crop=False to resize to fit."
            )
            raise ImproperlyConfigured(msg)
        if not crop and self.width is None and self.height is None:
            msg = "Thumbnail needs a width, a height or both; got neither."
            raise ImproperlyConfigured(msg)
        if crop and anchor is None:
            anchor = Anchor.CENTER  # crop=True without an anchor: ResizeToFill's default
        if anchor is not None and anchor != "auto":
            anchor = Anchor.validate(anchor)
        object.__setattr__(self, "anchor", anchor)
        object.__setattr__(self, "crop", bool(crop))
        object.__setattr__(self, "upscale", bool(self.upscale))

    @property
    def processor(self) -> SmartResize | ResizeToFill | ResizeToFit:
        """The processor this thumbnail delegates to, chosen as pilkit does."""
        upscale = bool(self.upscale)
        if self.crop:
            width, height = _require_both("Thumbnail with crop", self.width, self.height)
            if self.anchor == "auto":
                return SmartResize(width, height, upscale=upscale)
            return ResizeToFill(width, height, anchor=self.anchor, upscale=upscale)
        return ResizeToFit(self.width, self.height, upscale=upscale)

    def process(self, img: Image.Image) -> Image.Image:
        """Return ``img`` processed by :attr:`processor`."""
        return self.processor.process(img)

    def plan(self, size: tuple[int, int]) -> ResizePlan | None:
        """The plan of :attr:`processor`."""
        return self.processor.plan(size)

    def cost(self, size: tuple[int, int], mode: str) -> Cost:
        """The cost of :attr:`processor`."""
        return processor_cost(self.processor, size, mode)
