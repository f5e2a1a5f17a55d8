"""Colour management: pixels described by an ICC profile, converted to sRGB (LittleCMS)."""

from __future__ import annotations

import functools
import hashlib
import io
import struct

from PIL import Image, ImageCms

__all__ = [
    "MAX_KEPT_ICC_PROFILE_BYTES",
    "TRANSFORMS",
    "cmyk_to_rgb",
    "manage_colour",
    "srgb_transform",
]

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

#: The transforms :func:`srgb_transform` built, by (profile digest, mode); None for
#: a profile LittleCMS cannot use. Emptied when full; clear it to time a cold build.
TRANSFORMS: dict[tuple[bytes, str], ImageCms.ImageCmsTransform | None] = {}


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


def srgb_transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """A transform of ``mode`` pixels described by ``icc`` to sRGB, None if unusable.

    CMYK goes to RGB; every other mode stays as it is (grey to the sRGB tone curve).
    A profile that LittleCMS cannot parse, or of another colour space, is unusable.
    Transforms are kept in :data:`TRANSFORMS`.
    """
    key = (hashlib.blake2b(icc, digest_size=16).digest(), mode)
    try:
        return TRANSFORMS[key]
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
    if len(TRANSFORMS) >= _TRANSFORM_MEMO_SIZE:
        TRANSFORMS.clear()
    TRANSFORMS[key] = transform
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
    transform = srgb_transform(icc, mode) if mode in _SAME_MODE_CONVERSIONS else None
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


def manage_colour(
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
        and srgb_transform(icc, mode) is not None
    ):
        return img, icc
    converted = _to_srgb(img, icc)
    return (img if converted is None else converted), None


def cmyk_to_rgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    """The CMYK ``img`` as RGB without a profile: through ``icc`` if usable, else Pillow's."""
    transform = srgb_transform(icc, "CMYK") if icc else None
    if transform is not None:
        return _transformed(img, transform)
    rgb = img.convert("RGB")
    rgb.info.pop("icc_profile", None)
    return rgb
