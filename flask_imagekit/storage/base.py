"""The storage interface, and the helpers every storage shares."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, BinaryIO, Protocol, runtime_checkable

__all__ = ["CHUNK_SIZE", "MAX_NAME_ATTEMPTS", "Storage", "iter_chunks", "normalise_base_url"]

#: How many bytes a save reads from a file-like object at a time.
CHUNK_SIZE = 64 * 1024
#: How many names a save with ``overwrite=False`` tries before giving up.
MAX_NAME_ATTEMPTS = 100


@runtime_checkable
class Storage(Protocol):
    """The interface every storage follows.

    Names are relative and ``"/"``-separated; every method validates them with
    :func:`~flask_imagekit.storage.clean_name` and raises
    :class:`~flask_imagekit.exceptions.SuspiciousName` for a name that is invalid
    or would escape the storage root.
    """

    def open(self, name: str, mode: str = "rb") -> BinaryIO:
        """Open the file *name*; raise :class:`FileNotFoundError` if it does not exist."""
        ...

    def save(self, name: str, content: bytes | BinaryIO, *, overwrite: bool = True) -> str:
        """Store *content* under *name* and return the name actually used.

        With ``overwrite=False`` and *name* taken, a free name is chosen by adding
        ``_<7 random letters or digits>`` before the extension.
        """
        ...

    def exists(self, name: str) -> bool:
        """Return whether *name* exists."""
        ...

    def delete(self, name: str) -> None:
        """Delete *name*; a missing file is not an error."""
        ...

    def url(self, name: str) -> str:
        """Return the URL of *name* without doing any I/O."""
        ...

    def size(self, name: str) -> int:
        """Return the size of *name* in bytes; raise :class:`FileNotFoundError` if missing."""
        ...

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        """Return the ``(directories, files)`` directly inside *path* (``""`` is the root).

        Temporary files of saves (see :func:`~flask_imagekit.storage.is_temporary_name`)
        are never listed.
        """
        ...

    def walk(self, path: str = "") -> Iterator[str]:
        """Yield every file name under *path*, relative to the root and ``"/"``-separated.

        Temporary files of saves (see :func:`~flask_imagekit.storage.is_temporary_name`)
        are never yielded.
        """
        ...

    def path(self, name: str) -> str:
        """Return the local filesystem path of *name*.

        Storages that have no local files raise :class:`NotImplementedError`.
        """
        ...


def normalise_base_url(base_url: str) -> str:
    """Return *base_url* ending with ``/``, so that names can be appended to it."""
    return base_url if base_url.endswith("/") else f"{base_url}/"


def iter_chunks(content: bytes | bytearray | memoryview | IO[bytes]) -> Iterator[bytes]:
    """Yield the bytes of *content*, reading file-like objects in chunks.

    Seekable file-like objects are rewound first, as Django's ``File.chunks`` does,
    so a freshly written ``BytesIO`` is saved whole.
    """
    if isinstance(content, (bytes, bytearray, memoryview)):
        yield bytes(content)
        return
    seekable = getattr(content, "seekable", None)
    if seekable is not None and seekable():
        content.seek(0)
    while True:
        chunk = content.read(CHUNK_SIZE)
        if not chunk:
            return
        yield chunk
