"""Resampling primitives shared by the processors and the generation pipeline."""

from __future__ import annotations

from typing import Final

from PIL import Image

__all__ = ["REDUCING_GAP", "lanczos_resize", "palette_mode", "resolve_palette", "scale_box"]

#: ``reducing_gap`` given to :meth:`PIL.Image.Image.resize` by the resizing processors.
#: Pillow first shrinks by an integer factor with ``reduce()`` and keeps at least this
#: factor for the final LANCZOS pass: several times faster on big shrinks, and at 3.0
#: indistinguishable from a single full LANCZOS pass.
REDUCING_GAP: Final[float] = 3.0


def palette_mode(mode: str) -> str:
    """The mode :func:`resolve_palette` turns an image of ``mode`` into (RGBA for palettes)."""
    return "RGBA" if mode in ("P", "PA") else mode


def scale_box(
    box: tuple[float, float, float, float],
    from_size: tuple[int, int],
    to_size: tuple[float, float],
) -> tuple[float, float, float, float]:
    """``box`` of an image of ``from_size``, in the same image decoded at ``to_size``.

    The right and lower edges are kept inside ``to_size``, whatever the rounding.
    """
    scale_x, scale_y = to_size[0] / from_size[0], to_size[1] / from_size[1]
    left, top, right, bottom = box
    return (
        left * scale_x,
        top * scale_y,
        min(right * scale_x, to_size[0]),
        min(bottom * scale_y, to_size[1]),
    )


def resolve_palette(img: Image.Image) -> Image.Image:
    """Convert a palette image to its palette's mode, as pilkit does before resizing.

    Palette images with transparency become RGBA so that their transparency survives
    (pilkit converts them to RGB, turning transparent pixels into the palette colour).
    """
    # The palette is only known once the image is loaded.
    img.load()
    if img.palette is None:
        return img
    if img.mode == "PA" or (img.mode == "P" and "transparency" in img.info):
        return img.convert("RGBA")
    return img.convert(img.palette.mode)


def lanczos_resize(
    img: Image.Image,
    size: tuple[int, int],
    box: tuple[float, float, float, float] | None = None,
) -> Image.Image:
    """Resize ``img`` (or its ``box`` region) to ``size`` with LANCZOS and ``REDUCING_GAP``."""
    # reduce() has no implementation for these modes; "1" and "P" are resampled
    # with NEAREST anyway, where reducing_gap does nothing.
    gap: float | None = REDUCING_GAP
    if img.mode in ("1", "P") or img.mode.startswith("I;16"):
        gap = None
    return img.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=gap)
