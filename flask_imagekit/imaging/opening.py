"""Opening a source: the allow-list, the pixel cap and the decode budget, from the header."""

from __future__ import annotations

import io
import typing as t

from PIL import Image, UnidentifiedImageError

from ..exceptions import SourceError
from .jpeg import check_jpeg, is_progressive_jpeg, jpeg_coefficient_bytes
from .limits import DEFAULT_ALLOWED_FORMATS, DEFAULT_MAX_DECODE_BYTES, describe

__all__ = ["decode_cost", "load_pixels", "open_image"]

# Formats people try to upload that the default allow-list refuses, by signature.
_REFUSED_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%!PS", "PostScript/EPS"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"%PDF", "PDF"),
    (b"8BPS", "PSD"),
    (b"<svg", "SVG"),
    (b"<?xml", "XML/SVG"),
    (b"\x00\x00\x01\x00\x01\x00", "ICO"),
    (b"\x00\x00\x02\x00\x01\x00", "CUR"),
)

# Peak memory of decoding a full image and its first resize, in bytes per pixel,
# measured per format and mode (Pillow decodes WebP and AVIF whole, in copies).
_FORMAT_COST = {"WEBP": 16.0, "AVIF": 9.0}
_MODE_COST = {
    "RGBA": 8.0,
    "LA": 8.0,
    "PA": 8.0,
    "RGBa": 8.0,
    "La": 8.0,
    "P": 5.0,
    "I;16": 2.0,
    "I;16B": 2.0,
    "I;16L": 2.0,
    "I;16N": 2.0,
    "L": 1.0,
    "1": 1.0,
}


def _seekable(fp: t.IO[bytes]) -> t.IO[bytes]:
    try:
        if fp.seekable():
            return fp
    except (AttributeError, ValueError):
        pass
    return io.BytesIO(fp.read())


def open_image(
    fp: t.IO[bytes],
    *,
    formats: t.Iterable[str] | None = None,
    max_pixels: int | None = None,
    max_bytes: int | None = DEFAULT_MAX_DECODE_BYTES,
    name: str | None = None,
) -> Image.Image:
    """Open an image for decoding, reading only its header.

    Only decoders in ``formats`` (default :data:`DEFAULT_ALLOWED_FORMATS`) are
    tried; images over ``max_pixels``, or whose decoding would take more than
    ``max_bytes`` of memory (estimated from the header, see
    :func:`decode_cost`; :data:`DEFAULT_MAX_DECODE_BYTES` unless given, None for
    no limit), are refused before any pixel is decoded. Raises
    :class:`SourceError` with a message saying what to do.
    """
    allowed = tuple(fmt.upper() for fmt in (formats or DEFAULT_ALLOWED_FORMATS))
    what = describe(name)
    fp = _seekable(fp)
    try:
        start = fp.tell()
        head = fp.read(16)
        fp.seek(start)
    except (OSError, ValueError) as exc:
        msg = f"Could not read {what}: {exc}. Check that the file is readable."
        raise SourceError(msg) from exc
    if not head:
        msg = f"The file {what} is empty. Upload or save the image again."
        raise SourceError(msg)
    try:
        img = Image.open(fp, formats=allowed)
    except Exception as exc:
        refused = _refused_kind(head)
        if refused:
            msg = (
                f"{what} is a {refused} file, which is not an allowed source format. "
                f"Convert it to one of {', '.join(allowed)}, or add its format to "
                "IMAGEKIT_ALLOWED_SOURCE_FORMATS if you trust its decoder."
            )
        elif "truncat" in str(exc).lower():
            msg = f"{what} is truncated or corrupt ({exc}). Upload the complete file again."
        elif isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
            msg = f"{what} declares more pixels than Pillow allows ({exc}). Use a smaller image."
        else:
            detail = "not recognised" if isinstance(exc, UnidentifiedImageError) else str(exc)
            msg = (
                f"{what} is not an image in an allowed format ({', '.join(allowed)}): "
                f"{detail}. Check the file, or add its format to "
                "IMAGEKIT_ALLOWED_SOURCE_FORMATS."
            )
        raise SourceError(msg) from exc
    width, height = img.size
    if width <= 0 or height <= 0:
        msg = f"{what} has no pixels ({width}x{height}). Use a non-empty image."
        raise SourceError(msg)
    if max_pixels is not None and width * height > max_pixels:
        msg = (
            f"{what} is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (IMAGEKIT_MAX_SOURCE_PIXELS). Use a smaller image or raise "
            "the limit."
        )
        raise SourceError(msg)
    check_jpeg(img, fp, what)
    if max_bytes is not None:
        cost = decode_cost(img)
        if cost > max_bytes:
            msg = (
                f"{what} ({width}x{height} {img.format} {img.mode}) needs about "
                f"{cost // 2**20:,} MiB to decode, over the limit of {max_bytes // 2**20:,} MiB "
                "(IMAGEKIT_MAX_DECODE_BYTES). Use a smaller image or raise the limit."
            )
            raise SourceError(msg)
    return img


def _refused_kind(head: bytes) -> str | None:
    stripped = head.lstrip()
    for signature, kind in _REFUSED_SIGNATURES:
        if head.startswith(signature) or stripped.startswith(signature):
            return kind
    return None


def decode_cost(img: Image.Image) -> int:
    """Estimated peak memory, in bytes, of decoding ``img`` and resizing it once."""
    width, height = img.size
    pixels = width * height
    fmt = img.format or ""
    if fmt in ("JPEG", "MPO"):
        # Baseline JPEGs decode at reduced scale when resized; count the full
        # output anyway, as a processor may need it. Progressive ones also keep
        # every DCT coefficient (2 bytes each) in memory, whatever the scale.
        cost = pixels * len(img.getbands())
        if is_progressive_jpeg(img):
            cost += jpeg_coefficient_bytes(img)
        return cost
    per_pixel = _FORMAT_COST.get(fmt) or _MODE_COST.get(img.mode, 4.0)
    return int(pixels * per_pixel)


def load_pixels(img: Image.Image, name: str | None = None) -> None:
    """Decode the pixels of ``img``, opened by :func:`open_image`, into memory.

    Raises :class:`SourceError` naming the source ``name`` when the file turns
    out corrupt or truncated.
    """
    try:
        img.load()
    except Exception as exc:
        msg = (
            f"Could not decode {describe(name)}: {exc}. The file is corrupt or "
            "truncated; upload it again."
        )
        raise SourceError(msg) from exc
