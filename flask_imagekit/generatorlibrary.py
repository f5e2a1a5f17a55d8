"""Generators flask_imagekit registers by default.

``imagekit:thumbnail`` is the generator the ``thumbnail`` template helper uses.
"""

from __future__ import annotations

import typing as t

from .processors import Thumbnail as ThumbnailProcessor
from .registry import builtin_registry
from .specs import ImageSpec

__all__ = ["Thumbnail"]


class Thumbnail(ImageSpec):
    """A spec resizing with pilkit's ``Thumbnail`` processor.

    ``anchor`` implies ``crop``; with both dimensions it crops by default; it
    does not upscale unless ``upscale=True``.
    """

    def __init__(
        self,
        width: int | None = None,
        height: int | None = None,
        anchor: t.Any = None,
        crop: bool | None = None,
        upscale: bool | None = None,
        **kwargs: t.Any,
    ) -> None:
        self.processors = [
            ThumbnailProcessor(width, height, anchor=anchor, crop=crop, upscale=upscale)
        ]
        super().__init__(**kwargs)


builtin_registry.register_generator("imagekit:thumbnail", Thumbnail)
