"""Pillow at the edges of the pipeline: open (allow-list, pixel cap), decode, encode.

``open_image`` reads only the header and refuses what must not be decoded.
``decode`` loads the pixels, upright, and takes the fast path when the first
processor says what size it resizes to: JPEGs are decoded at a reduced scale
(keeping a margin over the output) and the crop happens inside the resize.
``prepare_image`` and ``save_image`` encode for the web: modes fixed per format,
the ICC profile kept, EXIF/XMP/comments dropped.
"""

from __future__ import annotations

import concurrent.futures
import io
import math
import os
import threading
import typing as t

from PIL import Image, ImageCms, UnidentifiedImageError, features

from .exceptions import SourceError
from .processors.base import ResizePlan, plan_processors

__all__ = [
    "DEFAULT_ALLOWED_FORMATS",
    "DEFAULT_MAX_DECODE_BYTES",
    "DRAFT_MARGIN",
    "decode",
    "decode_many",
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
# Outputs and intermediates above this many pixels are refused before allocating.
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
        fp.seek(0)
        # Entropy-coded data escapes 0xFF as 0xFF00, so this counts real SOS markers.
        scans = fp.read().count(b"\xff\xda")
    finally:
        fp.seek(position)
    if scans > MAX_JPEG_SCANS:
        msg = (
            f"{what} is a progressive JPEG of {scans} scans (at most {MAX_JPEG_SCANS} are "
            "decoded). Save it again as a baseline or ordinary progressive JPEG."
        )
        raise SourceError(msg)


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
) -> tuple[Image.Image, t.Sequence[t.Any]]:
    """Load ``img`` upright and return it with the processors still to run.

    When the first processor can be expressed as one resize of a region of its
    input (see :class:`~flask_imagekit.processors.base.ResizePlan`), that resize
    is done here, on a JPEG decoded at reduced scale, and only the processors
    that finish the plan are returned. Otherwise the whole image is decoded and
    ``processors`` are returned unchanged.
    """
    return decode_many(img, [processors], auto_orient=auto_orient, name=name)[0]


def decode_many(
    img: Image.Image,
    processor_lists: t.Sequence[t.Sequence[t.Any]],
    *,
    auto_orient: bool = True,
    name: str | None = None,
) -> list[tuple[Image.Image, t.Sequence[t.Any]]]:
    """Decode ``img`` once for several processor lists (one per spec of a source).

    The JPEG reduction is the largest that every list's plan allows, so the
    smaller outputs are derived from the same reduced decode.
    """
    if img.format not in ("JPEG", "MPO"):
        # Reading EXIF from other formats may decode pixels: surface errors here.
        _load(img, name)
    orientation = exif_orientation(img) if auto_orient else 1
    stored_size = img.size
    upright = _upright_size(stored_size, orientation)
    plans = [
        _plan(processors, upright) if processors and img.mode in _PLAN_MODES else None
        for processors in processor_lists
    ]
    boxes = [
        None if plan is None else _to_stored_box(plan.box, stored_size, orientation)
        for plan in plans
    ]
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
    futures = [
        _pool().submit(
            img.resize,
            (width, y1 - y0),
            Image.Resampling.LANCZOS,
            (left, top + y0 * step, right, top + y1 * step),
            REDUCING_GAP,
        )
        for y0, y1 in zip(edges, edges[1:], strict=False)
    ]
    result = Image.new(img.mode, size)
    for y0, future in zip(edges, futures, strict=False):
        result.paste(future.result(), (0, y0))
    result.info = dict(img.info)
    return result


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


def _cmyk_to_rgb(img: Image.Image) -> Image.Image:
    icc = img.info.get("icc_profile")
    if icc:
        try:
            source_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            srgb = ImageCms.createProfile("sRGB")
            converted = ImageCms.profileToProfile(img, source_profile, srgb, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            converted = None
        if converted is not None:
            converted.info.pop("icc_profile", None)
            return converted
    rgb = img.convert("RGB")
    rgb.info.pop("icc_profile", None)
    return rgb


def _has_transparency(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def prepare_image(img: Image.Image, format: str) -> tuple[Image.Image, dict[str, t.Any]]:
    """Prepare ``img`` for saving as ``format`` and return it with the save options.

    Alpha is kept for PNG, WebP, AVIF and GIF and flattened on white for JPEG;
    16-bit and CMYK images are converted without clipping or inverted colours.
    The ICC profile is kept; EXIF, XMP and comments are not carried over.
    """
    fmt = format.upper()
    icc = img.info.get("icc_profile")
    mode = img.mode
    if mode == "CMYK":
        img = _cmyk_to_rgb(img)
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

    if icc and fmt in _ICC_FORMATS and img.mode not in ("P", "1"):
        save_kwargs["icc_profile"] = icc
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
) -> t.IO[bytes]:
    """Encode ``img`` as ``format`` into ``outfile`` and return ``outfile``, rewound.

    With ``autoconvert`` (the default) the image is first prepared for the format
    by :func:`prepare_image`; ``options`` are passed to Pillow's encoder and win
    over the defaults. Metadata other than the ICC profile (and palette
    transparency) is never written unless ``options`` pass it explicitly.
    """
    fmt = format.upper()
    if autoconvert:
        img, save_kwargs = prepare_image(img, fmt)
    else:
        save_kwargs = {}
        if img.info.get("icc_profile") and fmt in _ICC_FORMATS:
            save_kwargs["icc_profile"] = img.info["icc_profile"]
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
