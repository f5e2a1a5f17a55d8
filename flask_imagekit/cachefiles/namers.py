"""Namers: functions that give a generator's cache file its name.

They follow django-imagekit's layout byte for byte for ordinary names:

* :func:`source_name_as_path` -> ``CACHE/images/photos/bulldog/<hash>.jpg``
* :func:`source_name_dot_hash` -> ``CACHE/images/photos/bulldog.<hash12>.jpg``
* :func:`hash` -> ``CACHE/images/<hash>.jpg``

Source names come from users, so every name is rebuilt from components cleaned
by :mod:`flask_imagekit.storage.names`: no ``..``, no absolute paths, no NUL or
control characters, no Windows device names, no component longer than 255 bytes,
at most 32 components and 1,024 bytes in all (the deepest source folders are left
out when needed: the hash still tells sources apart), and no file name that looks
like a storage's temp file. Every name stays inside the cache file directory.

A name depends only on the cache file directory, the generator's hash, its
source's name and its output format, so each namer remembers its recent answers
for those four values.
"""

from __future__ import annotations

import functools
import os
import typing as t

from .. import defaults
from ..formats import format_for_name, output_extension
from ..globals import current_state_or_none
from ..storage.names import (
    MAX_COMPONENT_BYTES,
    fit_name,
    is_absolute_name,
    sanitize_dirs,
    sanitize_extension,
    sanitize_stem,
)

__all__ = ["hash", "source_name_as_path", "source_name_dot_hash"]

# Names are asked for on every page render; remember this many per layout.
_MEMO_SIZE = 100_000


def source_name_as_path(generator: t.Any) -> str:
    """``<cache dir>/<source path without extension>/<hash><ext>``."""
    source_name = _source_name(generator)
    return _as_path(
        _cachefile_dir(generator), _hash(generator), source_name, _output_format(generator)
    )


def source_name_dot_hash(generator: t.Any) -> str:
    """``<cache dir>/<source dir>/<source base name>.<hash[:12]><ext>``."""
    source_name = _source_name(generator)
    return _dot_hash(
        _cachefile_dir(generator), _hash(generator), source_name, _output_format(generator)
    )


def hash(generator: t.Any) -> str:  # noqa: A001 - django-imagekit's public name
    """``<cache dir>/<hash><ext>``, the extension following the generator's output format."""
    return _hash_only(_cachefile_dir(generator), _hash(generator), _output_format(generator))


# The layouts: pure functions of plain values, so their answers can be remembered.


@functools.lru_cache(maxsize=_MEMO_SIZE)
def _as_path(cachefile_dir: str, digest: str, source_name: str | None, fmt: str | None) -> str:
    dirs: list[str] = []
    if source_name is not None and not is_absolute_name(source_name):
        dirs = sanitize_dirs(os.path.splitext(source_name)[0])
    ext = sanitize_extension(output_extension(source_name, fmt))
    return fit_name(cachefile_dir, dirs, f"{digest}{ext}")


@functools.lru_cache(maxsize=_MEMO_SIZE)
def _dot_hash(cachefile_dir: str, digest: str, source_name: str | None, fmt: str | None) -> str:
    source_name = source_name or ""
    slashed = source_name.replace("\\", "/")
    dirs: list[str] = []
    if source_name and not is_absolute_name(source_name):
        dirs = sanitize_dirs(os.path.dirname(slashed))
    ext = sanitize_extension(output_extension(source_name, fmt))
    tail = f".{digest[:12]}{ext}"
    stem = os.path.splitext(os.path.basename(slashed))[0]
    stem = sanitize_stem(stem, MAX_COMPONENT_BYTES - len(tail.encode("utf-8")))
    return fit_name(cachefile_dir, dirs, f"{stem}{tail}")


@functools.lru_cache(maxsize=_MEMO_SIZE)
def _hash_only(cachefile_dir: str, digest: str, fmt: str | None) -> str:
    ext = sanitize_extension(output_extension(None, fmt))
    return fit_name(cachefile_dir, [], f"{digest}{ext}")


# What a layout needs from the generator and the app.


def _cachefile_dir(generator: t.Any) -> str:
    # A spec built for an app carries its state: no lookup of the current app.
    state = getattr(generator, "app_state", None) or current_state_or_none()
    return state.cachefile_dir if state is not None else defaults.CACHEFILE_DIR


def _hash(generator: t.Any) -> str:
    return f"{generator.get_hash()}"


def _source_name(generator: t.Any) -> str | None:
    name = getattr(getattr(generator, "source", None), "name", None)
    # str() drops a str subclass, so the memo keeps no reference to its storage.
    return str(name) if isinstance(name, str) and name else None


def _output_format(generator: t.Any) -> str | None:
    output_format = getattr(generator, "output_format", None)
    if callable(output_format):
        return t.cast("str | None", output_format())
    format = getattr(generator, "format", None)
    if format:
        return t.cast(str, format)
    # A generator without a format writes what a format-less spec would.
    return format_for_name(_source_name(generator))
