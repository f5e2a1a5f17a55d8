"""Image formats and file extensions: which format a name means, which extension a format gets.

The answers are pilkit's, so names generated here match the ones django-imagekit
would produce.
"""

from __future__ import annotations

import functools
import io
import os
import typing as t

from PIL import Image

from .exceptions import UnknownExtension, UnknownFormat

__all__ = [
    "WEB_FORMATS",
    "extension_to_format",
    "format_for_name",
    "format_to_extension",
    "output_extension",
    "sniff_format",
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


def sniff_format(data: bytes | bytearray | memoryview | t.IO[bytes]) -> str:
    """Return the Pillow format of an encoded image, read from its header.

    ``data`` is the image's bytes or a binary stream. A seekable stream is read
    from its start and left where it was; any other stream is read from where it is.
    Raises :class:`UnknownFormat` when Pillow does not recognise the data.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        stream: t.IO[bytes] = io.BytesIO(data)
        position = None
    else:
        stream = data
        position = stream.tell() if stream.seekable() else None
        if position is not None:
            stream.seek(0)
    try:
        with Image.open(stream) as img:
            fmt = img.format
    except (OSError, SyntaxError, ValueError) as exc:
        msg = f"The data is not an image Pillow recognises ({exc}); pass an encoded image."
        raise UnknownFormat(msg) from exc
    finally:
        if position is not None:
            stream.seek(position)
    if not fmt:
        msg = "Pillow opened the image but could not name its format; pass an encoded image."
        raise UnknownFormat(msg)
    return fmt
