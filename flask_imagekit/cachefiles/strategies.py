"""Cache file strategies: *when* a cache file is generated.

A strategy is any object with some of these callbacks, each taking the cache
file: ``on_existence_required``, ``on_content_required``, ``on_source_created``,
``on_source_changed``, ``on_source_deleted``, ``on_source_saved`` (created or
changed), and optionally ``should_verify_existence(file) -> bool``. A dict of
such callbacks or a callable returning a strategy works too.
"""

from __future__ import annotations

import typing as t

from ..exceptions import ImproperlyConfigured
from ..importing import resolve

if t.TYPE_CHECKING:
    from . import ImageCacheFile

__all__ = ["CALLBACKS", "DictStrategy", "JustInTime", "Optimistic", "resolve_strategy"]

CALLBACKS = (
    "on_existence_required",
    "on_content_required",
    "on_source_created",
    "on_source_changed",
    "on_source_deleted",
    "on_source_saved",
)


class JustInTime:
    """Generate a file when its existence or content is needed (the default)."""

    def on_existence_required(self, file: ImageCacheFile) -> None:
        """Generate ``file`` unless its state says it exists."""
        file.generate()

    def on_content_required(self, file: ImageCacheFile) -> None:
        """Generate ``file`` unless its state says it exists."""
        file.generate()

    def __repr__(self) -> str:
        return "JustInTime()"


class Optimistic:
    """Generate a file when its source is saved; assume it exists on access.

    URLs and truth tests of files cost no storage call at all: generation
    happens when a source group reports a created or changed source, or when
    ``flask imagekit generate`` runs.
    """

    def on_source_saved(self, file: ImageCacheFile) -> None:
        """Generate ``file`` now that its source was created or changed."""
        file.generate()

    def should_verify_existence(self, file: ImageCacheFile) -> bool:
        """Never check: the file is assumed to exist."""
        return False

    def __repr__(self) -> str:
        return "Optimistic()"


class DictStrategy:
    """A strategy made of a dict of callbacks, as django-imagekit accepts."""

    def __init__(self, callbacks: t.Mapping[str, t.Callable[..., t.Any]]) -> None:
        unknown = set(callbacks) - set(CALLBACKS) - {"should_verify_existence"}
        if unknown:
            msg = (
                f"Unknown strategy callbacks {sorted(unknown)}; "
                f"use some of {', '.join(CALLBACKS)}."
            )
            raise ImproperlyConfigured(msg)
        for name, callback in callbacks.items():
            setattr(self, name, callback)
        self._callbacks = dict(callbacks)

    def __repr__(self) -> str:
        return f"DictStrategy({sorted(self._callbacks)})"


def resolve_strategy(value: t.Any, *, key: str = "cachefile_strategy") -> t.Any:
    """Turn a strategy setting (object, class, callable, dict, dotted path) into an object."""
    value = resolve(key, value)
    if isinstance(value, dict):
        try:
            return DictStrategy(value)
        except ImproperlyConfigured as exc:
            msg = f"{key}: {exc}"
            raise ImproperlyConfigured(msg) from exc
    if isinstance(value, type) or (callable(value) and not _looks_like_strategy(value)):
        try:
            value = value()
        except Exception as exc:
            msg = f"{key}: could not create a strategy from {value!r}: {exc}."
            raise ImproperlyConfigured(msg) from exc
        return resolve_strategy(value, key=key) if isinstance(value, dict) else value
    if value is None or not _looks_like_strategy(value):
        msg = (
            f"{key} = {value!r} is not a cache file strategy: give JustInTime, Optimistic, "
            "a dict of callbacks, or an object with some of their callbacks."
        )
        raise ImproperlyConfigured(msg)
    return value


def _looks_like_strategy(value: object) -> bool:
    return any(hasattr(value, name) for name in (*CALLBACKS, "should_verify_existence"))


def call_strategy(strategy: t.Any, callback: str, file: ImageCacheFile) -> None:
    """Call ``strategy.<callback>(file)`` if the strategy defines it."""
    method = getattr(strategy, callback, None)
    if method is not None:
        method(file)
