"""Anything a user has as a source image, normalised to one :class:`SourceFile` type.

A source can be a name in the source storage (``str``), a filesystem path
(``os.PathLike``), an open file (binary, or text mode: reopened in binary by
name), a werkzeug ``FileStorage``, or the value behind a model column.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import typing as t

from .exceptions import MissingSource, SourceError, StorageError
from .globals import current_state, current_state_or_none

if t.TYPE_CHECKING:
    from .storage import Storage

__all__ = ["SourceFile", "as_source", "storage_token"]

_DIGEST_CHUNK = 1 << 20


class SourceFile:
    """A source image: its name, how to read its bytes, and where it came from.

    ``name`` is what cache file names are derived from. ``instance`` and
    ``attname`` are set for sources read from a model column (see
    :func:`flask_imagekit.utils.get_field_info`).
    """

    __slots__ = (
        "_digest",
        "_file",
        "_instance",
        "_instance_ref",
        "_path",
        "_stream",
        "attname",
        "name",
        "storage",
    )

    def __init__(
        self,
        name: str | None,
        *,
        storage: Storage | None = None,
        file: t.IO[t.Any] | None = None,
        path: str | None = None,
        instance: t.Any = None,
        attname: str | None = None,
    ) -> None:
        self.name = str(name) if name is not None else None
        self.storage = storage
        self.attname = attname
        self._instance = instance
        self._instance_ref: tuple[str, str, tuple[t.Any, ...]] | None = None
        self._file = file
        self._path = path
        self._digest: str | None = None
        # Given as a stream: its bytes are the source, never a stored file's.
        self._stream = file is not None

    @property
    def is_stream(self) -> bool:
        """Whether the source was given as an open file: its bytes, not a name, are the source."""
        return self._stream

    @property
    def loaded_instance(self) -> t.Any:
        """The row holding this source if it is loaded in this process (never loads it)."""
        return self._instance

    def row_reference(self) -> tuple[str, str, tuple[t.Any, ...]] | None:
        """``(module, class qualname, primary key)`` of the row holding this source, if any.

        Known without loading the row, also after pickling.
        """
        return self._instance_ref or _instance_ref(self._instance)

    @property
    def is_stored(self) -> bool:
        """Whether the source is a file in a storage, found again by its name alone."""
        return bool(self.name) and not self._stream and self._path is None

    def identity(self, source_storage: Storage | None = None) -> str | tuple[str, ...] | None:
        """What tells this source apart from every other image, for cache file names.

        A stored file in the app's source storage is its name, as in django-imagekit,
        so names stay stable; a stored file in another storage adds a token of that
        storage; a source that is not stored (an open file, an upload) is a digest
        of its bytes, so two uploads called ``me.png`` never share a cache file. A
        path on disk is its path. ``source_storage`` is the app's source storage
        (by default, the current app's).
        """
        if self._stream:
            return ("sha256", self.content_digest())
        if self._path is not None or not self.name:
            return self.name
        storage = self.storage
        if storage is None:
            return self.name
        if source_storage is None:
            state = current_state_or_none()
            source_storage = state.source_storage if state is not None else None
        if source_storage is not None and storage == source_storage:
            return self.name
        return (self.name, "storage", storage_token(storage))

    def content_digest(self) -> str:
        """The SHA-256 of the source's bytes (read once, then remembered)."""
        digest = self._digest
        if digest is None:
            hasher = hashlib.sha256()
            try:
                with self.open() as fp:
                    for chunk in iter(lambda: fp.read(_DIGEST_CHUNK), b""):
                        hasher.update(chunk)
            except OSError as exc:
                msg = f"Could not read the source {self.name!r}: {exc}. Upload it again."
                raise SourceError(msg) from exc
            digest = self._digest = hasher.hexdigest()
        return digest

    @property
    def instance(self) -> t.Any:
        """The model instance whose column holds this source, if any.

        After pickling (``flask imagekit generate --jobs``), the row is loaded
        again by primary key in the current app's session on first use.
        """
        if self._instance is None and self._instance_ref is not None:
            self._instance = _load_instance(*self._instance_ref)
        return self._instance

    def __bool__(self) -> bool:
        return bool(self.name) or self._file is not None

    def __repr__(self) -> str:
        return f"<SourceFile {self.name!r}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SourceFile):
            return NotImplemented
        return (self.name, self._path, self._file) == (other.name, other._path, other._file)

    def __hash__(self) -> int:
        return hash((self.name, self._path))

    def __getstate__(self) -> dict[str, t.Any]:
        # Open files do not travel; model instances travel as a reference.
        return {
            "name": self.name,
            "path": self._path,
            "storage": self.storage,
            "attname": self.attname,
            "instance_ref": self._instance_ref or _instance_ref(self._instance),
            # A stream's bytes do not travel, but what named it does.
            "digest": self._digest,
            "stream": self._stream,
        }

    def __setstate__(self, state: dict[str, t.Any]) -> None:
        self.name = state["name"]
        self.storage = state["storage"]
        self.attname = state["attname"]
        self._path = state["path"]
        self._file = None
        self._digest = state.get("digest")
        self._stream = state.get("stream", False)
        self._instance = None
        self._instance_ref = state["instance_ref"]

    @property
    def reference(self) -> str | None:
        """A JSON-safe reference that locates this source again in another process."""
        return self._path or self.name

    @contextlib.contextmanager
    def open(self, default_storage: Storage | None = None) -> t.Iterator[t.IO[bytes]]:
        """Give a binary file positioned at the start of the source's bytes.

        A file this source was given open stays open (and goes back to where it
        was); anything opened here is closed again. A name without a storage of
        its own is opened in ``default_storage``, by default the app's source storage.
        """
        if self._stream:
            file = self._usable_stream()
            position = _tell(file)
            try:
                file.seek(0)
            except (OSError, AttributeError, ValueError):
                pass
            try:
                yield file
            finally:
                if position is not None:
                    with contextlib.suppress(OSError, ValueError):
                        file.seek(position)
            return
        if self._path is not None:
            with self._open_path(self._path) as fp:
                yield fp
            return
        if not self.name:
            msg = "This source has no name and no file. Give the spec a source image."
            raise MissingSource(msg)
        with self._open_storage(self.name, default_storage) as fp:
            yield fp

    def _usable_stream(self) -> t.IO[bytes]:
        """The stream this source was given, readable from its start again and again."""
        file = self._file
        if file is None or getattr(file, "closed", False) or not _is_binary(file):
            # Never fall back to a stored file of the same name: that would be
            # somebody else's image.
            msg = (
                f"The uploaded source {self.name!r} is no longer open: an upload is read "
                "while its request lasts and does not travel to other processes. Store it "
                "first (a ProcessedImageField does) and pass the stored name."
            )
            raise SourceError(msg)
        if not _is_seekable(file):
            # Read once into memory, so the digest and the decode both see every byte.
            self._file = file = io.BytesIO(file.read())
        return file

    @contextlib.contextmanager
    def _open_path(self, path: str) -> t.Iterator[t.IO[bytes]]:
        try:
            fp = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError as exc:
            msg = f"The source file {path!r} does not exist. Check the path or upload it again."
            raise MissingSource(msg) from exc
        except OSError as exc:
            msg = f"Could not open the source file {path!r}: {exc}."
            raise SourceError(msg) from exc
        with fp:
            yield fp

    @contextlib.contextmanager
    def _open_storage(self, name: str, default_storage: Storage | None) -> t.Iterator[t.IO[bytes]]:
        storage = self.storage or default_storage or _default_source_storage()
        try:
            fp = storage.open(name, "rb")
        except FileNotFoundError as exc:
            msg = (
                f"The source {name!r} does not exist in {storage!r}. Check the name, or "
                "upload the file again."
            )
            raise MissingSource(msg) from exc
        except StorageError as exc:
            raise SourceError(str(exc)) from exc
        with fp:
            yield fp


def storage_token(storage: object) -> str:
    """A stable text that names ``storage`` across processes: its class and location."""
    cls = type(storage)
    parts = [f"{cls.__module__}.{cls.__qualname__}"]
    fs = getattr(storage, "fs", None)
    if fs is not None:
        protocol = getattr(fs, "protocol", None)
        parts.append(repr(tuple(protocol) if isinstance(protocol, list | tuple) else protocol))
    for attribute in ("location", "root", "bucket", "base_url"):
        value = getattr(storage, attribute, None)
        if isinstance(value, str | os.PathLike):
            parts.append(f"{attribute}={os.fspath(value)}")
    return "|".join(parts)


def _instance_ref(instance: object) -> tuple[str, str, tuple[t.Any, ...]] | None:
    if instance is None:
        return None
    try:
        from sqlalchemy import inspect

        identity = inspect(instance).identity
    except Exception:
        return None
    cls = type(instance)
    if identity is None or "<locals>" in cls.__qualname__:
        return None
    return (cls.__module__, cls.__qualname__, tuple(identity))


def _load_instance(module: str, qualname: str, identity: tuple[t.Any, ...]) -> t.Any:
    import importlib

    from flask import current_app

    obj: t.Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    db = current_app.extensions["sqlalchemy"]
    return db.session.get(obj, identity)


def _is_binary(file: t.IO[t.Any]) -> bool:
    if isinstance(file, io.TextIOBase):
        return False
    mode = getattr(file, "mode", "rb")
    return not isinstance(mode, str) or "b" in mode or "r" not in mode


def _is_seekable(file: t.IO[t.Any]) -> bool:
    try:
        return bool(file.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _tell(file: t.IO[t.Any]) -> int | None:
    try:
        return file.tell()
    except (OSError, AttributeError, ValueError):
        return None


def _default_source_storage() -> Storage:
    return current_state().source_storage


def as_source(value: t.Any, *, storage: Storage | None = None) -> SourceFile | None:
    """Normalise what a user passes as a source; ``None`` or ``""`` give ``None``."""
    if value is None or isinstance(value, SourceFile):
        return value
    if isinstance(value, str):
        # A stored upload (models.StoredImage) knows the storage it lives in.
        storage = storage or getattr(value, "column_storage", None)
        return SourceFile(value, storage=storage) if value else None
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        return SourceFile(str(path), path=str(path))
    stream = getattr(value, "stream", None)
    if stream is not None and hasattr(value, "filename"):  # werkzeug FileStorage
        return SourceFile(value.filename or None, file=stream)
    if hasattr(value, "read"):
        name = getattr(value, "name", None)
        name = name if isinstance(name, str) else None
        if not _is_binary(value) or getattr(value, "closed", False):
            if name is None:
                msg = (
                    f"{value!r} is closed or open in text mode and has no name to reopen it "
                    "by. Pass a file opened in binary mode ('rb')."
                )
                raise SourceError(msg)
            return SourceFile(name, path=os.path.abspath(name))
        return SourceFile(name, file=value)
    msg = (
        f"Cannot use {value!r} as a source image. Pass a name in the source storage, a "
        "path, a binary file or an uploaded FileStorage."
    )
    raise SourceError(msg)
