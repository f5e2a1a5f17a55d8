"""The states of cache files as the state cache keeps them: keys, values and their parsing.

A state value is ``"E[:WxH]"`` (exists, with its size when known), ``"D"`` (does not
exist), ``"M"`` (its source is missing) or ``"F:<error class>:<message>"`` (its last
generation failed). Keys are safe for every cachelib backend.

What the ``<picture>`` of a spec's output needs — the output's size, its blurred
preview, the source's width — is kept under a key of its own, named after the spec's
own file (see :func:`picture_value`), so a page reads it in one lookup; the
candidates made of it, under another (see :func:`made_value`).
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import functools
import hashlib
import logging
import re
import typing as t

from ...exceptions import GenerationError, ImageKitError, MissingSource, SourceError, StorageError

if t.TYPE_CHECKING:
    from ...statecache import StateCache

__all__ = [
    "CACHE_FAILED",
    "MAX_RECORDED_CANDIDATES",
    "CandidateKey",
    "CacheFileState",
    "Lookup",
    "PictureInfo",
    "exists_value",
    "for_page",
    "rendering",
    "failure_value",
    "made_key",
    "made_value",
    "parse_made",
    "parse_picture",
    "parse_state",
    "picture_key",
    "picture_value",
    "state_key",
    "unreachable_errors",
    "warn_refused",
]

logger = logging.getLogger("flask_imagekit.cachefiles.backends")

_MAX_KEY_LENGTH = 200
# Keys every cachelib backend takes (Memcached: no spaces or control characters).
_UNSAFE_KEY = re.compile(r"[^!-~]")
# State values: "E[:WxH]" exists, "D" does not exist, "M" its source is missing,
# "F:<error class>:<message>" its last generation failed.
SOURCE_MISSING = "M"
_FAILED = "F"
_MAX_FAILURE_MESSAGE = 500
_MISSING = ("D", SOURCE_MISSING)
_WHITESPACE = re.compile(r"\s")


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


#: A responsive candidate of a spec's output: ``(width, format)``, None for the
#: spec's own width or format (see :mod:`flask_imagekit.specs.responsive`).
CandidateKey = tuple[int | None, str | None]

#: The most candidates of one spec's output recorded as made; more are left out.
MAX_RECORDED_CANDIDATES = 64


class PictureInfo(t.NamedTuple):
    """What the pictures of a spec's output know without generating anything."""

    #: Width and height of the spec's own output (before any candidate's downscale).
    size: tuple[int, int]
    #: The blurred preview: a ``data:`` URI of at most 1 KiB, or None.
    preview: str | None = None
    #: Width of the source as the spec sees it (upright), when known: no candidate is wider.
    source_width: int | None = None


def picture_key(prefix: str, name: str) -> str:
    """The state cache key of the pictures of the spec whose own file is called ``name``."""
    return state_key(prefix, "picture:", name)


def picture_value(info: PictureInfo) -> str:
    """The state value of a picture: ``"E:WxH"``, then ``s:<source width>`` and the
    preview when known, space separated.

    It reads as an EXISTS value on purpose: the local tier in front of a remote state
    cache keeps only those, and a page asks for it on every render. A preview holds
    no space (a data URI: base64 or percent-encoded), so the split is unambiguous.
    """
    parts = [exists_value(info.size)]
    if info.source_width:
        parts.append(f"s:{info.source_width}")
    if info.preview and not _WHITESPACE.search(info.preview):
        parts.append(info.preview)
    return " ".join(parts)


@functools.lru_cache(maxsize=1024)
def _parse_picture(raw: str) -> PictureInfo | None:
    head, *rest = raw.split(" ")
    size = _parse_text(head).size if head.startswith("E:") else None
    if size is None:
        return None
    preview: str | None = None
    source_width: int | None = None
    for part in rest:
        if part.startswith("s:") and part[2:].isdigit():
            source_width = int(part[2:]) or None
        elif part:
            preview = part
    return PictureInfo(size, preview, source_width)


def parse_picture(raw: t.Any) -> PictureInfo | None:
    """What the picture value ``raw`` (as read from the cache) tells; None if nothing."""
    return _parse_picture(raw) if isinstance(raw, str) else None


def made_key(prefix: str, name: str) -> str:
    """The state cache key of the candidates made of the spec whose own file is ``name``."""
    return state_key(prefix, "made:", name)


def made_value(keys: t.Iterable[CandidateKey]) -> str:
    """``"C:<width>.<format>,..."`` (empty for None), at most
    :data:`MAX_RECORDED_CANDIDATES`: the candidates made of a spec's output.

    Not an EXISTS value on purpose: the local tier never keeps it, so a process
    adding to it reads what the others added (pages never read it).
    """
    unique = list(dict.fromkeys(keys))[:MAX_RECORDED_CANDIDATES]
    return "C:" + ",".join(f"{width or ''}.{fmt or ''}" for width, fmt in unique)


def parse_made(raw: t.Any) -> tuple[CandidateKey, ...]:
    """The candidates in the value ``raw`` (see :func:`made_value`); empty if none."""
    if not isinstance(raw, str) or not raw.startswith("C:"):
        return ()
    keys = (_candidate(text) for text in raw[2:].split(","))
    return tuple(dict.fromkeys(key for key in keys if key is not None))


def _candidate(text: str) -> CandidateKey | None:
    """The key ``"<width>.<format>"`` (either may be empty: None); None if it is not one."""
    width, dot, fmt = text.partition(".")
    if not dot or (width and not width.isdigit()) or (fmt and not fmt.isalnum()):
        return None
    key = (int(width) if width else None, fmt.upper() or None)
    return None if key == (None, None) or key[0] == 0 else key


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


def warn_refused(cache: StateCache) -> None:
    """Warn, once per outage window, that ``cache`` refuses writes."""
    if not cache.refusing.begin():
        return
    logger.warning(
        "flask_imagekit: the state cache %r refuses writes (is its server down?); files are "
        "generated inline without a shared lock meanwhile.",
        cache,
    )
