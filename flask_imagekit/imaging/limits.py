"""The default limits of a generation, and how a source is named in the errors."""

from __future__ import annotations

from .. import defaults

__all__ = [
    "DEFAULT_ALLOWED_FORMATS",
    "DEFAULT_MAX_DECODE_BYTES",
    "DEFAULT_MAX_OUTPUT_PIXELS",
    "describe",
]

#: The decoders sources may use by default.
DEFAULT_ALLOWED_FORMATS = defaults.ALLOWED_SOURCE_FORMATS
#: Sources whose decoding is estimated to need more memory are refused.
DEFAULT_MAX_DECODE_BYTES = defaults.MAX_DECODE_BYTES
#: Outputs and intermediates above this many pixels are refused before allocating.
DEFAULT_MAX_OUTPUT_PIXELS = defaults.MAX_OUTPUT_PIXELS


def describe(name: str | None) -> str:
    """How errors name the source called ``name`` (or a source without a name)."""
    return repr(name) if name else "the source"
