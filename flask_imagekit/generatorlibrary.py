"""Generators flask_imagekit provides.

:class:`Thumbnail` is registered as ``imagekit:thumbnail`` in
:data:`flask_imagekit.registry.builtin_registry`; the ``thumbnail`` template
helper uses it.
"""

from __future__ import annotations

import typing as t

from .exceptions import ImproperlyConfigured, UnknownFormat
from .formats import format_to_extension
from .processors import Thumbnail as ThumbnailProcessor
from .specs import ImageSpec

__all__ = ["Thumbnail"]


class Thumbnail(ImageSpec):
    """A spec resizing with pilkit's ``Thumbnail`` processor.

    ``anchor`` implies ``crop``; with both dimensions it crops by default; it
    does not upscale unless ``upscale=True``. ``format`` picks the output format
    (by default it follows the source name, see :func:`~flask_imagekit.utils.format_for_name`).
    """

    def __init__(
        self,
        width: int | None = None,
        height: int | None = None,
        anchor: t.Any = None,
        crop: bool | None = None,
        upscale: bool | None = None,
        format: str | None = None,
        **kwargs: t.Any,
    ) -> None:
        self.processors = [
            ThumbnailProcessor(width, height, anchor=anchor, crop=crop, upscale=upscale)
        ]
        if format is not None:
            self.format = _check_format(format)
        super().__init__(**kwargs)


def _check_format(format: object) -> str:
    try:
        if not isinstance(format, str):
            raise UnknownFormat(repr(format))
        format_to_extension(format)
    except UnknownFormat:
        msg = (
            f"thumbnail(format={format!r}) is not an image format Pillow knows; use one "
            "such as 'JPEG', 'PNG', 'WEBP' or 'AVIF'."
        )
        raise ImproperlyConfigured(msg) from None
    return format.upper()
