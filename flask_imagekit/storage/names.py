"""Storage names: the rules every name in every storage follows.

Two kinds of function live here, built on the same rules and limits:

* Checks, for names given to a storage: :func:`clean_name` accepts a plain
  relative name and normalises it, or raises
  :class:`~flask_imagekit.exceptions.SuspiciousName`.
* Sanitisers, for names built from untrusted text (a source's name, when a
  namer derives a cache file name from it): :func:`sanitize_component`,
  :func:`sanitize_dirs`, :func:`sanitize_extension`, :func:`sanitize_stem` and
  :func:`fit_name` never raise; what they return passes :func:`clean_name`
  once it sits under a valid directory.
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
import secrets
import string
from urllib.parse import quote

from ..exceptions import SuspiciousName

__all__ = [
    "MAX_COMPONENT_BYTES",
    "MAX_EXTENSION_BYTES",
    "MAX_NAME_BYTES",
    "MAX_NAME_COMPONENTS",
    "TEMP_PREFIX",
    "alternative_name",
    "clean_dir",
    "clean_name",
    "fit_name",
    "is_absolute_name",
    "is_temporary_name",
    "quoted_name",
    "sanitize_component",
    "sanitize_dirs",
    "sanitize_extension",
    "sanitize_stem",
    "temp_basename",
    "truncate_utf8",
]

#: Most filesystems limit a single path component to 255 bytes.
MAX_COMPONENT_BYTES = 255
#: The most bytes (UTF-8) a whole name may have.
MAX_NAME_BYTES = 1024
#: The most components (directories plus the file name) a name may have.
MAX_NAME_COMPONENTS = 32
#: The longest extension (UTF-8 bytes, dot included) a sanitised name keeps.
MAX_EXTENSION_BYTES = 16
#: How the temporary file of a save that is under way starts.
TEMP_PREFIX = ".tmp-"

_SUFFIX_ALPHABET = string.ascii_letters + string.digits
_SUFFIX_LENGTH = 7

# C0 controls, DEL and C1 controls (Unicode category Cc).
_CONTROL = "\x00-\x1f\x7f-\x9f"
_CONTROL_RE = re.compile(f"[{_CONTROL}]")
# What a sanitiser replaces: control characters, and lone surrogates (what
# os.listdir() gives for bytes that are not UTF-8), which no storage can encode.
_UNSAFE_RE = re.compile(f"[{_CONTROL}\ud800-\udfff]")
# "C:", "C:\x" and "C:x" are all drive-qualified on Windows.
_DRIVE_RE = re.compile("^[A-Za-z]:")
# A URL scheme (RFC 3986, plus "_" as some fsspec protocols have it): fsspec strips
# "file:", "local:", "memory://"... from a path and goes where the rest points.
_PROTOCOL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-_]*:")
# Windows opens the device, not a file, for these names whatever the extension.
_DEVICE_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{port}{digit}" for port in ("COM", "LPT") for digit in "0123456789\u00b9\u00b2\u00b3"}
)
_NAME_HINT = "Use a relative name made of '/'-separated parts, such as 'photos/2024/cat.jpg'."


# Checks -------------------------------------------------------------------------------------


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


def clean_dir(path: str) -> str:
    """Like :func:`clean_name`, but ``""`` and ``"."`` name the storage root (``""``)."""
    if not isinstance(path, str):
        return clean_name(path)
    return _clean_name(path, True)


def quoted_name(name: str) -> str:
    """Return the cleaned, percent-quoted *name* for use in a URL."""
    if not isinstance(name, str):
        return clean_name(name)  # Raises SuspiciousName.
    return _quote_clean_name(name)


def is_temporary_name(name: str) -> bool:
    """Return whether *name* is the temporary file of a save that is under way.

    A save killed half way leaves such a file behind; storages never list it and
    the media route never serves it.
    """
    return posixpath.basename(name).startswith(TEMP_PREFIX)


def is_absolute_name(name: str) -> bool:
    """Return whether *name* is an absolute or drive-qualified path on any platform."""
    return os.path.isabs(name) or bool(_DRIVE_RE.match(name)) or name.startswith("\\")


def _invalid(name: str, reason: str) -> SuspiciousName:
    shown = repr(name) if len(name) <= 80 else f"{name[:60]!r}... ({len(name)} characters)"
    return SuspiciousName(f"Invalid storage name {shown}: {reason}. {_NAME_HINT}")


def _too_long(name: str) -> SuspiciousName:
    size = len(name.encode("utf-8", errors="surrogatepass"))
    return _invalid(
        name,
        f"it is {size} bytes long in UTF-8, more than the {MAX_NAME_BYTES} bytes a name "
        "may have; use a shorter name",
    )


@functools.lru_cache(maxsize=4096)
def _quote_clean_name(name: str) -> str:
    return quote(_clean_name(name, False))


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


# Sanitisers ---------------------------------------------------------------------------------


def truncate_utf8(text: str, max_bytes: int) -> str:
    """Return the longest start of *text* that is at most *max_bytes* long in UTF-8.

    A character cut in the middle is left out, never half kept.
    """
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


def sanitize_component(part: str, max_bytes: int = MAX_COMPONENT_BYTES) -> str:
    """Return *part* made safe as one path component of at most *max_bytes* bytes.

    Control characters and lone surrogates become ``_``, a Windows device name
    (``CON``, ``nul.txt``, ``COM1`` ...) gets a leading ``_``, and the result is cut
    to *max_bytes* bytes of UTF-8.  *part* must not contain ``/``.
    """
    part = _UNSAFE_RE.sub("_", part)
    if part.split(".", 1)[0].rstrip(" ").upper() in _DEVICE_NAMES:
        part = "_" + part
    return truncate_utf8(part, max_bytes)


def sanitize_dirs(path: str) -> list[str]:
    """Return the components of the directory *path*, each sanitised.

    Backslashes separate directories like ``/``; a drive letter, empty, ``.`` and
    ``..`` components are dropped, so the result never climbs out of where it is put.
    """
    path = _DRIVE_RE.sub("", path.replace("\\", "/"))
    return [sanitize_component(p) for p in path.split("/") if p not in ("", ".", "..")]


def sanitize_stem(stem: str, max_bytes: int) -> str:
    """Return the file name stem *stem* made safe, at most *max_bytes* bytes long.

    Besides :func:`sanitize_component`'s changes, a stem that is empty, ``.``,
    ``..`` or looks like a save's temporary file gets a leading ``_``.
    """
    stem = sanitize_component(stem, max_bytes)
    if stem in ("", ".", "..") or is_temporary_name(stem):
        stem = truncate_utf8("_" + stem, max_bytes)
    return stem


def sanitize_extension(ext: str) -> str:
    """Return the extension *ext* without control characters or slashes.

    An extension longer than :data:`MAX_EXTENSION_BYTES` bytes is dropped (``""``).
    """
    ext = _UNSAFE_RE.sub("", ext).replace("/", "").replace("\\", "")
    return ext if len(ext.encode("utf-8")) <= MAX_EXTENSION_BYTES else ""


def fit_name(prefix: str, dirs: list[str], tail: str) -> str:
    """Join ``prefix/dirs.../tail`` within the storages' limits.

    The deepest of *dirs* are left out until the name has at most
    :data:`MAX_NAME_COMPONENTS` components and :data:`MAX_NAME_BYTES` bytes;
    *prefix* and *tail* are kept whole, and empty parts are skipped.
    """
    room = MAX_NAME_COMPONENTS - len(prefix.split("/")) - 1
    dirs = dirs[: max(room, 0)]
    name = _join(prefix, *dirs, tail)
    while dirs and len(name.encode("utf-8")) > MAX_NAME_BYTES:
        dirs.pop()
        name = _join(prefix, *dirs, tail)
    return name


def _join(*parts: str) -> str:
    return "/".join(part for part in parts if part)


# Names a storage makes for itself -----------------------------------------------------------


def _random_suffix() -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(_SUFFIX_LENGTH))


def alternative_name(name: str) -> str:
    """Return the clean *name* with ``_<7 random letters or digits>`` before its extension.

    The file name is cut so that it stays within :data:`MAX_COMPONENT_BYTES`.
    """
    directory, basename = posixpath.split(name)
    root, ext = posixpath.splitext(basename)
    suffix = f"_{_random_suffix()}"
    room = MAX_COMPONENT_BYTES - len(suffix.encode("utf-8")) - len(ext.encode("utf-8"))
    if room < 1:
        # An absurdly long extension: sacrifice it rather than produce an invalid name.
        root, ext = basename, ""
        room = MAX_COMPONENT_BYTES - len(suffix)
    new_basename = f"{truncate_utf8(root, room)}{suffix}{ext}"
    return posixpath.join(directory, new_basename) if directory else new_basename


def temp_basename(basename: str) -> str:
    """Return a temporary file name for *basename* that fits in one path component.

    :func:`is_temporary_name` is true for it.
    """
    prefix = f"{TEMP_PREFIX}{_random_suffix()}-"
    return prefix + truncate_utf8(basename, MAX_COMPONENT_BYTES - len(prefix))
