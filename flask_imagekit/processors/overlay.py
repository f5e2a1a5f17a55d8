"""Processors that composite or change transparency: MakeOpaque, SetOpacity, overlays."""

from __future__ import annotations

import dataclasses
import hashlib
import typing as t

from PIL import Image

from ..exceptions import ImproperlyConfigured
from .base import (
    Anchor,
    AnchorLike,
    ColorLike,
    Cost,
    copies,
    freeze_color,
    image_bytes,
)
from .resampling import palette_mode, resolve_palette

__all__ = ["ColorOverlay", "ImageOverlay", "MakeOpaque", "SetOpacity"]


def _check_opacity(owner: str, name: str, value: float) -> None:
    if not 0 <= value <= 1:
        msg = f"{owner}: {name} must be between 0 (transparent) and 1 (opaque), not {value!r}."
        raise ImproperlyConfigured(msg)


def _scale_alpha(img: Image.Image, opacity: float) -> Image.Image:
    """Multiply the alpha of ``img``, an RGBA image the caller owns, by ``opacity``."""
    if opacity != 1:
        img.putalpha(img.getchannel("A").point([round(a * opacity) for a in range(256)]))
    return img


@dataclasses.dataclass(frozen=True)
class MakeOpaque:
    """Paste the image on a solid ``background_color``; the result is RGBA, as in pilkit."""

    background_color: ColorLike = (255, 255, 255)

    def __post_init__(self) -> None:
        object.__setattr__(self, "background_color", freeze_color(self.background_color))

    def process(self, img: Image.Image) -> Image.Image:
        """Return ``img`` flattened on the background colour (alpha 255 where it was)."""
        img = img.convert("RGBA")
        new_img = Image.new("RGBA", img.size, self.background_color)
        new_img.paste(img, (0, 0), img)
        return new_img

    def cost(self, size: tuple[int, int], mode: str) -> Cost:
        """The memory and size of :meth:`process`: the RGBA copy and the new image."""
        return Cost(size, "RGBA", copies(size, 2.25), size)


class _MaxAlphaTypeError(ImproperlyConfigured, TypeError):
    """SetOpacity's ``max_alpha`` is not an int (a TypeError, as in pilkit)."""


class _MaxAlphaValueError(ImproperlyConfigured, ValueError):
    """SetOpacity's ``max_alpha`` is outside 0-255 (a ValueError, as in pilkit)."""


@dataclasses.dataclass(frozen=True)
class SetOpacity:
    """Rescale the alpha so that the most opaque pixel gets ``max_alpha``; RGBA result.

    As in pilkit, each alpha ``a`` becomes ``int(a * max_alpha / max_a)``, ``max_a``
    being the largest alpha of the image: an image without transparency gets a
    uniform alpha of ``max_alpha``, and a fully transparent one stays transparent.
    ``max_alpha`` is an int from 0 (transparent) to 255 (opaque); a wrong type is a
    ``TypeError`` and a wrong value a ``ValueError``, both ``ImproperlyConfigured``.
    """

    max_alpha: int = 255

    def __post_init__(self) -> None:
        if not isinstance(self.max_alpha, int) or isinstance(self.max_alpha, bool):
            msg = (
                f"SetOpacity: max_alpha must be an int from 0 to 255, not {self.max_alpha!r}. "
                "For a fraction f of full opacity, pass round(f * 255)."
            )
            raise _MaxAlphaTypeError(msg)
        if not 0 <= self.max_alpha <= 255:
            msg = (
                "SetOpacity: max_alpha must be from 0 (transparent) to 255 (opaque), "
                f"not {self.max_alpha!r}."
            )
            raise _MaxAlphaValueError(msg)

    def process(self, img: Image.Image) -> Image.Image:
        """Return ``img`` as RGBA with its alpha rescaled so that its maximum is ``max_alpha``."""
        # convert() always returns a new image, which putalpha() may change.
        img = img.convert("RGBA")
        alpha = img.getchannel("A")
        _, max_a = t.cast("tuple[int, int]", alpha.getextrema())
        # Nothing to rescale when the image is fully transparent or already at max_alpha.
        if max_a and max_a != self.max_alpha:
            table = [int(a * self.max_alpha / max_a) for a in range(256)]
            img.putalpha(alpha.point(table))
        return img

    def cost(self, size: tuple[int, int], mode: str) -> Cost:
        """The memory and size of :meth:`process`: the RGBA copy and its alpha channel."""
        return Cost(size, "RGBA", copies(size, 1.75), size)


