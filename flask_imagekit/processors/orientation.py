"""EXIF orientation: read it, turn an image upright, map regions between the two."""

from __future__ import annotations

from typing import Final

from PIL import ExifTags, Image

__all__ = ["exif_orientation", "orient", "to_stored_box", "upright_size"]

_ORIENTATION_TRANSPOSE: Final[dict[int, Image.Transpose]] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def exif_orientation(img: Image.Image) -> int:
    """Return the EXIF (or XMP) orientation of ``img`` (1 to 8), 1 when absent or invalid."""
    try:
        orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:
        # Corrupt EXIF raises all kinds of errors (and warnings); like pilkit, an
        # unreadable orientation leaves the image as it is.
        return 1
    return orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1


def orient(img: Image.Image, orientation: int) -> Image.Image:
    """Return ``img``, stored with EXIF ``orientation``, turned upright (``img`` itself for 1)."""
    method = _ORIENTATION_TRANSPOSE.get(orientation)
    return img.transpose(method) if method is not None else img


def upright_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """The size of an image of ``size``, stored with EXIF ``orientation``, once upright."""
    return (size[1], size[0]) if orientation >= 5 else size


def _to_stored_point(
    u: float, v: float, size: tuple[int, int], orientation: int
) -> tuple[float, float]:
    """Map a point of the upright image to the image as stored."""
    w, h = size
    return {
        1: (u, v),
        2: (w - u, v),
        3: (w - u, h - v),
        4: (u, h - v),
        5: (v, u),
        6: (v, h - u),
        7: (w - v, h - u),
        8: (w - v, u),
    }[orientation]


def to_stored_box(
    box: tuple[float, float, float, float], size: tuple[int, int], orientation: int
) -> tuple[float, float, float, float]:
    """Map ``box`` of the upright image to the image as stored (of ``size``, ``orientation``)."""
    x0, y0 = _to_stored_point(box[0], box[1], size, orientation)
    x1, y1 = _to_stored_point(box[2], box[3], size, orientation)
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
