"""Remembered cache files, so a page renders an image it has rendered before cheaply.

The name, URL and size of a cache file depend only on the generator id, its
arguments and the app's settings when the spec's parameters are plain class
attributes (not properties reading the source's row). For those, the cache file
object is kept for ``ttl`` seconds and handed out again; it keeps its rendered
``<img>`` tag, and the strategy still runs on every use (JustInTime checks the
state, Optimistic nothing). An entry is valid for one *epoch* of the app's state
cache: any state written in the process (a generation, a failure, a deletion)
starts a new one. What is derived from such a file (a ``<picture>``'s markup) is
remembered on the same terms, under a key with the rest of its arguments.
"""

from __future__ import annotations

import functools
import inspect
import time
import typing as t

from .sources import SourceFile
from .specs import BaseImageSpec, ImageSpec

if t.TYPE_CHECKING:
    from .cachefiles import ImageCacheFile
    from .registry import Registry

__all__ = ["FileMemo", "is_static_spec"]

_PLAIN = (str, int, float, bool, type(None))
_PLAIN_TYPES = frozenset(_PLAIN)
_PARAM_FIELDS = ("processors", "format", "options", "autoconvert", "auto_orient")


@functools.lru_cache(maxsize=1024)
def is_static_spec(cls: type) -> bool:
    """Whether a generator class's output depends only on its constructor arguments."""
    if not issubclass(cls, ImageSpec) or any(
        isinstance(inspect.getattr_static(cls, name, None), property) for name in _PARAM_FIELDS
    ):
        return False
    return inspect.getattr_static(cls, "cachefile_name") is inspect.getattr_static(
        BaseImageSpec, "cachefile_name"
    )


def _plain(value: t.Any) -> t.Any:
    """A hashable stand-in for an argument, or raise TypeError."""
    if type(value) in _PLAIN_TYPES:
        return value
    if isinstance(value, str) and getattr(value, "column_storage", None) is None:
        return str(value)
    if isinstance(value, _PLAIN) and not isinstance(value, str):
        return value
    if isinstance(value, SourceFile) and value.is_stored and value.storage is None:
        return ("source", value.name)
    if isinstance(value, tuple | list) and all(isinstance(item, _PLAIN) for item in value):
        return tuple(value)
    raise TypeError


class FileMemo:
    """Cache file objects by (generator id, arguments, HTML attributes)."""

    def __init__(self, ttl: float = 60.0, max_entries: int = 20_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[tuple[t.Any, ...], tuple[t.Any, float, int]] = {}

    def key(
        self,
        registry: Registry,
        generator_id: str,
        kwargs: t.Mapping[str, t.Any],
        attrs: t.Mapping[str, t.Any] | None,
        extra: tuple[t.Any, ...] = (),
    ) -> tuple[t.Any, ...] | None:
        """The memo key of a request for a file, or None when it cannot be remembered.

        ``extra``: more arguments of a request for something derived from the file
        (plain values, or lists of them).
        """
        if not self.ttl:
            return None
        # Keyword order is part of the key: another order is a miss, never a wrong hit.
        try:
            arguments = tuple([(name, _plain(value)) for name, value in kwargs.items()])
            html = tuple([(name, _plain(value)) for name, value in attrs.items()]) if attrs else ()
            more = tuple([_plain(value) for value in extra])
        except TypeError:
            return None
        return (generator_id, registry.total_version, arguments, html, *more)

    def get(self, key: tuple[t.Any, ...], epoch: int) -> t.Any:
        """The file (or what was derived from it) remembered for ``key`` in ``epoch``."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[2] != epoch or entry[1] < time.monotonic():
            self._entries.pop(key, None)
            return None
        return entry[0]

    def put(
        self, key: tuple[t.Any, ...], file: ImageCacheFile, epoch: int, value: t.Any = None
    ) -> None:
        """Remember ``file`` for ``epoch`` if its spec's output depends only on the key.

        With ``value``, remember that instead: something derived from ``file``
        alone, on the same terms. Files of specs that name a backend of their own
        are not remembered: it may keep its states in a cache whose epoch the app's
        does not follow.
        """
        generator_class: type = type(file.generator)
        if not is_static_spec(generator_class):
            return
        if getattr(file.generator, "cachefile_backend", None) is not None:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (file if value is None else value, time.monotonic() + self.ttl, epoch)

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()
