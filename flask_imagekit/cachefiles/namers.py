"""Namers: functions that give a generator's cache file its name.

They follow django-imagekit's layout byte for byte for ordinary names:

* :func:`source_name_as_path` -> ``CACHE/images/photos/bulldog/<hash>.jpg``
* :func:`source_name_dot_hash` -> ``CACHE/images/photos/bulldog.<hash12>.jpg``
* :func:`hash` -> ``CACHE/images/<hash>.jpg``

Source names come from users, so every name is rebuilt from cleaned components:
no ``..``, no absolute paths, no NUL or control characters, no Windows device
names, no component longer than 255 bytes, at most 32 components and 1,024
bytes in all (the deepest source folders are left out when needed: the hash
still tells sources apart), and no file name that looks like a storage's temp
file. Every name stays inside the cache file directory.
"""

from __future__ import annotations

import os
import re
import typing as t

from ..config import current_state_or_none
from ..storage import MAX_NAME_BYTES, MAX_NAME_COMPONENTS, is_temporary_name
from ..utils import format_for_name, output_extension

__all__ = ["hash", "source_name_as_path", "source_name_dot_hash"]

_MAX_COMPONENT_BYTES = 255
_MAX_EXTENSION_BYTES = 16
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_DRIVE = re.compile(r"^[A-Za-z]:")
_DEVICE_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{port}{digit}" for port in ("COM", "LPT") for digit in "0123456789\u00b9\u00b2\u00b3"}
)


def _cachefile_dir() -> str:
    state = current_state_or_none()
    return state.cachefile_dir if state is not None else "CACHE/images"


def _truncate(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode("utf-8", errors="ignore")


def _clean_component(part: str, limit: int = _MAX_COMPONENT_BYTES) -> str:
    part = _CONTROL.sub("_", part)
    if part.split(".", 1)[0].rstrip(" ").upper() in _DEVICE_NAMES:
        part = "_" + part
    return _truncate(part, limit)


def _clean_dirs(path: str) -> list[str]:
    path = _DRIVE.sub("", path.replace("\\", "/"))
    return [_clean_component(p) for p in path.split("/") if p not in ("", ".", "..")]


def _clean_extension(ext: str) -> str:
    ext = _CONTROL.sub("", ext).replace("/", "").replace("\\", "")
    return ext if len(ext.encode("utf-8")) <= _MAX_EXTENSION_BYTES else ""


def _source_name(generator: t.Any) -> str | None:
    name = getattr(getattr(generator, "source", None), "name", None)
    return name if isinstance(name, str) and name else None


def _output_format(generator: t.Any) -> str | None:
    output_format = getattr(generator, "output_format", None)
    if callable(output_format):
        return t.cast("str | None", output_format())
    format = getattr(generator, "format", None)
    if format:
        return t.cast(str, format)
    # A generator without a format writes what a format-less spec would.
    return format_for_name(_source_name(generator))


def _is_absolute(name: str) -> bool:
    return os.path.isabs(name) or bool(_DRIVE.match(name)) or name.startswith("\\")


def _join(*parts: str) -> str:
    return "/".join(part for part in parts if part)


def _fit(prefix: str, dirs: list[str], tail: str) -> str:
    """``prefix/dirs.../tail`` within the storages' limits, dropping the deepest dirs."""
    room = MAX_NAME_COMPONENTS - len(prefix.split("/")) - 1
    dirs = dirs[: max(room, 0)]
    name = _join(prefix, *dirs, tail)
    while dirs and len(name.encode("utf-8")) > MAX_NAME_BYTES:
        dirs.pop()
        name = _join(prefix, *dirs, tail)
    return name


def source_name_as_path(generator: t.Any) -> str:
    """``<cache dir>/<source path without extension>/<hash><ext>``."""
    source_name = _source_name(generator)
    dirs: list[str] = []
    if source_name is not None and not _is_absolute(source_name):
        dirs = _clean_dirs(os.path.splitext(source_name)[0])
    ext = _clean_extension(output_extension(source_name, _output_format(generator)))
    return _fit(_cachefile_dir(), dirs, f"{generator.get_hash()}{ext}")


def source_name_dot_hash(generator: t.Any) -> str:
    """``<cache dir>/<source dir>/<source base name>.<hash[:12]><ext>``."""
    source_name = _source_name(generator) or ""
    dirs: list[str] = []
    if source_name and not _is_absolute(source_name):
        dirs = _clean_dirs(os.path.dirname(source_name.replace("\\", "/")))
    ext = _clean_extension(output_extension(source_name, _output_format(generator)))
    tail = f".{generator.get_hash()[:12]}{ext}"
    base = os.path.splitext(os.path.basename(source_name.replace("\\", "/")))[0]
    base = _clean_component(base, _MAX_COMPONENT_BYTES - len(tail.encode("utf-8")))
    if base in ("", ".", "..") or is_temporary_name(base):
        base = _truncate("_" + base, _MAX_COMPONENT_BYTES - len(tail.encode("utf-8")))
    return _fit(_cachefile_dir(), dirs, f"{base}{tail}")


def hash(generator: t.Any) -> str:  # noqa: A001 - django-imagekit's public name
    """``<cache dir>/<hash><ext>``, the extension following the generator's output format."""
    ext = _clean_extension(output_extension(None, _output_format(generator)))
    return _join(_cachefile_dir(), f"{generator.get_hash()}{ext}")
