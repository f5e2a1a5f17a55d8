"""Storages: where source images and generated cache files are kept.

A storage maps relative, ``"/"``-separated names such as ``"CACHE/images/a.jpg"``
to bytes.  Every storage checks names with :func:`clean_name`, so a name that is
accepted by one storage is accepted by all of them, and no name can reach
outside the storage root.

Two storages are provided:

* :class:`FileSystemStorage` keeps files in a local directory.
* :class:`FsspecStorage` keeps files in any `fsspec <https://filesystem-spec.readthedocs.io>`_
  filesystem (S3, GCS, memory, ...).
"""

from __future__ import annotations

import errno
import functools
import os
import posixpath
import re
import secrets
import string
import tempfile
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Protocol, cast, runtime_checkable
from urllib.parse import quote

from flask_imagekit.exceptions import StorageError, SuspiciousName

if TYPE_CHECKING:
    import fsspec

__all__ = ["FileSystemStorage", "FsspecStorage", "Storage", "clean_name", "is_temporary_name"]

#: Most filesystems limit a single path component to 255 bytes.
MAX_COMPONENT_BYTES = 255
#: The most bytes (UTF-8) a whole name may have.
MAX_NAME_BYTES = 1024
#: The most components (directories plus the file name) a name may have.
MAX_NAME_COMPONENTS = 32

_CHUNK_SIZE = 64 * 1024
_SUFFIX_ALPHABET = string.ascii_letters + string.digits
_SUFFIX_LENGTH = 7
_MAX_NAME_ATTEMPTS = 100
_TEMP_PREFIX = ".tmp-"

# C0 controls, DEL and C1 controls (Unicode category Cc).
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f]")
# "C:", "C:\x" and "C:x" are all drive-qualified on Windows.
_DRIVE_RE = re.compile("^[A-Za-z]:")
# A URL scheme (RFC 3986, plus "_" as some fsspec protocols have it): fsspec strips
# "file:", "local:", "memory://"... from a path and goes where the rest points.
_PROTOCOL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-_]*:")
# The characters fsspec's glob expansion treats as magic.
_GLOB_RE = re.compile(r"[*?\[]")
_NAME_HINT = "Use a relative name made of '/'-separated parts, such as 'photos/2024/cat.jpg'."


@runtime_checkable
class Storage(Protocol):
    """The interface every storage follows.

    Names are relative and ``"/"``-separated; every method validates them with
    :func:`clean_name` and raises :class:`~flask_imagekit.exceptions.SuspiciousName`
    for a name that is invalid or would escape the storage root.
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

        Files for which :func:`is_temporary_name` is true are never listed.
        """
        ...

    def walk(self, path: str = "") -> Iterator[str]:
        """Yield every file name under *path*, relative to the root and ``"/"``-separated.

        Files for which :func:`is_temporary_name` is true are never yielded.
        """
        ...

    def path(self, name: str) -> str:
        """Return the local filesystem path of *name*.

        Storages that have no local files raise :class:`NotImplementedError`.
        """
        ...


def clean_name(name: str) -> str:
    """Validate and normalise a storage name; return the normalised name.

    ``"a//b"`` becomes ``"a/b"`` and ``"./a"`` becomes ``"a"``.  Raises
    :class:`~flask_imagekit.exceptions.SuspiciousName` for anything that is not a
    plain relative name: a non-string, an empty name, control characters (NUL
    included), an absolute or drive-qualified path, a protocol prefix such as
    ``file:`` or ``s3://``, a first component starting with ``~``, a backslash, a
    ``..`` component, a component longer than 255 bytes in UTF-8, more than 32
    components, or more than 1,024 bytes in all.
    """
    if not isinstance(name, str):
        msg = (
            f"Invalid storage name {name!r}: names must be str, not {type(name).__name__}. "
            f"{_NAME_HINT}"
        )
        raise SuspiciousName(msg)
    return _clean_name(name, False)


def _invalid(name: str, reason: str) -> SuspiciousName:
    shown = repr(name) if len(name) <= 80 else f"{name[:60]!r}... ({len(name)} characters)"
    return SuspiciousName(f"Invalid storage name {shown}: {reason}. {_NAME_HINT}")


@functools.lru_cache(maxsize=4096)
def _clean_name(name: str, allow_root: bool) -> str:
    # Cached because url() is on the hot path of every page render; exceptions are
    # never cached, so hostile names are re-checked (and re-rejected) every time.
    if not name:
        if allow_root:
            return ""
        raise _invalid(name, "the name is empty")
    # Characters never take fewer bytes than one: refuse a huge name before scanning it.
    if len(name) > MAX_NAME_BYTES:
        raise _too_long(name)
    control = _CONTROL_RE.search(name)
    if control is not None:
        raise _invalid(name, f"it contains the control character {control.group()!r}")
    if "\\" in name:
        raise _invalid(name, "it contains a backslash; use '/' to separate directories")
    if name.startswith("/"):
        raise _invalid(name, "it is an absolute path")
    if _DRIVE_RE.match(name):
        raise _invalid(name, "it starts with a Windows drive letter")
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise _invalid(
                name, "it contains a '..' component, which could escape the storage root"
            )
        try:
            encoded = part.encode("utf-8")
        except UnicodeEncodeError:
            raise _invalid(
                name, "it contains a lone surrogate and cannot be encoded as UTF-8"
            ) from None
        if len(encoded) > MAX_COMPONENT_BYTES:
            raise _invalid(
                name,
                f"the component {part[:20]!r}... is {len(encoded)} bytes long in UTF-8, "
                f"more than the {MAX_COMPONENT_BYTES} bytes filesystems allow; "
                "use a shorter name",
            )
        parts.append(part)
        if len(parts) > MAX_NAME_COMPONENTS:
            raise _invalid(
                name,
                f"it has more than {MAX_NAME_COMPONENTS} components (directories and file "
                "name); use a shorter name with fewer directories",
            )
    if not parts:
        if allow_root:
            return ""
        raise _invalid(name, "it names the storage root, not a file")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise _too_long(name)
    first = parts[0]
    if _DRIVE_RE.match(first):
        raise _invalid(name, "it starts with a Windows drive letter")
    protocol = _PROTOCOL_RE.match(first)
    if protocol is not None:
        raise _invalid(
            name,
            f"it starts with the protocol prefix {protocol.group()!r}, which a filesystem "
            "could follow out of the storage root",
        )
    if first.startswith("~"):
        raise _invalid(
            name, "it starts with '~', which a filesystem could expand to a home directory"
        )
    return "/".join(parts)


