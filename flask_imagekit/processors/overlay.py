"""Processors that composite or change transparency: MakeOpaque, SetOpacity, overlays."""

from __future__ import annotations

import dataclasses
import hashlib

from PIL import Image

from flask_imagekit.exceptions import ImproperlyConfigured

from .base import Anchor, AnchorLike, ColorLike, freeze_color
from .canvas import ResizeCanvas

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


@dataclasses.dataclass(frozen=True)
class SetOpacity:
    """Multiply the image's alpha by ``opacity`` (0 transparent to 1 unchanged); RGBA result.

    Not in pilkit 3.0; the counterpart of ``ColorOverlay``'s ``overlay_opacity``.
    """

    opacity: float

    def __post_init__(self) -> None:
        _check_opacity("SetOpacity", "opacity", self.opacity)

    def process(self, img: Image.Image) -> Image.Image:
        """Return ``img`` as RGBA with its alpha scaled by ``opacity``."""
        # convert() always returns a new image, which _scale_alpha may change.
        return _scale_alpha(img.convert("RGBA"), self.opacity)


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


@dataclasses.dataclass(frozen=True)
class ImageOverlay:
    """Composite the ``image`` (a watermark) over the input at the anchor or at x/y.

    The overlay's alpha is multiplied by ``overlay_opacity``; the anchor (default
    centre) and ``x``/``y`` work as in ``ResizeCanvas``; the result is RGBA. Not in
    pilkit 3.0. The overlay is copied at construction and compared by its pixels
    (``image_digest``), so equal overlays make equal processors.
    """

    image: Image.Image = dataclasses.field(compare=False)
    overlay_opacity: float = 1.0
    anchor: AnchorLike | None = None
    x: int | None = None
    y: int | None = None
    image_digest: str = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        _check_opacity("ImageOverlay", "overlay_opacity", self.overlay_opacity)
        # Checks anchor/x/y the way ResizeCanvas does and keeps its normalisation.
        canvas = ResizeCanvas(1, 1, anchor=self.anchor, x=self.x, y=self.y)
        object.__setattr__(self, "anchor", canvas.anchor)
        object.__setattr__(self, "x", canvas.x)
        object.__setattr__(self, "y", canvas.y)
        # A private RGBA copy: later changes to the caller's image cannot reach us.
        overlay = self.image.convert("RGBA")
        object.__setattr__(self, "image", overlay)
        digest = hashlib.sha256(f"{overlay.width}x{overlay.height}:".encode())
        digest.update(overlay.tobytes())
        object.__setattr__(self, "image_digest", digest.hexdigest())

    def process(self, img: Image.Image) -> Image.Image:
        """Return ``img`` as RGBA with the overlay composited over it."""
        base = img.convert("RGBA")
        overlay = self.image
        if self.overlay_opacity != 1:
            overlay = _scale_alpha(overlay.copy(), self.overlay_opacity)
        if self.anchor is not None:
            anchor_x, anchor_y = Anchor.get_tuple(self.anchor)
            x = int(float(base.width - overlay.width) * float(anchor_x))
            y = int(float(base.height - overlay.height) * float(anchor_y))
        else:
            x, y = self.x or 0, self.y or 0
        # alpha_composite() refuses negative offsets; paste() clips an overlay that
        # sticks out, so go through a transparent layer of the base's size.
        layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
        layer.paste(overlay, (x, y))
        return Image.alpha_composite(base, layer)
