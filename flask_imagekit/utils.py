"""Small public helpers: formats and extensions, field info, image I/O.

The format helpers give pilkit's results, so names generated here match the ones
django-imagekit would produce.
"""

from __future__ import annotations

import typing as t

from .exceptions import ImageKitError, UnknownExtension, UnknownFormat
from .formats import (
    WEB_FORMATS,
    extension_to_format,
    format_for_name,
    format_to_extension,
    output_extension,
    suggest_extension,
)
from .imaging import open_image, prepare_image, save_image

__all__ = [
    "WEB_FORMATS",
    "UnknownExtension",
    "UnknownFormat",
    "extension_to_format",
    "format_for_name",
    "format_to_extension",
    "get_field_info",
    "open_image",
    "output_extension",
    "prepare_image",
    "save_image",
    "suggest_extension",
]


def get_field_info(source: object) -> tuple[t.Any, str]:
    """Return ``(instance, attribute name)`` of a source that comes from a model column.

    Inside a dynamic spec, ``get_field_info(self.source)`` gives the model instance
    whose column holds the source, so processors can depend on its other columns.
    """
    instance = getattr(source, "instance", None)
    attname = getattr(source, "attname", None)
    if instance is None or attname is None:
        msg = (
            f"The source {source!r} does not come from a model column, so it has no field "
            "info. Use the spec through an ImageSpecField, or do not call get_field_info()."
        )
        raise ImageKitError(msg)
    return instance, attname
