"""Small public helpers: formats and extensions, field info, image I/O.

The format helpers give pilkit's results, so names generated here match the ones
django-imagekit would produce.
"""

from __future__ import annotations

import functools
import os
import typing as t

from PIL import Image

from .exceptions import ImageKitError, UnknownExtension, UnknownFormat
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

# Extensions pilkit prefers over the first one Pillow lists for a format.
_DEFAULT_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png"}


def _registered_extensions() -> dict[str, str]:
    if len(Image.EXTENSION) < 20:
        Image.init()
    return Image.EXTENSION


@functools.lru_cache(maxsize=256)
def extension_to_format(extension: str) -> str:
    """Return the Pillow format of ``extension`` (``".jpg"`` -> ``"JPEG"``).

    Raises :class:`UnknownExtension` when no Pillow plugin claims the extension.
    """
    fmt = _registered_extensions().get(extension.lower())
    if not fmt:
        msg = f"No image format uses the extension {extension!r}."
        raise UnknownExtension(msg)
    return fmt


@functools.lru_cache(maxsize=256)
def format_to_extension(format: str | None) -> str:
    """Return the usual extension of a Pillow format (``"JPEG"`` -> ``".jpg"``).

    Raises :class:`UnknownFormat` when Pillow does not know the format.
    """
    if format:
        fmt = format.upper()
        extensions = _registered_extensions()
        preferred = _DEFAULT_EXTENSIONS.get(fmt)
        if preferred and preferred in extensions:
            return preferred
        for ext, ext_format in extensions.items():
            if ext_format == fmt:
                return ext
    msg = f"Unknown image format {format!r}; use a format name Pillow knows, such as 'JPEG'."
    raise UnknownFormat(msg)


@functools.lru_cache(maxsize=1024)
def suggest_extension(name: str, format: str | None) -> str:
    """Return the extension a file called ``name`` should have in ``format``.

    The original extension wins when it already denotes ``format`` (``.jpeg``
    stays ``.jpeg`` for JPEG); an unknown format keeps the original extension.
    """
    original = os.path.splitext(name)[1]
    try:
        suggested = format_to_extension(format)
    except UnknownFormat:
        return original
    if suggested.lower() == original.lower():
        return original
    try:
        original_format = extension_to_format(original)
    except UnknownExtension:
        return suggested
    assert format is not None
    return original if format.lower() == original_format.lower() else suggested


#: Formats a format-less spec keeps when the source name says so; anything else is PNG.
WEB_FORMATS = frozenset({"JPEG", "PNG", "GIF", "WEBP", "AVIF"})


def format_for_name(name: str | None, sniffed: str | None = None) -> str:
    """The output format of a spec without ``format`` for a source called ``name``.

    The name's extension decides when it names a web format (JPEG, PNG, GIF, WebP,
    AVIF); any other name gives PNG, so an uploaded ``x.html`` can never become an
    ``.html`` cache file. A source without a name uses its ``sniffed`` format by
    the same rule.
    """
    ext = os.path.splitext(name)[1] if name else ""
    if ext:
        try:
            fmt = extension_to_format(ext)
        except UnknownExtension:
            return "PNG"
        return fmt if fmt in WEB_FORMATS else "PNG"
    if name:
        return "PNG"
    if sniffed == "MPO":
        return "JPEG"
    return sniffed if sniffed in WEB_FORMATS else "PNG"


def output_extension(source_name: str | None, format: str | None) -> str:
    """The extension of a file that holds ``format`` and derives from ``source_name``.

    Follows the output format only: the source name's own extension is kept when
    it denotes the same format (``.jpeg`` stays ``.jpeg`` for JPEG), otherwise the
    format's usual extension is used. A format Pillow does not know gives no
    extension, never the source's.
    """
    try:
        format_to_extension(format)
    except UnknownFormat:
        return ""
    return suggest_extension(source_name or "", format)


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
