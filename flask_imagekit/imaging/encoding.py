"""Encoding for the web: modes fixed per format, colours in sRGB, no metadata written."""

from __future__ import annotations

import typing as t

from PIL import Image

from .colour import cmyk_to_rgb, manage_colour

__all__ = ["ALPHA_MODES", "ENCODER_DEFAULTS", "WIDE_MODES", "prepare_image", "save_image"]

#: Encoder settings used unless a spec's ``options`` (or ``format_options``) say
#: otherwise, chosen by measuring bytes, encode time and SSIM on photos at 480 to
#: 1600 pixels wide (``python -m bench.responsive sweep``). AVIF: quality 60 is
#: better than JPEG quality 75 by SSIM at every width, in 10-30 % fewer bytes;
#: speed 8 is within 1 % of speed 6's bytes and SSIM in a fifth of its time.
#: WebP: quality 80 is about JPEG 75 and 80; method 0 encodes 4x faster than 4
#: for 0-6 % more bytes at the same SSIM (WebP is the fallback of the few
#: browsers without AVIF, so its time counts more than its bytes).
ENCODER_DEFAULTS: dict[str, dict[str, t.Any]] = {
    "JPEG": {"optimize": True},
    "AVIF": {"quality": 60, "speed": 8},
    "WEBP": {"quality": 80, "method": 0},
}

#: Modes with an alpha channel.
ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
#: Modes of more than 8 bits per sample, which the web formats (16-bit PNG aside)
#: get scaled down to ``L``.
WIDE_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})

_RGBA_FORMATS = frozenset({"PNG", "WEBP", "AVIF", "TIFF"})
_ICC_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "AVIF", "TIFF"})


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


def _has_transparency(img: Image.Image) -> bool:
    return img.mode in ALPHA_MODES or "transparency" in img.info


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
    :data:`~flask_imagekit.imaging.colour.MAX_KEPT_ICC_PROFILE_BYTES` is written
    instead and the colours are left as they are. A profile LittleCMS cannot use
    is dropped and the pixels are taken as sRGB. EXIF, XMP and comments are not
    carried over.
    """
    fmt = format.upper()
    icc = img.info.get("icc_profile") or icc_profile
    mode = img.mode
    if mode == "CMYK":
        img = cmyk_to_rgb(img, icc)
        icc = None
    elif mode in WIDE_MODES:
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
            img, icc = manage_colour(img, icc)
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
    img, kept = manage_colour(img, icc, keep)
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
        img, kept = manage_colour(img, img.info.get("icc_profile") or icc_profile, keep)
        save_kwargs = {"icc_profile": kept} if kept else {}
    save_kwargs.update(options or {})
    # Encoders fall back to ``img.info`` for EXIF, XMP and comments, and Pillow
    # keeps its encoder state on the image it saves. The image may be shared with
    # other encodings (see flask_imagekit.specs.sharing): save a view of the same
    # pixels, whose info hides the metadata, and leave the image itself untouched.
    img.load()
    view = img._new(img.im)
    view.info = {k: v for k, v in img.info.items() if k in ("transparency",)}
    outfile.seek(0)
    view.save(outfile, fmt, **save_kwargs)
    outfile.truncate()
    outfile.seek(0)
    return outfile
