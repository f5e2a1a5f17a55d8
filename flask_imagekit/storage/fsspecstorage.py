"""FsspecStorage: files in any fsspec filesystem (S3, GCS, memory, ...)."""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from ..exceptions import StorageError, SuspiciousName
from .base import MAX_NAME_ATTEMPTS, iter_chunks, normalise_base_url
from .names import (
    alternative_name,
    clean_dir,
    clean_name,
    is_temporary_name,
    quoted_name,
    temp_basename,
)

if TYPE_CHECKING:
    import fsspec

__all__ = ["FsspecStorage"]

# The characters fsspec's glob expansion treats as magic.
_GLOB_RE = re.compile(r"[*?\[]")


class FsspecStorage:
    """A storage backed by any fsspec filesystem.

    *fs_or_url* is either a filesystem instance or a URL such as
    ``"s3://bucket/prefix"`` or ``"memory://bucket/prefix"``, in which case the
    filesystem is chosen by :func:`fsspec.core.url_to_fs` with *storage_options*.
    *root* is a directory inside the filesystem (appended to the URL's path).
    Saves write a temporary ``.tmp-`` file next to the target and move it into
    place, so readers never see a partial file where the filesystem allows it.
    """

    fs: Any
    root: str
    base_url: str

    def __init__(
        self,
        fs_or_url: fsspec.AbstractFileSystem | str,
        base_url: str = "/media/",
        *,
        root: str = "",
        **storage_options: Any,
    ) -> None:
        try:
            import fsspec.core
        except ImportError as exc:
            msg = (
                "FsspecStorage needs the fsspec package. "
                "Install it with: pip install imagekit-flask[fsspec]"
            )
            raise StorageError(msg) from exc
        if isinstance(fs_or_url, str):
            fs, url_path = fsspec.core.url_to_fs(fs_or_url, **storage_options)
            base = str(url_path).rstrip("/")
        else:
            if storage_options:
                msg = (
                    "Storage options are only used with a URL; configure the filesystem "
                    f"instance instead (got {sorted(storage_options)})."
                )
                raise TypeError(msg)
            fs, base = fs_or_url, ""
        # root is trusted configuration, not a user-supplied name: keep a leading "/".
        root = root.rstrip("/")
        self.fs = fs
        self.root = f"{base}/{root.lstrip('/')}" if base and root else (base or root)
        self.base_url = normalise_base_url(base_url)
        self._identity = (type(self), self.fs, self.root, self.base_url)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(fs={self.fs!r}, root={self.root!r}, "
            f"base_url={self.base_url!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FsspecStorage):
            return NotImplemented
        return self._identity == other._identity

    def __hash__(self) -> int:
        return hash(self._identity)

    def _full(self, cleaned: str, original: str) -> str:
        if not cleaned:
            return self.root
        full = f"{self.root}/{cleaned}" if self.root else cleaned
        self._check_inside(full, original)
        return full

    def _check_inside(self, full: str, original: str) -> None:
        # The name is clean, but the filesystem still rewrites paths (a local one
        # makes them absolute) and a local disk follows symlinks: check where the
        # path lands, not what it says.
        strip = self.fs._strip_protocol
        top = str(strip(self.root)).rstrip("/")
        where = str(strip(full))
        inside = not top or where == top or where.startswith(f"{top}/")
        if inside and getattr(self.fs, "local_file", False):
            real_top = os.path.normcase(os.path.realpath(top or os.sep)).rstrip(os.sep)
            where = os.path.normcase(os.path.realpath(where))
            inside = where == real_top or where.startswith(real_top + os.sep)
        if not inside:
            msg = (
                f"Invalid storage name {original!r}: it resolves to {where!r}, outside the "
                f"storage root {self.root!r} (a symlink may point outside). Remove the "
                "symlink, or use a plain relative name such as 'photos/cat.jpg'."
            )
            raise SuspiciousName(msg)

    def _error(self, exc: OSError, name: str, *, action: str) -> StorageError:
        reason = exc.strerror or str(exc) or type(exc).__name__
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        msg = (
            f"Could not {action} {name!r} in the {protocol!r} storage at {self.root!r}: "
            f"{reason}. Check the filesystem's credentials and permissions."
        )
        return StorageError(msg)

    def path(self, name: str) -> str:
        """Always raise :class:`NotImplementedError`: fsspec files have no local path."""
        msg = (
            f"{type(self).__name__} has no local filesystem paths (asked for {name!r}); "
            "use open() to read the file instead."
        )
        raise NotImplementedError(msg)

    def open(self, name: str, mode: str = "rb") -> BinaryIO:
        """Open *name* in binary *mode*; raise :class:`FileNotFoundError` if missing."""
        if "b" not in mode:
            msg = f"Storages only open files in binary mode; got mode {mode!r}, use {mode}b."
            raise ValueError(msg)
        full = self._full(clean_name(name), name)
        try:
            return cast(BinaryIO, self.fs.open(full, mode))
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise self._error(exc, name, action="open") from exc

    def save(self, name: str, content: bytes | BinaryIO, *, overwrite: bool = True) -> str:
        """Write *content* under *name* via a temporary file and return the name stored.

        Same contract as :meth:`FileSystemStorage.save`.  With ``overwrite=False``
        the free name is found by checking :meth:`exists`, which is as good as most
        object stores allow.
        """
        cleaned = clean_name(name)
        if not overwrite:
            for _ in range(MAX_NAME_ATTEMPTS):
                if not self.exists(cleaned):
                    break
                cleaned = alternative_name(cleaned)
            else:
                msg = (
                    f"Could not find a free name for {name!r} in the storage at {self.root!r} "
                    f"after {MAX_NAME_ATTEMPTS} attempts. Clean up or use overwrite=True."
                )
                raise StorageError(msg)
        full = self._full(cleaned, name)
        parent, basename = posixpath.split(full)
        temp = posixpath.join(parent, temp_basename(basename))
        try:
            if parent:
                self.fs.makedirs(parent, exist_ok=True)
            temp_file = self.fs.open(temp, "wb")
        except OSError as exc:
            raise self._error(exc, name, action="save") from exc
        try:
            try:
                for chunk in iter_chunks(content):
                    temp_file.write(chunk)
            except BaseException:
                self._abandon(temp_file)
                raise
            temp_file.close()
            self._move(temp, full)
        except BaseException as exc:
            try:
                self.fs.rm_file(temp)
            except (OSError, ValueError):
                pass  # Already gone, or never created; keep the original error visible.
            if isinstance(exc, OSError):
                raise self._error(exc, name, action="save") from exc
            raise
        return cleaned

    def _move(self, source: str, destination: str) -> None:
        """Move one file to *destination*, treating both names literally."""
        if not (_GLOB_RE.search(source) or _GLOB_RE.search(destination)):
            self.fs.mv(source, destination)
            return
        # fs.mv() expands "*", "?" and "[" as glob patterns, so a literal name
        # containing them would move (or delete) the wrong files: copy one file instead.
        self.fs.cp_file(source, destination)
        self.fs.rm_file(source)

    @staticmethod
    def _abandon(temp_file: Any) -> None:
        """Close a half-written temporary file without letting its errors hide the cause."""
        # discard() aborts multipart uploads instead of committing a partial object.
        discard = getattr(temp_file, "discard", None)
        try:
            if discard is not None:
                discard()
        except Exception:  # e.g. local files refuse discard() when autocommitting
            pass
        try:
            temp_file.close()
        except Exception:  # the temporary file is removed next anyway
            pass

    def exists(self, name: str) -> bool:
        """Return whether *name* exists."""
        return bool(self.fs.exists(self._full(clean_name(name), name)))

    def delete(self, name: str) -> None:
        """Delete *name*; a missing file is not an error."""
        try:
            self.fs.rm_file(self._full(clean_name(name), name))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._error(exc, name, action="delete") from exc

    def url(self, name: str) -> str:
        """Return ``base_url`` followed by the percent-quoted *name*; does no I/O."""
        return self.base_url + quoted_name(name)

    def size(self, name: str) -> int:
        """Return the size of *name* in bytes; raise :class:`FileNotFoundError` if missing."""
        try:
            return int(self.fs.size(self._full(clean_name(name), name)))
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise self._error(exc, name, action="get the size of") from exc

    def listdir(self, path: str = "") -> tuple[list[str], list[str]]:
        """Return sorted ``(directories, files)`` directly inside *path* (``""`` is the root).

        Temporary ``.tmp-`` files of saves are left out.  Raises
        :class:`FileNotFoundError` if *path* does not exist.
        """
        full = self._full(clean_dir(path), path)
        try:
            entries = self.fs.ls(full, detail=True)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise self._error(exc, path, action="list") from exc
        dirs: list[str] = []
        files: list[str] = []
        for entry in entries:
            entry_name = str(entry["name"]).rstrip("/")
            basename = posixpath.basename(entry_name)
            if entry_name == full.rstrip("/") or not basename:
                continue  # ls() of a file path returns the file itself.
            if entry["type"] == "directory":
                dirs.append(basename)
            elif not is_temporary_name(basename):
                files.append(basename)
        return sorted(dirs), sorted(files)

    def walk(self, path: str = "") -> Iterator[str]:
        """Yield every file under *path*, relative to the root, in sorted order.

        Temporary ``.tmp-`` files of saves are left out; a missing *path* yields nothing.
        """
        full = self._full(clean_dir(path), path)
        try:
            found = self.fs.find(full, withdirs=False)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._error(exc, path, action="list") from exc
        # find() strips the protocol; compare against the stripped root as well.
        top = str(self.fs._strip_protocol(full)).rstrip("/") if full else ""
        root = str(self.fs._strip_protocol(self.root)).rstrip("/") if self.root else ""
        top_prefix = f"{top}/" if top else ""
        root_prefix = f"{root}/" if root else ""
        for item in sorted(str(entry) for entry in found):
            if top_prefix and not item.startswith(top_prefix):
                continue  # find() of a file path returns the file itself.
            if is_temporary_name(item):
                continue
            yield item[len(root_prefix) :] if root_prefix else item.lstrip("/")
