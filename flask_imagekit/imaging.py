"""Pillow at the edges of the pipeline: open (allow-list, pixel cap), decode, encode.

``open_image`` reads only the header and refuses what must not be decoded.
``decode`` loads the pixels, upright, and takes the fast path when the first
processor says what size it resizes to: JPEGs are decoded at a reduced scale
(keeping a margin over the output) and the crop happens inside the resize.
Before it allocates, it checks the whole generation against the budgets (see
``check_pipeline``): the memory of the decode and of every step, from the
processors' ``cost()``, the conversions and the encoder, and the size of every
image made.
``prepare_image`` and ``save_image`` encode for the web: modes fixed per format,
colours converted to sRGB from the source's ICC profile (after the resize, on the
small image), no profile, EXIF, XMP or comments written.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import io
import math
import os
import re
import struct
import threading
import typing as t

from PIL import Image, ImageCms, UnidentifiedImageError, features

from .exceptions import SourceError
from .processors.base import (
    QUANTIZE_COST,
    ResizePlan,
    copies,
    image_bytes,
    plan_processors,
    processor_cost,
    resize_cost,
)

__all__ = [
    "DEFAULT_ALLOWED_FORMATS",
    "DEFAULT_MAX_DECODE_BYTES",
    "DEFAULT_MAX_OUTPUT_PIXELS",
    "DRAFT_MARGIN",
    "check_pipeline",
    "decode",
    "decode_many",
    "encode_cost",
    "exif_orientation",
    "open_image",
    "prepare_image",
    "resize",
    "save_image",
    "set_resize_threads",
]

DEFAULT_ALLOWED_FORMATS: tuple[str, ...] = tuple(
    fmt
    for fmt in ("JPEG", "PNG", "GIF", "WEBP", "AVIF", "BMP", "TIFF")
    if fmt != "AVIF" or features.check("avif")
)

#: Sources whose decoding is estimated to need more memory are refused.
DEFAULT_MAX_DECODE_BYTES = 224 * 2**20
#: Outputs and intermediates above this many pixels are refused before allocating.
DEFAULT_MAX_OUTPUT_PIXELS = 25_000_000

#: The reduced-scale decode keeps at least this many source pixels per output
#: pixel along each axis, so the final Lanczos pass still has detail to work with.
DRAFT_MARGIN = 1.5

#: Shrinking resizes first reduce by an integer factor while staying this many
#: times above the output size (Pillow's ``reducing_gap``).
REDUCING_GAP = 3.0

# Encoder settings chosen for generation speed; a spec's ``options`` override them.
ENCODER_DEFAULTS: dict[str, dict[str, t.Any]] = {
    "JPEG": {"optimize": True},
    "AVIF": {"speed": 8},
}

_RGBA_FORMATS = frozenset({"PNG", "WEBP", "AVIF", "TIFF"})
_PALETTE_FORMATS = frozenset({"PNG", "GIF"})
_ICC_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "AVIF", "TIFF"})
_PLAN_MODES = frozenset({"RGB", "RGBA", "L", "LA", "CMYK"})

_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

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


def _describe(name: str | None) -> str:
    return repr(name) if name else "the source"


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
    what = _describe(name)
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
    if img.format in ("JPEG", "MPO") and img.info.get("progressive"):
        _check_scans(fp, what)
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


#: Progressive JPEGs with more scans than this are refused: every scan walks the
#: whole image, and real encoders write 10 to about 40.
MAX_JPEG_SCANS = 100

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
        if img.info.get("progressive"):
            cost += _jpeg_coefficient_bytes(img)
        return cost
    per_pixel = _FORMAT_COST.get(fmt) or _MODE_COST.get(img.mode, 4.0)
    return int(pixels * per_pixel)


def _jpeg_coefficient_bytes(img: Image.Image) -> int:
    width, height = img.size
    layers = getattr(img, "layer", None) or [("", 1, 1, 0)] * len(img.getbands())
    h_max = max(layer[1] for layer in layers) or 1
    v_max = max(layer[2] for layer in layers) or 1
    total = 0
    for _, h, v, _table in layers:
        blocks_x = math.ceil(math.ceil(width * h / h_max) / 8)
        blocks_y = math.ceil(math.ceil(height * v / v_max) / 8)
        total += blocks_x * blocks_y * 128
    return total


def _check_scans(fp: t.IO[bytes], what: str) -> None:
    """Refuse progressive JPEGs with so many scans that decoding takes too long."""
    position = fp.tell()
    try:
        scans, segments = _count_jpeg_scans(fp, MAX_JPEG_SCANS)
    finally:
        fp.seek(position)
    if scans > MAX_JPEG_SCANS:
        msg = (
            f"{what} is a progressive JPEG of more than {MAX_JPEG_SCANS} scans (at most "
            f"{MAX_JPEG_SCANS} are decoded). Save it again as a baseline or ordinary "
            "progressive JPEG."
        )
        raise SourceError(msg)
    if segments > _MAX_JPEG_SEGMENTS:
        msg = (
            f"{what} is a progressive JPEG of more than {_MAX_JPEG_SEGMENTS:,} marker "
            "segments (real ones have a few dozen). Save it again as a baseline or "
            "ordinary progressive JPEG."
        )
        raise SourceError(msg)


# The scan counter reads this much at a time, so memory does not grow with the file.
_SCAN_CHUNK = 256 * 2**10
# Walking a segment costs about half a microsecond: a file of millions of empty
# segments must not cost seconds before libjpeg even starts.
_MAX_JPEG_SEGMENTS = 4096
# A marker that starts a segment, or EOI. After 0xFF, 0x00 is a stuffed data byte
# and 0xFF a fill byte; RSTn (in scan data), TEM and SOI have no segment.
_JPEG_SEGMENT_MARKER = re.compile(rb"\xff[^\x00\x01\xd0-\xd8\xff]")


def _count_jpeg_scans(fp: t.IO[bytes], limit: int) -> tuple[int, int]:
    """Count the scans (SOS markers) and segments of the JPEG in ``fp``, up to its EOI.

    Walks the file as libjpeg does: a segment is skipped by its length (markers
    inside an ICC profile or an EXIF thumbnail are not the file's), scan data and
    anything between segments are searched for the next marker. Reads in chunks,
    seeks over long segments and stops once the scans pass ``limit`` or the
    segments :data:`_MAX_JPEG_SEGMENTS`. Leaves ``fp`` anywhere.
    """
    fp.seek(0)
    buf = fp.read(_SCAN_CHUNK)
    pos = scans = segments = 0
    while True:
        match = _JPEG_SEGMENT_MARKER.search(buf, pos)
        if match is None or (match.end() + 2 > len(buf) and buf[match.end() - 1] != 0xD9):
            # Read on, keeping what may be the start of a marker split by the chunk.
            if match is not None:
                keep = buf[match.start() :]
            else:
                keep = b"\xff" if pos < len(buf) and buf.endswith(b"\xff") else b""
            chunk = fp.read(_SCAN_CHUNK)
            if not chunk:
                return scans, segments
            buf, pos = keep + chunk, 0
            continue
        code = buf[match.end() - 1]
        if code == 0xD9:  # EOI
            return scans, segments
        segments += 1
        if code == 0xDA:  # SOS
            scans += 1
        if scans > limit or segments > _MAX_JPEG_SEGMENTS:
            return scans, segments
        end = match.end() + int.from_bytes(buf[match.end() : match.end() + 2], "big")
        if end <= len(buf):
            pos = end
        else:
            fp.seek(end - len(buf), os.SEEK_CUR)
            buf, pos = b"", 0


def _refused_kind(head: bytes) -> str | None:
    stripped = head.lstrip()
    for signature, kind in _REFUSED_SIGNATURES:
        if head.startswith(signature) or stripped.startswith(signature):
            return kind
    return None


def exif_orientation(img: Image.Image) -> int:
    """Return the EXIF (or XMP) orientation of ``img``, 1 when absent or invalid."""
    try:
        value = img.getexif().get(0x0112, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _upright_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
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


def _to_stored_box(
    box: tuple[float, float, float, float], size: tuple[int, int], orientation: int
) -> tuple[float, float, float, float]:
    x0, y0 = _to_stored_point(box[0], box[1], size, orientation)
    x1, y1 = _to_stored_point(box[2], box[3], size, orientation)
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _load(img: Image.Image, name: str | None) -> None:
    try:
        img.load()
    except Exception as exc:
        msg = (
            f"Could not decode {_describe(name)}: {exc}. The file is corrupt or "
            "truncated; upload it again."
        )
        raise SourceError(msg) from exc


def decode(
    img: Image.Image,
    processors: t.Sequence[t.Any] = (),
    *,
    auto_orient: bool = True,
    name: str | None = None,
    format: str | None = None,
    options: t.Mapping[str, t.Any] | None = None,
    max_bytes: int | None = DEFAULT_MAX_DECODE_BYTES,
    max_output_pixels: int | None = DEFAULT_MAX_OUTPUT_PIXELS,
) -> tuple[Image.Image, t.Sequence[t.Any]]:
    """Load ``img`` upright and return it with the processors still to run.

    When the first processor can be expressed as one resize of a region of its
    input (see :class:`~flask_imagekit.processors.base.ResizePlan`), that resize
    is done here, on a JPEG decoded at reduced scale, and only the processors
    that finish the plan are returned. Otherwise the whole image is decoded and
    ``processors`` are returned unchanged. The processors, and encoding as
    ``format`` with ``options`` when given, are checked against the budgets
    first (see :func:`decode_many`).
    """
    return decode_many(
        img,
        [processors],
        auto_orient=auto_orient,
        name=name,
        formats=[format],
        options=[options],
        max_bytes=max_bytes,
        max_output_pixels=max_output_pixels,
    )[0]


def decode_many(
    img: Image.Image,
    processor_lists: t.Sequence[t.Sequence[t.Any]],
    *,
    auto_orient: bool = True,
    name: str | None = None,
    formats: t.Sequence[str | None] | None = None,
    options: t.Sequence[t.Mapping[str, t.Any] | None] | None = None,
    max_bytes: int | None = DEFAULT_MAX_DECODE_BYTES,
    max_output_pixels: int | None = DEFAULT_MAX_OUTPUT_PIXELS,
    held: int = 0,
) -> list[tuple[Image.Image, t.Sequence[t.Any]]]:
    """Decode ``img`` once for several processor lists (one per spec of a source).

    The JPEG reduction is the largest that every list's plan allows, so the
    smaller outputs are derived from the same reduced decode.

    Before the pixels are decoded (JPEG) or anything else is allocated (other
    formats, whose decoding :func:`open_image` estimated), the whole generation
    of every list is checked against the budgets, as :func:`check_pipeline` does:
    each step's memory (with ``held`` bytes of other images alive) against
    ``max_bytes``, each image made against ``max_output_pixels``. ``formats``
    and ``options``: the output format (None when it is not encoded) and encoder
    options of each list. Raises :class:`SourceError` when a list is over a budget.
    """
    budgets = max_bytes is not None or max_output_pixels is not None
    outputs = (
        formats or [None] * len(processor_lists),
        options or [None] * len(processor_lists),
    )
    if img.format not in ("JPEG", "MPO"):
        if budgets:
            # The orientation is known once decoded: refuse first what is over a
            # budget either way (upright already, or to be turned a quarter).
            errors: list[SourceError] = []
            for guess in (1, 6) if auto_orient else (1,):
                plans, boxes = _plans(img, processor_lists, guess)
                tally = _decode_tally(
                    img, img.size, processor_lists, plans, boxes, guess, *outputs, 0, held
                )
                try:
                    tally.check(_what(img, img.size, name), max_bytes, max_output_pixels)
                except SourceError as exc:
                    errors.append(exc)
            if len(errors) == (2 if auto_orient else 1):
                raise errors[0]
        # Reading EXIF from other formats may decode pixels: surface errors here.
        _load(img, name)
    orientation = exif_orientation(img) if auto_orient else 1
    stored_size = img.size
    # libjpeg keeps every coefficient of a progressive JPEG, whatever the scale.
    progressive = img.format in ("JPEG", "MPO") and img.info.get("progressive")
    coefficients = _jpeg_coefficient_bytes(img) if progressive else 0
    plans, boxes = _plans(img, processor_lists, orientation)
    if all(box is not None for box in boxes) and img.format in ("JPEG", "MPO"):
        max_scale = min(
            min(
                (box[2] - box[0]) / (DRAFT_MARGIN * out[0]),
                (box[3] - box[1]) / (DRAFT_MARGIN * out[1]),
            )
            for box, out in (
                (box, _upright_size(plan.size, orientation))
                for box, plan in zip(boxes, plans, strict=True)
                if box is not None and plan is not None
            )
        )
        if max_scale >= 2:
            request = (
                math.ceil(stored_size[0] / max_scale),
                math.ceil(stored_size[1] / max_scale),
            )
            img.draft(img.mode, request)
    if budgets:
        tally = _decode_tally(
            img,
            stored_size,
            processor_lists,
            plans,
            boxes,
            orientation,
            *outputs,
            coefficients,
            held,
        )
        tally.check(_what(img, stored_size, name), max_bytes, max_output_pixels)
    _load(img, name)
    scale = stored_size[0] / img.size[0]
    results: list[tuple[Image.Image, t.Sequence[t.Any]]] = []
    upright_full: Image.Image | None = None
    for processors, plan, box in zip(processor_lists, plans, boxes, strict=True):
        if plan is None or box is None:
            if upright_full is None:
                upright_full = _orient(img, orientation)
            results.append((upright_full, processors))
            continue
        out = _upright_size(plan.size, orientation)
        if scale != 1.0:
            box = (
                box[0] / scale,
                box[1] / scale,
                min(box[2] / scale, img.size[0]),
                min(box[3] / scale, img.size[1]),
            )
        if out == img.size and box == (0, 0, *img.size):
            resized = img
        else:
            resized = resize(img, out, box)
        results.append((_orient(resized, orientation), plan.after))
    icc = img.info.get("icc_profile") if img.mode == "CMYK" else None
    if icc:
        # Processors would turn CMYK into RGB(A) with Pillow's naive formula: convert
        # with the source's profile first, on the (already reduced) image.
        results = [
            (
                _cmyk_to_rgb(image, icc) if processors and image.mode == "CMYK" else image,
                processors,
            )
            for image, processors in results
        ]
    if auto_orient:
        # Upright now: a Transpose() processor must not rotate the image again.
        for image, _ in results:
            for key in _ORIENTATION_INFO_KEYS:
                image.info.pop(key, None)
    return results


_ORIENTATION_INFO_KEYS = ("exif", "xmp", "XML:com.adobe.xmp")

# Large outputs are resized in horizontal bands on several threads (Pillow lets
# go of the GIL while it resamples). Worker processes of `generate --jobs` use one.
_BAND_MIN_PIXELS = 250_000
_resize_threads = min(2, os.cpu_count() or 1)
_resize_pool: concurrent.futures.ThreadPoolExecutor | None = None
_resize_pool_lock = threading.Lock()


def _forget_pool() -> None:
    # Threads do not survive fork: a forked child (worker, server) makes its own pool.
    global _resize_pool, _resize_pool_lock
    _resize_pool = None
    _resize_pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def set_resize_threads(threads: int) -> None:
    """Use up to ``threads`` threads for one large resize (1: no threads)."""
    global _resize_threads
    _resize_threads = max(1, threads)


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    global _resize_pool
    with _resize_pool_lock:
        if _resize_pool is None:
            _resize_pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=_resize_threads, thread_name_prefix="imagekit-resize"
            )
        return _resize_pool


def resize(
    img: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float]
) -> Image.Image:
    """Lanczos-resize the region ``box`` of ``img`` to ``size``, in bands when large."""
    width, height = size
    bands = _resize_threads
    if bands < 2 or width * height < _BAND_MIN_PIXELS or height < 8 * bands:
        return img.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=REDUCING_GAP)
    left, top, right, bottom = box
    step = (bottom - top) / height
    edges = [round(height * index / bands) for index in range(bands + 1)]
    # Pillow resamples RGBA and LA premultiplied, converting the whole image for each
    # call: convert once here rather than once per band.
    premultiplied = _PREMULTIPLIED.get(img.mode)
    source = img.convert(premultiplied) if premultiplied else img
    futures = [
        _pool().submit(
            source.resize,
            (width, y1 - y0),
            Image.Resampling.LANCZOS,
            (left, top + y0 * step, right, top + y1 * step),
            REDUCING_GAP,
        )
        for y0, y1 in zip(edges, edges[1:], strict=False)
    ]
    result = Image.new(source.mode, size)
    for y0, future in zip(edges, futures, strict=False):
        result.paste(future.result(), (0, y0))
    del source, futures
    if premultiplied:
        result = result.convert(img.mode)
    result.info = dict(img.info)
    return result


_PREMULTIPLIED = {"RGBA": "RGBa", "LA": "La"}


def _plans(
    img: Image.Image, processor_lists: t.Sequence[t.Sequence[t.Any]], orientation: int
) -> tuple[list[ResizePlan | None], list[tuple[float, float, float, float] | None]]:
    """The plan of each list for ``img`` turned by ``orientation``, and its box as stored."""
    upright = _upright_size(img.size, orientation)
    plans = [
        _plan(processors, upright) if processors and img.mode in _PLAN_MODES else None
        for processors in processor_lists
    ]
    boxes = [
        None if plan is None else _to_stored_box(plan.box, img.size, orientation) for plan in plans
    ]
    return plans, boxes


def _plan(processors: t.Sequence[t.Any], size: tuple[int, int]) -> ResizePlan | None:
    try:
        return plan_processors(processors, size)
    except Exception:
        # A processor whose plan() fails (or means something else) takes the
        # ordinary path, where its process() reports what is wrong.
        return None


def _orient(img: Image.Image, orientation: int) -> Image.Image:
    method = _ORIENTATION_TRANSPOSE.get(orientation)
    return img.transpose(method) if method is not None else img


# The budgets of a generation ----------------------------------------------------------

# Memory the encoders take beyond the image they are given, in bytes per pixel,
# measured on noise (their worst case) with any options, and rounded up: libwebp
# (lossless: 40) and libavif keep planes and analysis buffers. JPEG, PNG and the
# others are estimated from their buffers and output (see _encoder_cost).
_WEBP_COST, _WEBP_LOSSLESS_COST, _AVIF_COST = 24.0, 40.0, 36.0
# Bytes per pixel of uncompressed image data, by mode. An encoder's output is kept
# whole (noise compresses to about this, JPEG to 1.4 per component at quality 100),
# in a buffer that may be copied as it grows.
_RAW_BYTES = {"1": 0.125, "L": 1.0, "P": 1.0, "LA": 2.0, "I;16": 2.0, "RGB": 3.0}
# JPEG chroma subsampling option -> coefficients per pixel of a colour image.
_JPEG_COMPONENTS = {0: 3.0, "4:4:4": 3.0, 1: 2.0, "4:2:2": 2.0, 2: 1.5, "4:2:0": 1.5, -1: 1.5}
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_WIDE_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})


def encode_cost(
    size: tuple[int, int],
    mode: str,
    format: str,
    *,
    transparency: bool = False,
    icc: bool = False,
    options: t.Mapping[str, t.Any] | None = None,
) -> int:
    """Estimated memory, in bytes, that :func:`save_image` takes beyond the image it is given.

    The mode conversions of :func:`prepare_image` (16-bit and CMYK, alpha flattened
    for JPEG, palettes for GIF), the sRGB conversion when the image has an ICC
    profile (``icc``), the encoder's buffers and its output, for the encoder
    ``options``. ``transparency``: the image may have a transparent colour
    (``info["transparency"]``).
    """
    fmt = format.upper()
    pixels = size[0] * size[1]
    extra = 0

    def convert(to: str) -> str:
        nonlocal extra
        extra += image_bytes(size, to)
        return to

    if mode == "CMYK":
        mode = convert("RGB")
    elif mode in _WIDE_MODES:
        if fmt == "PNG" and mode.startswith("I;16"):
            if mode != "I;16":
                extra += image_bytes(size, "I")
                mode = convert("I;16")
        else:
            extra += 2 * image_bytes(size, "I")  # to 32-bit, then scaled
            mode = convert("L")
    elif mode in ("1", "RGBX", "YCbCr", "LAB", "HSV"):
        mode = convert("L" if mode == "1" else "RGB")
    elif mode in ("PA", "RGBa", "La"):
        mode = convert("LA" if mode == "La" else "RGBA")
    alpha = mode in _ALPHA_MODES or transparency
    if fmt == "JPEG":
        if alpha:
            # An RGBA copy, a white base, the composite, then RGB.
            extra += copies(size, 3)
            mode = "RGB"
        elif mode not in ("RGB", "L"):
            mode = convert("RGB")
    elif fmt == "GIF":
        if mode != "P" or transparency:
            extra += copies(size, 1) + int(pixels * QUANTIZE_COST)
            if alpha:
                extra += copies(size, 1) + 2 * image_bytes(size, "L")
            mode = "P"
    elif fmt in ("WEBP", "AVIF"):
        if mode not in ("RGB", "RGBA"):
            if icc:
                extra += image_bytes(size, mode)
            mode = convert("RGBA" if alpha else "RGB")
    elif fmt == "PNG":
        if mode not in ("RGB", "RGBA", "L", "LA", "P", "I;16", "1"):
            mode = convert("RGBA" if alpha else "RGB")
    elif mode not in ("RGB", "RGBA", "L", "LA"):
        mode = convert("RGBA" if alpha else "RGB")
    if icc:
        extra += image_bytes(size, mode)  # the sRGB conversion makes a new image
    return extra + int(pixels * _encoder_cost(fmt, mode, options or {}))


# Peak memory of decoding, in bytes per pixel, where it is more than the image:
# Pillow decodes WebP and AVIF whole, in several copies.
_DECODE_PEAK = {"WEBP": 16.0, "AVIF": 10.0}


def _encoder_cost(fmt: str, mode: str, options: t.Mapping[str, t.Any]) -> float:
    """Bytes per pixel an encoder takes for an image of ``mode``, its output included."""
    output = 2.0 * _RAW_BYTES.get(mode, 4.0)
    if fmt == "JPEG":
        subsampling = options.get("subsampling", -1)
        components = 1.0 if mode == "L" else _JPEG_COMPONENTS.get(subsampling, 3.0)
        # A row buffer of the whole image and libjpeg's coefficients (optimized
        # Huffman tables, progressive), then the output.
        return 1.0 + 2.0 * components + 2.0 * 1.4 * components
    if fmt == "WEBP":
        return _WEBP_LOSSLESS_COST if options.get("lossless") else _WEBP_COST
    if fmt == "AVIF":
        return _AVIF_COST
    return output + 0.5


@dataclasses.dataclass
class _Tally:
    """The peak memory and the largest image of a generation, and the step of each."""

    memory: int = 0
    memory_at: str = ""
    largest: tuple[int, int] = (0, 0)
    largest_at: str = ""

    def add(self, memory: int, largest: tuple[int, int], at: str, made: str = "") -> None:
        """Tally a step ``at`` that peaks at ``memory`` bytes and ``made`` a ``largest`` image."""
        if memory > self.memory:
            self.memory, self.memory_at = memory, at
        if largest[0] * largest[1] > self.largest[0] * self.largest[1]:
            self.largest, self.largest_at = largest, made or f"an image made by {at}"

    def walk(
        self,
        size: tuple[int, int],
        mode: str,
        processors: t.Sequence[t.Any],
        format: str | None,
        *,
        held: int = 0,
        start_held: bool = True,
        transparency: bool = False,
        icc: bool = False,
        options: t.Mapping[str, t.Any] | None = None,
    ) -> None:
        """Tally running ``processors`` on an image of ``size``/``mode``, then encoding it.

        ``held``: bytes of other images alive meanwhile. With ``start_held``, the
        first image stays alive to the end (the spec keeps it for its profile).
        """
        start = image_bytes(size, mode) if start_held else 0
        for index, processor in enumerate(processors):
            cost = processor_cost(processor, size, mode)
            kept = start if index else 0
            at = f"{type(processor).__name__} on a {size[0]}x{size[1]} {mode} image"
            self.add(held + kept + image_bytes(size, mode) + cost.extra, cost.largest, at)
            size, mode = cost.size, cost.mode
        kept = start if processors else 0
        self.add(held, size, "the output", "the output")
        if format is not None:
            extra = encode_cost(
                size, mode, format, transparency=transparency, icc=icc, options=options
            )
            at = f"encoding a {size[0]}x{size[1]} {mode} image as {format.upper()}"
            self.add(held + kept + image_bytes(size, mode) + extra, (0, 0), at)

    def check(self, what: str, max_bytes: int | None, max_output_pixels: int | None) -> None:
        """Raise :class:`SourceError` naming ``what`` when the tally is over a limit."""
        width, height = self.largest
        if max_output_pixels is not None and width * height > max_output_pixels:
            msg = (
                f"{what}: {self.largest_at} would be {width}x{height} "
                f"({width * height:,} pixels), over the limit of {max_output_pixels:,} "
                "(IMAGEKIT_MAX_OUTPUT_PIXELS). Make the spec's output smaller (or resize "
                "first), or raise the limit."
            )
            raise SourceError(msg)
        if max_bytes is not None and self.memory > max_bytes:
            msg = (
                f"{what}: this generation needs about {self.memory // 2**20:,} MiB "
                f"({self.memory_at}), over the limit of {max_bytes // 2**20:,} MiB "
                "(IMAGEKIT_MAX_DECODE_BYTES). Put a resizing processor first in the "
                "spec, use a smaller image, or raise the limit."
            )
            raise SourceError(msg)


def check_pipeline(
    img: Image.Image,
    processors: t.Sequence[t.Any],
    format: str | None = None,
    *,
    max_bytes: int | None = DEFAULT_MAX_DECODE_BYTES,
    max_output_pixels: int | None = DEFAULT_MAX_OUTPUT_PIXELS,
    held: int = 0,
    icc: bool = False,
    options: t.Mapping[str, t.Any] | None = None,
    name: str | None = None,
) -> None:
    """Refuse to run ``processors`` on ``img`` and encode it as ``format`` over the budgets.

    Estimates, before anything is allocated, the peak memory of every step (from
    the processors' ``cost()``, see :class:`~flask_imagekit.processors.base.Cost`)
    and the size of every image made, and raises :class:`SourceError` when one is
    over ``max_bytes`` or ``max_output_pixels``. ``held``: bytes of other images
    kept alive meanwhile; ``icc``: the output is converted from an ICC profile;
    ``options``: the encoder's.
    """
    tally = _Tally()
    transparency = "transparency" in img.info
    icc = icc or bool(img.info.get("icc_profile"))
    tally.walk(
        img.size,
        img.mode,
        processors,
        format,
        held=held,
        start_held=False,
        transparency=transparency,
        icc=icc,
        options=options,
    )
    tally.check(_what(img, img.size, name), max_bytes, max_output_pixels)


def _what(img: Image.Image, size: tuple[int, int], name: str | None) -> str:
    kind = " ".join(filter(None, (img.format, img.mode)))
    return f"{_describe(name)} ({size[0]}x{size[1]} {kind})"


def _decode_tally(
    img: Image.Image,
    stored_size: tuple[int, int],
    processor_lists: t.Sequence[t.Sequence[t.Any]],
    plans: t.Sequence[ResizePlan | None],
    boxes: t.Sequence[tuple[float, float, float, float] | None],
    orientation: int,
    formats: t.Sequence[str | None],
    options: t.Sequence[t.Mapping[str, t.Any] | None],
    coefficients: int,
    held: int,
) -> _Tally:
    """Tally :func:`decode_many` (``img`` drafted, not loaded yet) and each list's steps."""
    tally = _Tally()
    transparency = "transparency" in img.info
    icc = bool(img.info.get("icc_profile"))
    decoded = image_bytes(img.size, img.mode)
    decoding = decoded + coefficients
    if img.format in _DECODE_PEAK:
        decoding = max(decoding, int(img.width * img.height * _DECODE_PEAK[img.format]))
        # The decoder's copies are freed, but the process does not get all of that
        # memory back for the next steps (measured: about two thirds of it stays;
        # all of it is counted).
        held += decoding - decoded
    tally.add(held + decoded + coefficients, (0, 0), f"decoding at {img.width}x{img.height}")
    scale = stored_size[0] / img.size[0]
    alive = held + decoded
    starts: list[tuple[tuple[int, int], str, int]] = []  # size, mode, bytes
    full: int | None = None
    for plan, box in zip(plans, boxes, strict=True):
        if plan is None or box is None:
            if full is None:
                full = image_bytes(img.size, img.mode)
                if orientation != 1:
                    tally.add(alive + full, (0, 0), "turning the image upright")
                    alive += full
            upright = _upright_size(img.size, orientation)
            starts.append((upright, img.mode, 0))
            continue
        out = _upright_size(plan.size, orientation)
        if scale != 1.0:
            box = (box[0] / scale, box[1] / scale, box[2] / scale, box[3] / scale)
        bands = _bands(out)
        cost = resize_cost(img.size, img.mode, box, out, bands=bands)
        at = f"resizing the {img.width}x{img.height} image to {out[0]}x{out[1]}"
        tally.add(alive + cost.extra, cost.largest, at)
        made = image_bytes(out, img.mode)
        if orientation != 1:
            tally.add(alive + 2 * made, (0, 0), at)
        alive += made
        starts.append((plan.size, img.mode, made))
    distinct = sum(made for _, _, made in starts) + (full or 0)
    for (size, mode, made), processors, plan, format, encoder_options in zip(
        starts, processor_lists, plans, formats, options, strict=True
    ):
        own = made if plan is not None else (full or 0)
        remaining = plan.after if plan is not None else processors
        tally.walk(
            size,
            mode,
            remaining,
            format,
            held=held + distinct - own,
            transparency=transparency,
            icc=icc,
            options=encoder_options,
        )
    return tally


def _bands(size: tuple[int, int]) -> int:
    """How many bands :func:`resize` splits a resize to ``size`` into."""
    width, height = size
    bands = _resize_threads
    if bands < 2 or width * height < _BAND_MIN_PIXELS or height < 8 * bands:
        return 1
    return bands


def _flatten(img: Image.Image, background: tuple[int, ...] = (255, 255, 255)) -> Image.Image:
    """Composite an image with alpha onto an opaque background (white by default)."""
    rgba = img.convert("RGBA")
    base = Image.new("RGBA", rgba.size, background + (255,))
    base.alpha_composite(rgba)
    return base.convert("RGB")


def _to_8bit(img: Image.Image) -> Image.Image:
    """Convert 16/32-bit single-channel images to ``L`` by scaling, not clipping."""
    if img.mode.startswith("I;16"):
        return img.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    low, high = img.getextrema()
    assert isinstance(high, int | float)
    if high > 255:
        # 32-bit images carry no bit depth: take values over 255 as 16-bit data.
        img = img.point(lambda value: value * (1 / 256))
    return img.convert("L")


#: ``keep_icc_profile`` keeps profiles of at most this many bytes; larger ones are
#: converted to sRGB and dropped like any other.
MAX_KEPT_ICC_PROFILE_BYTES = 64 * 2**10

# Perceptual intent. For matrix/TRC RGB profiles (Display P3, Adobe RGB, cameras),
# the common case, LittleCMS computes it exactly as relative colorimetric. For LUT
# profiles (CMYK presses, scanners) it uses the table the profile's maker built to
# map the device onto the full range of the target: paper white to white and ink
# black to black, where relative colorimetric would leave print blacks grey.
_SRGB_INTENT = ImageCms.Intent.PERCEPTUAL
_GREY_MODES = frozenset({"L", "I;16", "I;16L", "I;16B"})
_RGB_MODES = frozenset({"RGB", "RGBA", "RGBX"})
_SAME_MODE_CONVERSIONS = _RGB_MODES | _GREY_MODES
_TRANSFORM_MEMO_SIZE = 32
# Transforms by (profile digest, mode); None for a profile LittleCMS cannot use.
_transforms: dict[tuple[bytes, str], ImageCms.ImageCmsTransform | None] = {}


@functools.cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@functools.cache
def _srgb_grey_profile() -> ImageCms.ImageCmsProfile:
    """A grey profile with the sRGB tone curve: grey pixels stay grey (and 16-bit)."""

    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    d50 = s15(0.9642) + s15(1.0) + s15(0.8249)
    white = b"XYZ " + bytes(4) + d50
    # Parametric curve type 3: the sRGB transfer function.
    curve = b"para" + bytes(4) + struct.pack(">HH", 3, 0)
    curve += b"".join(s15(v) for v in (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045))
    size = 128 + 4 + 2 * 12 + len(white) + len(curve)
    header = struct.pack(">I4sI4s4s4s", size, b"", 0x04300000, b"mntr", b"GRAY", b"XYZ ")
    header += bytes(12) + b"acsp" + bytes(28) + d50
    header += bytes(128 - len(header))
    tags = struct.pack(">I4sII4sII", 2, b"wtpt", 156, len(white), b"kTRC", 176, len(curve))
    return ImageCms.ImageCmsProfile(io.BytesIO(header + tags + white + curve))


def _srgb_transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """A transform of ``mode`` pixels described by ``icc`` to sRGB, None if unusable.

    CMYK goes to RGB; every other mode stays as it is (grey to the sRGB tone curve).
    A profile that LittleCMS cannot parse, or of another colour space, is unusable.
    """
    key = (hashlib.blake2b(icc, digest_size=16).digest(), mode)
    try:
        return _transforms[key]
    except KeyError:
        pass
    transform: ImageCms.ImageCmsTransform | None
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if mode in _GREY_MODES:
            target, out_mode = _srgb_grey_profile(), mode
        else:
            target, out_mode = _srgb_profile(), "RGB" if mode == "CMYK" else mode
        transform = ImageCms.buildTransform(
            profile, target, mode, out_mode, renderingIntent=_SRGB_INTENT
        )
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        transform = None
    if len(_transforms) >= _TRANSFORM_MEMO_SIZE:
        _transforms.clear()
    _transforms[key] = transform
    return transform


def _colour_mode(img: Image.Image) -> str:
    """The mode of the colours a profile describes: palettes' own, grey without alpha."""
    if img.mode in ("P", "PA"):
        return img.palette.mode if img.palette is not None else ""
    return "L" if img.mode == "LA" else img.mode


def _transformed(img: Image.Image, transform: ImageCms.ImageCmsTransform) -> Image.Image:
    out = ImageCms.applyTransform(img, transform)
    assert out is not None
    out.info = {key: value for key, value in img.info.items() if key != "icc_profile"}
    transparent = img.info.get("transparency")
    if isinstance(transparent, int | tuple) and img.mode != "CMYK":
        # The transparent colour of an RGB or grey PNG is a colour too.
        marker = ImageCms.applyTransform(Image.new(img.mode, (1, 1), transparent), transform)
        assert marker is not None
        out.info["transparency"] = marker.getpixel((0, 0))
    return out


def _to_srgb(img: Image.Image, icc: bytes) -> Image.Image | None:
    """``img``, described by ``icc``, converted to sRGB in its own mode (None if it cannot be).

    A palette image gets its palette converted, so it stays a palette image.
    """
    mode = _colour_mode(img)
    transform = _srgb_transform(icc, mode) if mode in _SAME_MODE_CONVERSIONS else None
    if transform is None:
        return None
    if img.mode in ("P", "PA"):
        colours = bytes(img.getpalette(mode) or ())
        strip = Image.frombytes(mode, (len(colours) // len(mode), 1), colours)
        converted = img.copy()
        converted.putpalette(_transformed(strip, transform).tobytes(), mode)
        converted.info.pop("icc_profile", None)
        return converted
    if img.mode == "LA":
        grey = _transformed(img.getchannel("L"), transform)
        converted = Image.merge("LA", (grey, img.getchannel("A")))
        converted.info = {key: value for key, value in img.info.items() if key != "icc_profile"}
        return converted
    return _transformed(img, transform)


def _manage_colour(
    img: Image.Image, icc: bytes | None, keep_icc_profile: bool = False
) -> tuple[Image.Image, bytes | None]:
    """Return ``img`` converted to sRGB from ``icc``, and the profile to write (or None).

    With ``keep_icc_profile``, a usable profile of at most
    :data:`MAX_KEPT_ICC_PROFILE_BYTES` is returned and the pixels stay as they are.
    A profile LittleCMS cannot use for ``img`` is dropped and the pixels, taken as
    sRGB, are kept.
    """
    if not icc:
        return img, None
    mode = _colour_mode(img)
    if (
        keep_icc_profile
        and len(icc) <= MAX_KEPT_ICC_PROFILE_BYTES
        and (mode in _SAME_MODE_CONVERSIONS or mode == "CMYK")
        and _srgb_transform(icc, mode) is not None
    ):
        return img, icc
    converted = _to_srgb(img, icc)
    return (img if converted is None else converted), None


def _cmyk_to_rgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    transform = _srgb_transform(icc, "CMYK") if icc else None
    if transform is not None:
        return _transformed(img, transform)
    rgb = img.convert("RGB")
    rgb.info.pop("icc_profile", None)
    return rgb


def _has_transparency(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def prepare_image(
    img: Image.Image,
    format: str,
    *,
    keep_icc_profile: bool = False,
    icc_profile: bytes | None = None,
) -> tuple[Image.Image, dict[str, t.Any]]:
    """Prepare ``img`` for saving as ``format`` and return it with the save options.

    Alpha is kept for PNG, WebP, AVIF and GIF and flattened on white for JPEG;
    16-bit and CMYK images are converted without clipping or inverted colours.
    Colours are converted to sRGB from the ICC profile of ``img`` (its
    ``info["icc_profile"]``, else ``icc_profile``: the source's, for images that
    processors rebuilt without it), and no profile is written. With
    ``keep_icc_profile``, a profile LittleCMS can use of at most
    :data:`MAX_KEPT_ICC_PROFILE_BYTES` is written instead and the colours are left
    as they are. A profile LittleCMS cannot use is dropped and the pixels are taken
    as sRGB. EXIF, XMP and comments are not carried over.
    """
    fmt = format.upper()
    icc = img.info.get("icc_profile") or icc_profile
    mode = img.mode
    if mode == "CMYK":
        img = _cmyk_to_rgb(img, icc)
        icc = None
    elif mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        if fmt == "PNG" and mode.startswith("I;16"):
            if mode != "I;16":  # PNG stores 16-bit greyscale natively, in this mode.
                img = img.convert("I").convert("I;16")
        else:
            img = _to_8bit(img)
    elif mode in ("1", "RGBX", "YCbCr", "LAB", "HSV"):
        img = img.convert("L" if mode == "1" else "RGB")
    elif mode in ("PA", "RGBa", "La"):
        img = img.convert("RGBA" if mode != "La" else "LA")

    save_kwargs: dict[str, t.Any] = dict(ENCODER_DEFAULTS.get(fmt, {}))
    mode = img.mode
    if fmt == "JPEG":
        if _has_transparency(img):
            img = _flatten(img)
        elif mode == "P":
            img = img.convert("RGB")
        elif mode not in ("RGB", "L"):
            img = img.convert("RGB")
    elif fmt == "GIF":
        img, save_kwargs = _prepare_gif(img, save_kwargs)
    elif fmt in ("WEBP", "AVIF"):
        if mode not in ("RGB", "RGBA"):
            # They store grey as RGB, which a grey profile does not describe.
            img, icc = _manage_colour(img, icc)
            img = img.convert("RGBA" if _has_transparency(img) else "RGB")
    elif fmt == "PNG":
        if mode == "P" and "transparency" in img.info:
            save_kwargs["transparency"] = img.info["transparency"]
        elif mode not in ("RGB", "RGBA", "L", "LA", "P", "I;16", "1"):
            img = img.convert("RGBA" if _has_transparency(img) else "RGB")
    elif fmt in _RGBA_FORMATS:
        if mode not in ("RGB", "RGBA", "L", "LA"):
            img = img.convert("RGBA" if _has_transparency(img) else "RGB")
    elif _has_transparency(img):
        img = _flatten(img)
    elif mode not in ("RGB", "L"):
        img = img.convert("RGB")

    # Last, on the output (resized, flattened, quantised): the conversion is cheap.
    keep = keep_icc_profile and fmt in _ICC_FORMATS and img.mode not in ("P", "1")
    img, kept = _manage_colour(img, icc, keep)
    if kept:
        save_kwargs["icc_profile"] = kept
    return img, save_kwargs


def _prepare_gif(
    img: Image.Image, save_kwargs: dict[str, t.Any]
) -> tuple[Image.Image, dict[str, t.Any]]:
    transparency = img.info.get("transparency")
    if img.mode == "P" and not isinstance(transparency, bytes):
        if transparency is not None:
            save_kwargs["transparency"] = transparency
        return img, save_kwargs
    if _has_transparency(img):
        # Palette transparency is binary: more opaque than not becomes opaque.
        rgba = img.convert("RGBA")
        mask = rgba.getchannel("A").point(lambda a: 255 if a <= 128 else 0)
        pal = rgba.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=255)
        pal.paste(255, mask=mask)
        save_kwargs["transparency"] = 255
        return pal, save_kwargs
    return img.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE), save_kwargs


def save_image(
    img: Image.Image,
    outfile: t.IO[bytes],
    format: str,
    options: t.Mapping[str, t.Any] | None = None,
    autoconvert: bool = True,
    *,
    keep_icc_profile: bool = False,
    icc_profile: bytes | None = None,
) -> t.IO[bytes]:
    """Encode ``img`` as ``format`` into ``outfile`` and return ``outfile``, rewound.

    With ``autoconvert`` (the default) the image is first prepared for the format
    by :func:`prepare_image`; ``options`` are passed to Pillow's encoder and win
    over the defaults. Either way the colours are converted to sRGB and no ICC
    profile is written, unless ``keep_icc_profile`` keeps a small one (see
    :func:`prepare_image`, also for ``icc_profile``); without ``autoconvert`` the
    mode is kept, so a CMYK image keeps its pixels. Other metadata (palette
    transparency aside) is never written unless ``options`` pass it explicitly.
    """
    fmt = format.upper()
    if autoconvert:
        img, save_kwargs = prepare_image(
            img, fmt, keep_icc_profile=keep_icc_profile, icc_profile=icc_profile
        )
    else:
        keep = keep_icc_profile and fmt in _ICC_FORMATS
        img, kept = _manage_colour(img, img.info.get("icc_profile") or icc_profile, keep)
        save_kwargs = {"icc_profile": kept} if kept else {}
    save_kwargs.update(options or {})
    # Encoders fall back to ``img.info`` for EXIF, XMP and comments: hide them.
    original_info = img.info
    img.info = {k: v for k, v in original_info.items() if k in ("transparency",)}
    try:
        outfile.seek(0)
        img.save(outfile, fmt, **save_kwargs)
        outfile.truncate()
    finally:
        img.info = original_info
    outfile.seek(0)
    return outfile