@dataclasses.dataclass(frozen=True)
class ColorOverlay:
    """Blend ``color`` over the image with ``overlay_opacity``; the result is RGB, as in pilkit."""

    color: ColorLike
    overlay_opacity: float = 0.5

    def __post_init__(self) -> None:
        _check_opacity("ColorOverlay", "overlay_opacity", self.overlay_opacity)
        object.__setattr__(self, "color", freeze_color(self.color))

    def process(self, img: Image.Image) -> Image.Image:
        """Return ``img`` as RGB, mixed with ``color`` at ``overlay_opacity``."""
        original = img.convert("RGB")
        overlay = Image.new("RGB", original.size, self.color)
        mask = Image.new("L", original.size, int((1.0 - self.overlay_opacity) * 255))
        return Image.composite(original, overlay, mask)

    def cost(self, size: tuple[int, int], mode: str) -> Cost:
        """The memory and size of :meth:`process`: the image, the colour, a mask, the blend."""
        return Cost(size, "RGB", copies(size, 3.5), size)


@dataclasses.dataclass(frozen=True)
class ImageOverlay:
    """Composite ``overlay_img`` (a watermark) over the image, its top left at ``position``.

    As in pilkit, the overlay is pasted at ``position`` on a transparent layer the
    size of the image (a negative position or an overlay that sticks out is
    clipped), the layer is alpha-composited over the image, and the result is in
    the image's mode; a palette image comes back as RGB, or RGBA when it has
    transparency (see ``resolve_palette``).

    Keyword-only additions: ``overlay_opacity`` multiplies the overlay's alpha, and
    ``anchor`` places the overlay the way ``ResizeCanvas`` places an image (``"br"``
    for the bottom right corner) instead of at ``position``. The overlay is copied
    (as RGBA) at construction and compared by its pixels (``image_digest``), so
    equal overlays make equal processors.
    """

    overlay_img: Image.Image = dataclasses.field(compare=False)
    position: tuple[int, int] = (0, 0)
    _: dataclasses.KW_ONLY
    overlay_opacity: float = 1.0
    anchor: AnchorLike | None = None
    image_digest: str = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.overlay_img, Image.Image):
            msg = (
                "ImageOverlay: overlay_img must be a PIL image (open the file with "
                f"PIL.Image.open), not {self.overlay_img!r}."
            )
            raise ImproperlyConfigured(msg)
        position = self.position
        if not (
            isinstance(position, (tuple, list))
            and len(position) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in position)
        ):
            msg = (
                "ImageOverlay: position must be an (x, y) tuple of ints, the top left "
                f"corner of the overlay on the image, not {position!r}."
            )
            raise ImproperlyConfigured(msg)
        object.__setattr__(self, "position", tuple(position))
        _check_opacity("ImageOverlay", "overlay_opacity", self.overlay_opacity)
        if self.anchor is not None:
            if self.position != (0, 0):
                msg = "ImageOverlay: give either a position or an anchor, not both."
                raise ImproperlyConfigured(msg)
            object.__setattr__(self, "anchor", Anchor.validate(self.anchor))
        # A private RGBA copy: later changes to the caller's image cannot reach us.
        overlay = self.overlay_img.convert("RGBA")
        object.__setattr__(self, "overlay_img", overlay)
        digest = hashlib.sha256(f"{overlay.width}x{overlay.height}:".encode())
        digest.update(overlay.tobytes())
        object.__setattr__(self, "image_digest", digest.hexdigest())

    def process(self, img: Image.Image) -> Image.Image:
        """Return ``img``, in its own mode, with the overlay composited over it."""
        img = resolve_palette(img)
        base = img.convert("RGBA")
        overlay = self.overlay_img
        if self.overlay_opacity != 1:
            overlay = _scale_alpha(overlay.copy(), self.overlay_opacity)
        x, y = self.position
        if self.anchor is not None:
            anchor_x, anchor_y = Anchor.get_tuple(self.anchor)
            x = int(float(base.width - overlay.width) * float(anchor_x))
            y = int(float(base.height - overlay.height) * float(anchor_y))
        # alpha_composite() refuses negative offsets; paste() clips an overlay that
        # sticks out, so go through a transparent layer of the base's size.
        layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
        layer.paste(overlay, (x, y))
        result = Image.alpha_composite(base, layer)
        return result if img.mode == "RGBA" else result.convert(img.mode)

    def cost(self, size: tuple[int, int], mode: str) -> Cost:
        """The memory and size of :meth:`process`: the base, the layer, the composite.

        And the composite converted back to the image's mode (a palette image is
        counted as RGBA, which it becomes when it has transparency).
        """
        overlay = image_bytes(self.overlay_img.size, "RGBA")
        out = palette_mode(mode)
        back = 0 if out == "RGBA" else image_bytes(size, out)
        return Cost(size, out, copies(size, 3.25) + overlay + back, size)
