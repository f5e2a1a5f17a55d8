"""The default values of the settings that code below the config layer needs too.

``flask_imagekit.config.DEFAULTS`` is built from these, and code that runs
without an app (a spec generated outside an app context, a namer called
directly) falls back on them, so each default is written once.
"""

from __future__ import annotations

from PIL import features

__all__ = [
    "ALLOWED_SOURCE_FORMATS",
    "CACHEFILE_DIR",
    "MAX_CANDIDATE_WIDTH",
    "MAX_DECODE_BYTES",
    "MAX_OUTPUT_PIXELS",
    "MAX_SOURCE_PIXELS",
    "RESPONSIVE_FORMATS",
    "RESPONSIVE_WIDTHS",
]

#: ``IMAGEKIT_CACHEFILE_DIR``: the prefix of cache file names.
CACHEFILE_DIR = "CACHE/images"

#: ``IMAGEKIT_ALLOWED_SOURCE_FORMATS``: the decoders sources may use (AVIF when Pillow has it).
ALLOWED_SOURCE_FORMATS: tuple[str, ...] = tuple(
    fmt
    for fmt in ("JPEG", "PNG", "GIF", "WEBP", "AVIF", "BMP", "TIFF")
    if fmt != "AVIF" or features.check("avif")
)

#: ``IMAGEKIT_MAX_SOURCE_PIXELS``: larger sources are refused.
MAX_SOURCE_PIXELS = 50_000_000

#: ``IMAGEKIT_MAX_DECODE_BYTES``: generations estimated to need more memory are refused.
MAX_DECODE_BYTES = 224 * 2**20

#: ``IMAGEKIT_MAX_OUTPUT_PIXELS``: outputs and intermediates above this are refused.
MAX_OUTPUT_PIXELS = 25_000_000

#: ``IMAGEKIT_RESPONSIVE_WIDTHS``: the widths ``picture()`` and ``srcset()`` offer, in
#: pixels (each at most the spec's own output width, which is always offered too).
RESPONSIVE_WIDTHS: tuple[int, ...] = (480, 800, 1200, 1600)

#: The widest responsive candidate, in pixels: a width ``picture()`` offers, a spec
#: declares, or an on-request URL or a job names (a 16K screen at 2x is 15360 wide).
MAX_CANDIDATE_WIDTH = 16_384

#: ``IMAGEKIT_RESPONSIVE_FORMATS``: the modern formats ``picture()`` offers before the
#: spec's own, best first; those this Pillow build cannot encode are left out.
RESPONSIVE_FORMATS: tuple[str, ...] = tuple(
    fmt for fmt in ("AVIF", "WEBP") if features.check(fmt.lower())
)
