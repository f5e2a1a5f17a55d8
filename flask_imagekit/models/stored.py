"""Stored images: what a column holds, and the source its value names.

A :func:`~flask_imagekit.models.ProcessedImageField` column reads as a
:class:`StoredImage`, a ``str`` that also knows its storage, URL and size. Any
source column's value (a plain name or a stored image) gives a
:class:`~flask_imagekit.sources.SourceFile` through :func:`column_source`.
"""

from __future__ import annotations

import logging
import typing as t

from markupsafe import escape
from PIL import Image, UnidentifiedImageError

from ..exceptions import ImageKitError
from ..globals import current_state
from ..sources import SourceFile

if t.TYPE_CHECKING:
    from ..storage import Storage

__all__ = ["StoredImage", "column_source", "name_of"]

logger = logging.getLogger(__name__)


class StoredImage(str):
    """A stored image name with ``.name``, ``.url``, ``.width``, ``.height`` and ``.open()``."""

    __slots__ = ("_size", "_storage")

    _storage: Storage | None
    _size: tuple[int, int] | None

    def __new__(cls, name: str, storage: Storage | None = None) -> StoredImage:
        self = super().__new__(cls, name)
        self._storage = storage
        self._size = None
        return self

    @property
    def name(self) -> str:
        """The name in the storage."""
        return str(self)

    @property
    def column_storage(self) -> Storage | None:
        """The storage the column was given, or None for the app's source storage."""
        return self._storage

    @property
    def storage(self) -> Storage:
        """The storage holding the image (the app's source storage by default)."""
        if self._storage is None:
            return current_state().source_storage
        return self._storage

    @property
    def url(self) -> str:
        """The image's URL."""
        return self.storage.url(self.name)

    @property
    def path(self) -> str:
        """The image's local path (local storages only)."""
        return self.storage.path(self.name)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``, read from the file's header once."""
        if self._size is None:
            with self.storage.open(self.name, "rb") as fp, Image.open(fp) as img:
                self._size = img.size
        return self._size

    @property
    def width(self) -> int:
        """Width in pixels."""
        return self.size[0]

    @property
    def height(self) -> int:
        """Height in pixels."""
        return self.size[1]

    def open(self, mode: str = "rb") -> t.IO[bytes]:
        """Open the stored image."""
        return self.storage.open(self.name, mode)

    def __html__(self) -> str:
        try:
            size = f' width="{self.width}" height="{self.height}"'
        except (OSError, ImageKitError, UnidentifiedImageError) as exc:
            # A stored file that is gone or unreadable must not break the page.
            logger.warning("flask_imagekit: cannot read the size of %r: %s", self.name, exc)
            size = ""
        return f'<img src="{escape(self.url)}"{size}>'


def name_of(value: t.Any) -> str | None:
    """The stored name a column value stands for; None for an empty column."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    name = getattr(value, "name", None)
    return name if isinstance(name, str) and name else None


def column_source(instance: object, attname: str, value: t.Any) -> SourceFile | None:
    """The source that ``value``, held by ``instance.attname``, names (None if empty).

    The source keeps its row and column, for
    :func:`~flask_imagekit.utils.get_field_info`, and the storage of a stored image.
    """
    name = name_of(value)
    if not name:
        return None
    storage = value.column_storage if isinstance(value, StoredImage) else None
    return SourceFile(name, instance=instance, attname=attname, storage=storage)
