"""The states of cache files as the state cache keeps them: keys, values and their parsing.

A state value is ``"E[:WxH]"`` (exists, with its size when known), ``"D"`` (does not
exist), ``"M"`` (its source is missing) or ``"F:<error class>:<message>"`` (its last
generation failed). Keys are safe for every cachelib backend.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import functools
import hashlib
import re
import typing as t

from ...exceptions import GenerationError, ImageKitError, MissingSource, SourceError, StorageError

__all__ = [
    "CACHE_FAILED",
    "CacheFileState",
    "Lookup",
    "exists_value",
    "for_page",
    "rendering",
    "failure_value",
    "parse_state",
    "state_key",
    "unreachable_errors",
]

_MAX_KEY_LENGTH = 200
# Keys every cachelib backend takes (Memcached: no spaces or control characters).
_UNSAFE_KEY = re.compile(r"[^!-~]")
# State values: "E[:WxH]" exists, "D" does not exist, "M" its source is missing,
# "F:<error class>:<message>" its last generation failed.
SOURCE_MISSING = "M"
_FAILED = "F"
_MAX_FAILURE_MESSAGE = 500
_MISSING = ("D", SOURCE_MISSING)


#: True while a cache file is generated because a page needs it (``url``,
#: ``bool()``, rendering), as opposed to an explicit ``generate()``: such a
#: generation honours the FAILED state and waits at most ``lock_wait`` seconds.
rendering: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "flask_imagekit_rendering", default=False
)


@contextlib.contextmanager
def for_page() -> t.Iterator[None]:
    """Within the block, generations are for a page (see :data:`rendering`)."""
    token = rendering.set(True)
    try:
        yield
    finally:
        rendering.reset(token)


class CacheFileState(str, enum.Enum):
    """What a backend knows of a cache file."""

    EXISTS = "exists"
    GENERATING = "generating"
    DOES_NOT_EXIST = "does_not_exist"
    FAILED = "failed"


class Lookup(t.NamedTuple):
    """What one read of the state cache tells of a file."""

    #: None when the state cache knows nothing of the file.
    state: CacheFileState | None
    #: Width and height, when the file exists and they were recorded.
    size: tuple[int, int] | None = None
    #: The error of the last failed generation, while it is remembered.
    error: ImageKitError | None = None


_FAILURE_CLASSES: dict[str, type[ImageKitError]] = {
    cls.__name__: cls for cls in (SourceError, MissingSource, GenerationError, StorageError)
}


@functools.lru_cache(maxsize=8192)
def state_key(prefix: str, kind: str, name: str) -> str:
    """The state cache key of kind ``kind`` (``"state:"``, ``"lock:"``…) for the file ``name``."""
    key = f"{prefix}{kind}{name}"
    if len(key) > _MAX_KEY_LENGTH or _UNSAFE_KEY.search(key):
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
        key = f"{prefix}{kind}#{digest}"
    return key


def exists_value(size: tuple[int, int] | None) -> str:
    """The state value of an existing file of ``size`` (unknown: None)."""
    return f"E:{size[0]}x{size[1]}" if size else "E"


@functools.lru_cache(maxsize=4096)
def _parse_text(raw: str) -> Lookup:
    if raw.startswith("E"):
        if raw.startswith("E:"):
            width, _, height = raw[2:].partition("x")
            with contextlib.suppress(ValueError):
                return Lookup(CacheFileState.EXISTS, (int(width), int(height)))
        return Lookup(CacheFileState.EXISTS)
    if raw.startswith(_FAILED):
        _, kind, message = (raw.split(":", 2) + ["", ""])[:3]
        cls = _FAILURE_CLASSES.get(kind, SourceError)
        error = cls(f"{message} (failed recently; retried after IMAGEKIT_FAILURE_TIMEOUT)")
        return Lookup(CacheFileState.FAILED, error=error)
    if raw in _MISSING:
        return Lookup(CacheFileState.DOES_NOT_EXIST)
    return Lookup(None)


def parse_state(raw: t.Any) -> Lookup:
    """What the state value ``raw`` (as read from the cache) tells."""
    if isinstance(raw, str):
        found = _parse_text(raw)
        if found.error is not None:
            # A fresh exception per lookup: a raised one carries its traceback.
            error = type(found.error)(*found.error.args)
            return found._replace(error=error)
        return found
    return Lookup(None)


@functools.cache
def unreachable_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean the state cache cannot be reached (not a bug in a call)."""
    errors: list[type[BaseException]] = [OSError, ConnectionError, TimeoutError, EOFError]
    try:
        from redis.exceptions import RedisError
    except ImportError:
        pass
    else:
        errors.append(RedisError)
    return tuple(errors)


class _CacheFailed:
    def __repr__(self) -> str:
        return "<cache failed>"


#: What a state cache operation returns when the cache could not be reached.
CACHE_FAILED: t.Any = _CacheFailed()


def failure_value(error: BaseException) -> str:
    """The state value recording that a generation failed with ``error``."""
    kind = type(error).__name__ if type(error).__name__ in _FAILURE_CLASSES else "SourceError"
    return f"{_FAILED}:{kind}:{str(error)[:_MAX_FAILURE_MESSAGE]}"