def _too_long(name: str) -> SuspiciousName:
    size = len(name.encode("utf-8", errors="surrogatepass"))
    return _invalid(
        name,
        f"it is {size} bytes long in UTF-8, more than the {MAX_NAME_BYTES} bytes a name "
        "may have; use a shorter name",
    )


def is_temporary_name(name: str) -> bool:
    """Return whether *name* is the temporary file of a save that is under way.

    A save killed half way leaves such a file behind; storages never list it and
    the media route never serves it.
    """
    return posixpath.basename(name).startswith(_TEMP_PREFIX)


def _quoted_name(name: str) -> str:
    """Return the cleaned, percent-quoted *name* for use in a URL."""
    if not isinstance(name, str):
        return clean_name(name)  # Raises SuspiciousName.
    return _quote_clean_name(name)


@functools.lru_cache(maxsize=4096)
def _quote_clean_name(name: str) -> str:
    return quote(_clean_name(name, False))


def _clean_dir(path: str) -> str:
    """Like :func:`clean_name`, but ``""`` and ``"."`` mean the storage root."""
    if not isinstance(path, str):
        return clean_name(path)
    return _clean_name(path, True)


def _random_suffix() -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(_SUFFIX_LENGTH))


def _truncate_utf8(text: str, max_bytes: int) -> str:
    return text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")


def _alternative_name(name: str) -> str:
    """Return *name* with ``_<random>`` added before its extension."""
    directory, basename = posixpath.split(name)
    root, ext = posixpath.splitext(basename)
    suffix = f"_{_random_suffix()}"
    room = MAX_COMPONENT_BYTES - len(suffix.encode("utf-8")) - len(ext.encode("utf-8"))
    if room < 1:
        # An absurdly long extension: sacrifice it rather than produce an invalid name.
        root, ext = basename, ""
        room = MAX_COMPONENT_BYTES - len(suffix)
    new_basename = f"{_truncate_utf8(root, room)}{suffix}{ext}"
    return posixpath.join(directory, new_basename) if directory else new_basename


def _temp_basename(basename: str) -> str:
    """Return a temporary file name for *basename* that fits in one path component."""
    prefix = f"{_TEMP_PREFIX}{_random_suffix()}-"
    return prefix + _truncate_utf8(basename, MAX_COMPONENT_BYTES - len(prefix))


def _normalise_base_url(base_url: str) -> str:
    return base_url if base_url.endswith("/") else f"{base_url}/"


def _iter_chunks(content: bytes | bytearray | memoryview | IO[bytes]) -> Iterator[bytes]:
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
        chunk = content.read(_CHUNK_SIZE)
        if not chunk:
            return
        yield chunk


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
        self.base_url = _normalise_base_url(base_url)
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
            fd, temp_path = tempfile.mkstemp(dir=directory, prefix=_TEMP_PREFIX)
        except OSError as exc:
            raise self._error(exc, name, action="save") from exc
        try:
            with os.fdopen(fd, "wb") as temp_file:
                for chunk in _iter_chunks(content):
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
        for _ in range(_MAX_NAME_ATTEMPTS):
            target = self._local_path(name, name)
            try:
                # link() fails if the target exists, so claiming the name is atomic.
                os.link(temp_path, target)
            except FileExistsError:
                name = _alternative_name(name)
                continue
            except OSError:
                # No hard links on this filesystem: fall back to check-then-replace.
                if os.path.lexists(target):
                    name = _alternative_name(name)
                    continue
                os.replace(temp_path, target)
                return name
            os.unlink(temp_path)
            return name
        msg = (
            f"Could not find a free name for {name!r} in the storage at {self.location!r} "
            f"after {_MAX_NAME_ATTEMPTS} attempts. Clean up the directory or use overwrite=True."
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
        return self.base_url + _quoted_name(name)

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
        directory = self._local_path(_clean_dir(path), path)
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
        cleaned = _clean_dir(path)
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
        self.base_url = _normalise_base_url(base_url)
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
            for _ in range(_MAX_NAME_ATTEMPTS):
                if not self.exists(cleaned):
                    break
                cleaned = _alternative_name(cleaned)
            else:
                msg = (
                    f"Could not find a free name for {name!r} in the storage at {self.root!r} "
                    f"after {_MAX_NAME_ATTEMPTS} attempts. Clean up or use overwrite=True."
                )
                raise StorageError(msg)
        full = self._full(cleaned, name)
        parent, basename = posixpath.split(full)
        temp = posixpath.join(parent, _temp_basename(basename))
        try:
            if parent:
                self.fs.makedirs(parent, exist_ok=True)
            temp_file = self.fs.open(temp, "wb")
        except OSError as exc:
            raise self._error(exc, name, action="save") from exc
        try:
            try:
                for chunk in _iter_chunks(content):
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
        return self.base_url + _quoted_name(name)

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
        full = self._full(_clean_dir(path), path)
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
        full = self._full(_clean_dir(path), path)
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
