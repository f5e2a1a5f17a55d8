"""FileSystemStorage: files in a local directory, written atomically."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from typing import BinaryIO, cast

from ..exceptions import StorageError, SuspiciousName
from .base import MAX_NAME_ATTEMPTS, iter_chunks, normalise_base_url
from .names import (
    TEMP_PREFIX,
    alternative_name,
    clean_dir,
    clean_name,
    is_temporary_name,
    quoted_name,
)

__all__ = ["FileSystemStorage"]


class FileSystemStorage:
    """A storage that keeps files in the local directory *location*.

    Files are written atomically (temporary file, ``fsync``, ``os.replace``) with
    mode ``0o644``; missing parent directories are created with mode ``0o755``.
    :meth:`url` is ``base_url`` followed by the percent-quoted name.
    """

    location: str
    base_url: str

    def __init__(self, location: str | os.PathLike[str], base_url: str = "/media/") -> None:
        self.location = os.path.abspath(os.fspath(location))
        self.base_url = normalise_base_url(base_url)
        self._real_location = self._resolve_location()
        self._identity = (type(self), self._real_location, self.base_url)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(location={self.location!r}, base_url={self.base_url!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FileSystemStorage):
            return NotImplemented
        return self._identity == other._identity

    def __hash__(self) -> int:
        return hash(self._identity)

    def _resolve_location(self) -> str:
        return os.path.normcase(os.path.realpath(self.location))

    def _contains(self, real_path: str) -> bool:
        # rstrip so that a location of "/" gives the prefix "/", not "//".
        prefix = self._real_location.rstrip(os.sep) + os.sep
        return os.path.normcase(real_path).startswith(prefix)

    def _local_path(self, cleaned: str, original: str) -> str:
        if not cleaned:
            return self.location
        full = os.path.join(self.location, cleaned.replace("/", os.sep))
        real = os.path.realpath(full)
        if not self._contains(real):
            # The root itself may have become a symlink since __init__; check once more.
            self._real_location = self._resolve_location()
            if not self._contains(real):
                msg = (
                    f"Invalid storage name {original!r}: it resolves to {real!r}, outside "
                    f"the storage location {self.location!r} (a symlink points outside). "
                    "Remove the symlink or store the file elsewhere."
                )
                raise SuspiciousName(msg)
        return full

    def path(self, name: str) -> str:
        """Return the absolute local path of *name*.

        Raises :class:`~flask_imagekit.exceptions.SuspiciousName` if the name is
        invalid or resolves (through symlinks) outside :attr:`location`.
        """
        return self._local_path(clean_name(name), name)

    def _error(self, exc: OSError, name: str, *, action: str) -> StorageError:
        reason = exc.strerror or str(exc)
        msg = (
            f"Could not {action} {name!r} in the storage at {self.location!r}: {reason}. "
            "Check that the directory exists and that this process may use it."
        )
        return StorageError(msg)

    def open(self, name: str, mode: str = "rb") -> BinaryIO:
        """Open *name* in binary *mode*; raise :class:`FileNotFoundError` if missing.

        Writing through ``open`` is not atomic; use :meth:`save` for that.
        """
        if "b" not in mode:
            msg = f"Storages only open files in binary mode; got mode {mode!r}, use {mode}b."
            raise ValueError(msg)
        path = self.path(name)
        try:
            if any(flag in mode for flag in "wax"):
                os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            return cast(BinaryIO, open(path, mode))
        except FileNotFoundError:
            raise
        except NotADirectoryError as exc:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path) from exc
        except OSError as exc:
            raise self._error(exc, name, action="open") from exc

    def save(self, name: str, content: bytes | BinaryIO, *, overwrite: bool = True) -> str:
        """Write *content* atomically under *name* and return the name stored.

        *content* is bytes or a binary file-like object (rewound first if
        seekable).  With ``overwrite=False`` and *name* taken, ``_<7 random
        characters>`` is added before the extension until the name is free.  If
        anything fails, no file is left under the final name and the temporary
        file is removed.
        """
        cleaned = clean_name(name)
        path = self._local_path(cleaned, name)
        directory = os.path.dirname(path)
        try:
            os.makedirs(directory, mode=0o755, exist_ok=True)
            fd, temp_path = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX)
        except OSError as exc:
            raise self._error(exc, name, action="save") from exc
        try:
            with os.fdopen(fd, "wb") as temp_file:
                for chunk in iter_chunks(content):
                    temp_file.write(chunk)
                temp_file.flush()
                os.fsync(temp_file.fileno())
                os.fchmod(temp_file.fileno(), 0o644)
            return self._publish(temp_path, cleaned, overwrite=overwrite)
        except BaseException as exc:
            try:
                os.unlink(temp_path)
            except OSError:
                pass  # Already moved into place or gone; keep the original error visible.
            if isinstance(exc, OSError):
                raise self._error(exc, name, action="save") from exc
            raise

    def _publish(self, temp_path: str, name: str, *, overwrite: bool) -> str:
        """Move the finished temporary file to *name* (or a free variant of it)."""
        if overwrite:
            os.replace(temp_path, self._local_path(name, name))
            return name
        for _ in range(MAX_NAME_ATTEMPTS):
            target = self._local_path(name, name)
            try:
                # link() fails if the target exists, so claiming the name is atomic.
                os.link(temp_path, target)
            except FileExistsError:
                name = alternative_name(name)
                continue
            except OSError:
                # No hard links on this filesystem: fall back to check-then-replace.
                if os.path.lexists(target):
                    name = alternative_name(name)
                    continue
                os.replace(temp_path, target)
                return name
            os.unlink(temp_path)
            return name
        msg = (
            f"Could not find a free name for {name!r} in the storage at {self.location!r} "
            f"after {MAX_NAME_ATTEMPTS} attempts. Clean up the directory or use overwrite=True."
        )
        raise StorageError(msg)

    def exists(self, name: str) -> bool:
        """Return whether *name* exists (file or directory)."""
        return os.path.exists(self.path(name))

    def delete(self, name: str) -> None:
        """Delete the file *name* (or empty directory); a missing file is not an error."""
        path = self.path(name)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)
            else:
                os.remove(path)
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError as exc:
            raise self._error(exc, name, action="delete") from exc

    def url(self, name: str) -> str:
        """Return ``base_url`` followed by the percent-quoted *name*; does no I/O."""
        return self.base_url + quoted_name(name)

    def size(self, name: str) -> int:
        """Return the size of *name* in bytes; raise :class:`FileNotFoundError` if missing."""
        path = self.path(name)
        try:
            return os.path.getsize(path)
        except FileNotFoundError:
            raise
        except NotADirectoryError as exc:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path) from exc
        except OSError as exc:
            raise self._error(exc, name, action="get the size of") from exc

    def listdir(self, path: str = "") -> tuple[list[str], list[str]]:
        """Return sorted ``(directories, files)`` directly inside *path* (``""`` is the root).

        The temporary files of saves (see :func:`is_temporary_name`) are left out.
        Raises :class:`FileNotFoundError` if *path* does not exist.
        """
        directory = self._local_path(clean_dir(path), path)
        dirs: list[str] = []
        files: list[str] = []
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.is_dir():
                        dirs.append(entry.name)
                    elif not is_temporary_name(entry.name):
                        files.append(entry.name)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise self._error(exc, path, action="list") from exc
        return sorted(dirs), sorted(files)

    def walk(self, path: str = "") -> Iterator[str]:
        """Yield every file under *path*, relative to the root, in sorted order.

        Symlinked directories are not followed, temporary files of saves are left
        out, and a missing *path* yields nothing.
        """
        cleaned = clean_dir(path)
        yield from self._walk(self._local_path(cleaned, path), cleaned)

    def _walk(self, directory: str, prefix: str) -> Iterator[str]:
        try:
            with os.scandir(directory) as scanned:
                entries = [
                    (entry.name, entry.is_dir(follow_symlinks=False), entry.is_symlink())
                    for entry in scanned
                ]
        except (FileNotFoundError, NotADirectoryError):
            return  # Missing, or vanished while walking.
        except OSError as exc:
            raise self._error(exc, prefix, action="list") from exc
        # Sorting directories as "name/" makes the output match a plain sort of the
        # full names, which is what FsspecStorage.walk() produces.
        entries.sort(key=lambda entry: f"{entry[0]}/" if entry[1] else entry[0])
        for entry_name, is_dir, is_symlink in entries:
            name = f"{prefix}/{entry_name}" if prefix else entry_name
            full = os.path.join(directory, entry_name)
            if is_dir:
                yield from self._walk(full, name)
            elif is_temporary_name(entry_name):
                continue
            elif not is_symlink:
                yield name
            elif not os.path.isdir(full) and self._contains(os.path.realpath(full)):
                # Like os.walk(followlinks=False), symlinked directories are skipped;
                # so are symlinks leading outside the root, which path() would reject.
                yield name
