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

One concept per submodule, each importing only those listed before it:
``limits`` (defaults), ``jpeg`` (progressive scans), ``opening``, ``resampling``,
``colour`` (ICC), ``encoding``, ``preview`` (blur previews), ``budgets``,
``planning`` (the fast path) and ``decoding``. Orientation lives in
:mod:`flask_imagekit.processors.orientation`, shared with the ``Transpose`` processor.
"""

from __future__ import annotations

from ..processors.orientation import exif_orientation
from .budgets import check_pipeline, encode_cost
from .colour import MAX_KEPT_ICC_PROFILE_BYTES
from .decoding import decode, decode_many
from .encoding import ENCODER_DEFAULTS, prepare_image, save_image
from .jpeg import MAX_JPEG_SCANS
from .limits import DEFAULT_ALLOWED_FORMATS, DEFAULT_MAX_DECODE_BYTES, DEFAULT_MAX_OUTPUT_PIXELS
from .opening import decode_cost, load_pixels, open_image
from .planning import DRAFT_MARGIN
from .preview import MAX_PREVIEW_LENGTH, blur_preview
from .resampling import resize, set_resize_threads

__all__ = [
    "DEFAULT_ALLOWED_FORMATS",
    "DEFAULT_MAX_DECODE_BYTES",
    "DEFAULT_MAX_OUTPUT_PIXELS",
    "DRAFT_MARGIN",
    "ENCODER_DEFAULTS",
    "MAX_JPEG_SCANS",
    "MAX_PREVIEW_LENGTH",
    "MAX_KEPT_ICC_PROFILE_BYTES",
    "blur_preview",
    "check_pipeline",
    "decode",
    "decode_cost",
    "decode_many",
    "encode_cost",
    "exif_orientation",
    "load_pixels",
    "open_image",
    "prepare_image",
    "resize",
    "save_image",
    "set_resize_threads",
]
