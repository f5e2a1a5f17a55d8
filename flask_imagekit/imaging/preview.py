"""Blur previews: a tiny image, inline as a data URI, shown while the real one loads.

The preview is the image scaled down to a few pixels and encoded as a WebP: the
browser scales it up to the size of the ``<img>`` (``background-size: cover``)
and blurs it on the way, so it needs no script and no request. It is made
from an image already at hand (the smallest output of a generation), never from
a second decode of the source.

Measured against a BlurHash string of the same image (``python -m
bench.responsive previews``): the WebP URI is smaller than BlurHash's own PNG URI
(which a browser cannot decode from the hash without a script), costs
a fraction of a millisecond to make instead of milliseconds, and keeps the
image's colours and alpha.
"""

from __future__ import annotations

import base64
import io

from PIL import Image

from .encoding import prepare_image

__all__ = ["MAX_PREVIEW_LENGTH", "PREVIEW_SIDE", "blur_preview"]

#: The longest a preview's data URI may be, in characters (bytes).
MAX_PREVIEW_LENGTH = 1024
#: Pixels along the longer side of a preview.
PREVIEW_SIDE = 16

# Tried in turn until the URI fits: (longer side, WebP quality). Noise is the
# worst case, and the first rung fits it: 16x16 pixels of noise at quality 50 make
# a URI of about 720 characters with alpha (320 without); the others are a margin
# for WebP encoders that do worse.
_LADDER = ((PREVIEW_SIDE, 50), (PREVIEW_SIDE, 30), (12, 30), (8, 30), (4, 30))
_PREFIX = "data:image/webp;base64,"
# Modes the scaling works in as they are; others are converted first.
_SCALABLE = frozenset({"RGB", "RGBA", "L", "LA", "CMYK", "I", "F"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


def blur_preview(img: Image.Image) -> str | None:
    """A ``data:image/webp;base64,...`` URI of ``img`` at a few pixels, or None.

    At most :data:`MAX_PREVIEW_LENGTH` characters and :data:`PREVIEW_SIDE`
    pixels along the longer side, with the aspect ratio of ``img`` (a side is
    never less than 1 pixel), its alpha kept and its colours in sRGB. None when
    no preview of that length can be made (nor an image of that mode encoded).
    """
    try:
        source = _scalable(img)
        for side, quality in _LADDER:
            uri = _encode(_shrink(source, side), quality)
            if len(uri) <= MAX_PREVIEW_LENGTH:
                return uri
    except Exception:
        # A preview is optional: the page shows the image without one.
        return None
    return None


def _scalable(img: Image.Image) -> Image.Image:
    alpha = img.mode in _ALPHA_MODES or "transparency" in img.info
    if img.mode in _SCALABLE:
        return img
    if img.mode.startswith("I;16"):
        return img.convert("I")
    return img.convert("RGBA" if alpha else "RGB")


def _shrink(img: Image.Image, side: int) -> Image.Image:
    width, height = img.size
    scale = side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == img.size:
        return img
    # A box filter averages every pixel: the right blur for a few pixels, and the
    # cheapest one.
    return img.resize(size, Image.Resampling.BOX)


def _encode(img: Image.Image, quality: int) -> str:
    prepared, _ = prepare_image(img, "WEBP")
    if prepared.mode == "LA":
        prepared = prepared.convert("RGBA")
    elif prepared.mode not in ("RGB", "RGBA"):
        prepared = prepared.convert("RGB")
    out = io.BytesIO()
    # method 6: the best compression; on a few pixels it costs microseconds.
    prepared.save(out, "WEBP", quality=quality, method=6)
    return _PREFIX + base64.b64encode(out.getvalue()).decode("ascii")
