"""``IMAGEKIT_*`` settings: their defaults, and their validation at ``init_app``.

Every key that names a class or function accepts the object itself, a class, or a
dotted import path string; all of them are resolved once, here, so a bad value
fails at start-up with :class:`ImproperlyConfigured`, never at the first request.
The result is a frozen :class:`Settings`; the runtime state built on it (the
registry, the state cache, remembered files) is :class:`~flask_imagekit.state.AppState`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import typing as t

from PIL import Image

from . import defaults
from .cachefiles.backends import resolve_backend
from .cachefiles.strategies import resolve_strategy
from .exceptions import ImproperlyConfigured
from .importing import invalid as _fail
from .importing import resolve, resolve_instance
from .specs.responsive import responsive_formats, responsive_widths
from .storage import FileSystemStorage, Storage, clean_name

if t.TYPE_CHECKING:
    from cachelib import BaseCache
    from flask import Flask

    from .protocols import CacheFileBackend, CacheFileStrategy

__all__ = [
    "DEFAULTS",
    "Settings",
    "cachelib_backend",
    "load_settings",
    "responsive_formats",
    "responsive_widths",
]

logger = logging.getLogger("flask_imagekit")
_KEY_SAFE = re.compile(r"^[!-~]*$")
_DIMENSIONS = re.compile(r"^(\d+x\d*|x\d+)$")

DEFAULTS: dict[str, t.Any] = {
    "IMAGEKIT_MEDIA_ROOT": None,  # <instance_path>/media
    "IMAGEKIT_MEDIA_URL": "/media/",
    "IMAGEKIT_SERVE_MEDIA": True,
    "IMAGEKIT_DEFAULT_FILE_STORAGE": None,
    "IMAGEKIT_SOURCE_STORAGE": None,
    "IMAGEKIT_CACHEFILE_DIR": defaults.CACHEFILE_DIR,
    "IMAGEKIT_CACHEFILE_NAMER": "flask_imagekit.cachefiles.namers.hash",
    "IMAGEKIT_SPEC_CACHEFILE_NAMER": "flask_imagekit.cachefiles.namers.source_name_as_path",
    "IMAGEKIT_DEFAULT_CACHEFILE_BACKEND": "flask_imagekit.cachefiles.backends.Simple",
    "IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY": "flask_imagekit.cachefiles.strategies.JustInTime",
    "IMAGEKIT_CACHE_BACKEND": None,
    "IMAGEKIT_CACHE_PREFIX": "imagekit:",
    "IMAGEKIT_CACHE_TIMEOUT": None,
    "IMAGEKIT_MAX_SOURCE_PIXELS": defaults.MAX_SOURCE_PIXELS,
    "IMAGEKIT_MAX_DECODE_BYTES": defaults.MAX_DECODE_BYTES,
    "IMAGEKIT_MAX_OUTPUT_PIXELS": defaults.MAX_OUTPUT_PIXELS,
    "IMAGEKIT_THUMBNAIL_SIZES": None,  # None: any "WxH" string
    "IMAGEKIT_RAISE_ERRORS": None,  # None: app.debug or app.testing
    "IMAGEKIT_PLACEHOLDER": None,  # None: a neutral inline SVG
    "IMAGEKIT_FAILURE_TIMEOUT": 60,
    "IMAGEKIT_ALLOWED_SOURCE_FORMATS": defaults.ALLOWED_SOURCE_FORMATS,
    "IMAGEKIT_DELETE_ORPHANED_CACHEFILES": False,
    "IMAGEKIT_LOCAL_STATE_TIMEOUT": None,  # None: on (60 s) for caches outside the process
    "IMAGEKIT_RESPONSIVE_WIDTHS": defaults.RESPONSIVE_WIDTHS,
    # AVIF then WEBP, less those this Pillow cannot encode (AVIF needs libavif).
    "IMAGEKIT_RESPONSIVE_FORMATS": defaults.RESPONSIVE_FORMATS,
}

# SimpleCache evicts at random past its threshold; state entries are tiny.
_SIMPLE_CACHE_THRESHOLD = 100_000


@dataclasses.dataclass(frozen=True)
class Settings:
    """One app's ``IMAGEKIT_*`` config, validated and resolved."""

    media_root: str
    media_url: str
    serve_media: bool
    storage: Storage
    source_storage: Storage
    cachefile_dir: str
    cachefile_namer: t.Callable[[t.Any], str]
    spec_cachefile_namer: t.Callable[[t.Any], str]
    cachefile_backend: CacheFileBackend
    cachefile_strategy: CacheFileStrategy
    cache_prefix: str
    cache_timeout: float | None
    max_source_pixels: int | None
    max_decode_bytes: int | None
    allowed_source_formats: tuple[str, ...]
    max_output_pixels: int | None = defaults.MAX_OUTPUT_PIXELS
    thumbnail_sizes: frozenset[str] | None = None
    raise_errors: bool = True
    placeholder: str | t.Callable[[t.Any], str] | None = None
    failure_timeout: int = 60
    delete_orphaned_cachefiles: bool = False
    local_state_timeout: float | None = None
    responsive_widths: tuple[int, ...] = defaults.RESPONSIVE_WIDTHS
    responsive_formats: tuple[str, ...] = defaults.RESPONSIVE_FORMATS
    #: Where cache file states live: a cachelib cache, or (Flask-Caching Cache, app).
    cache_source: t.Any = None


def _storage(key: str, value: t.Any, default: Storage) -> Storage:
    if value is None:
        return default
    storage = resolve_instance(key, value, "a storage")
    missing = [m for m in ("open", "save", "exists", "delete", "url") if not hasattr(storage, m)]
    if missing:
        _fail(key, value, f"a storage (it lacks {', '.join(missing)})")
    return t.cast(Storage, storage)


def _namer(key: str, value: t.Any) -> t.Callable[[t.Any], str]:
    namer = resolve(key, value)
    if not callable(namer):
        _fail(key, value, "a namer function (generator -> name) or its dotted path")
    return t.cast(t.Callable[[t.Any], str], namer)


def _formats(key: str, value: t.Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, t.Iterable):
        _fail(key, value, "a list of Pillow format names such as ['JPEG', 'PNG']")
    Image.init()
    formats = tuple(str(fmt).upper() for fmt in value)
    unknown = [fmt for fmt in formats if fmt not in Image.OPEN]
    if unknown or not formats:
        _fail(key, value, f"format names this Pillow can decode (unknown: {unknown})")
    return formats


def _cache_source(key: str, value: t.Any, cache: t.Any, debug: bool, explicit: bool) -> t.Any:
    from cachelib import BaseCache, NullCache, SimpleCache

    if value is None:
        if cache is not None:
            value = cache
        elif debug and not explicit:
            return NullCache()
        else:
            return SimpleCache(threshold=_SIMPLE_CACHE_THRESHOLD, default_timeout=0)
    if isinstance(value, str):
        value = resolve(key, value)
        if isinstance(value, type):
            value = value()
    if isinstance(value, BaseCache) or isinstance(value, dict):
        return value
    from flask_caching import Cache

    if isinstance(value, Cache):
        return value  # looked up in app.extensions on first use, so init order is free
    _fail(key, value, "a Flask-Caching Cache, a cachelib cache, or a Flask-Caching config dict")


def cachelib_backend(source: t.Any) -> BaseCache:
    """The cachelib cache behind a ``cache_source``.

    A Flask-Caching ``Cache`` is looked up on its app, so init order is free.
    """
    from cachelib import BaseCache

    if isinstance(source, BaseCache):
        return source
    cache_obj, app = source
    backend = app.extensions.get("cache", {}).get(cache_obj)
    if backend is None:
        msg = (
            "The Flask-Caching Cache given to ImageKit is not initialised on this app. "
            "Call cache.init_app(app) as well."
        )
        raise ImproperlyConfigured(msg)
    return t.cast("BaseCache", backend)


def load_settings(app: Flask, cache: t.Any, explicit_cache: bool) -> Settings:
    """Validate the ``IMAGEKIT_*`` config of ``app`` and resolve it into :class:`Settings`."""
    config = app.config
    media_root = config["IMAGEKIT_MEDIA_ROOT"] or os.path.join(app.instance_path, "media")
    if not isinstance(media_root, str | os.PathLike):
        _fail("IMAGEKIT_MEDIA_ROOT", media_root, "a directory path")
    media_root = os.path.abspath(os.fspath(media_root))
    media_url = config["IMAGEKIT_MEDIA_URL"]
    if not isinstance(media_url, str) or not media_url:
        _fail("IMAGEKIT_MEDIA_URL", media_url, "a URL prefix such as '/media/'")
    if not media_url.endswith("/"):
        media_url += "/"
    local = FileSystemStorage(media_root, media_url)
    storage = _storage(
        "IMAGEKIT_DEFAULT_FILE_STORAGE", config["IMAGEKIT_DEFAULT_FILE_STORAGE"], local
    )
    source_storage = _storage(
        "IMAGEKIT_SOURCE_STORAGE", config["IMAGEKIT_SOURCE_STORAGE"], storage
    )

    cachefile_dir = config["IMAGEKIT_CACHEFILE_DIR"]
    try:
        cachefile_dir = clean_name(cachefile_dir)
    except Exception as exc:
        msg = f"IMAGEKIT_CACHEFILE_DIR = {cachefile_dir!r} is invalid: {exc}"
        raise ImproperlyConfigured(msg) from exc

    prefix = config["IMAGEKIT_CACHE_PREFIX"]
    # Every cachelib backend must take the keys (Memcached: printable ASCII, no spaces).
    if not isinstance(prefix, str) or len(prefix) > 50 or not _KEY_SAFE.match(prefix):
        _fail("IMAGEKIT_CACHE_PREFIX", prefix, "at most 50 printable ASCII characters, no spaces")
    timeout = config["IMAGEKIT_CACHE_TIMEOUT"]
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        _fail("IMAGEKIT_CACHE_TIMEOUT", timeout, "None (forever) or a positive number of seconds")
    max_pixels = _limit(config, "IMAGEKIT_MAX_SOURCE_PIXELS", "a positive integer")
    max_bytes = _limit(config, "IMAGEKIT_MAX_DECODE_BYTES", "None or a positive number of bytes")
    max_output = _limit(
        config, "IMAGEKIT_MAX_OUTPUT_PIXELS", "None or a positive number of pixels"
    )
    thumbnail_sizes = _thumbnail_sizes(config["IMAGEKIT_THUMBNAIL_SIZES"])
    raise_errors = config["IMAGEKIT_RAISE_ERRORS"]
    if raise_errors is None:
        raise_errors = bool(app.debug or app.testing)
    elif not isinstance(raise_errors, bool):
        _fail(
            "IMAGEKIT_RAISE_ERRORS", raise_errors, "None (app.debug or app.testing), True or False"
        )
    # A string is a URL (never a dotted path): "/static/missing.png".
    placeholder = config["IMAGEKIT_PLACEHOLDER"]
    if (
        placeholder is not None
        and not callable(placeholder)
        and (not isinstance(placeholder, str) or not placeholder)
    ):
        _fail("IMAGEKIT_PLACEHOLDER", placeholder, "None, a URL, or a callable (file) -> URL")
    failure_timeout = config["IMAGEKIT_FAILURE_TIMEOUT"]
    if (
        isinstance(failure_timeout, bool)
        or not isinstance(failure_timeout, int | float)
        or (failure_timeout < 1)
    ):
        _fail("IMAGEKIT_FAILURE_TIMEOUT", failure_timeout, "a number of seconds, at least 1")
    for flag in ("IMAGEKIT_SERVE_MEDIA", "IMAGEKIT_DELETE_ORPHANED_CACHEFILES"):
        if not isinstance(config[flag], bool):
            _fail(flag, config[flag], "True or False")

    backend = resolve_backend(
        "IMAGEKIT_DEFAULT_CACHEFILE_BACKEND", config["IMAGEKIT_DEFAULT_CACHEFILE_BACKEND"]
    )
    if getattr(backend, "is_async", False) and not config.get("SECRET_KEY"):
        msg = (
            f"IMAGEKIT_DEFAULT_CACHEFILE_BACKEND = {backend!r} signs its jobs with the app's "
            "SECRET_KEY, and the app has none. Set SECRET_KEY (the same one on the web app "
            "and its workers)."
        )
        raise ImproperlyConfigured(msg)

    cache_source = _cache_source(
        "IMAGEKIT_CACHE_BACKEND",
        config["IMAGEKIT_CACHE_BACKEND"],
        cache,
        app.debug,
        explicit_cache,
    )
    if isinstance(cache_source, dict):
        from flask_caching import Cache

        flask_cache = Cache(config={"CACHE_TYPE": "SimpleCache", **cache_source})
        try:
            flask_cache.init_app(app)
        except Exception as exc:
            msg = f"IMAGEKIT_CACHE_BACKEND = {cache_source!r} is invalid: {exc}"
            raise ImproperlyConfigured(msg) from exc
        cache_source = (flask_cache, app)
    elif not _is_cachelib(cache_source):
        cache_source = (cache_source, app)

    return Settings(
        media_root=media_root,
        media_url=media_url,
        serve_media=config["IMAGEKIT_SERVE_MEDIA"],
        storage=storage,
        source_storage=source_storage,
        cachefile_dir=cachefile_dir,
        cachefile_namer=_namer("IMAGEKIT_CACHEFILE_NAMER", config["IMAGEKIT_CACHEFILE_NAMER"]),
        spec_cachefile_namer=_namer(
            "IMAGEKIT_SPEC_CACHEFILE_NAMER", config["IMAGEKIT_SPEC_CACHEFILE_NAMER"]
        ),
        cachefile_backend=backend,
        cachefile_strategy=resolve_strategy(
            config["IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY"],
            key="IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY",
        ),
        cache_prefix=prefix,
        cache_timeout=timeout,
        max_source_pixels=max_pixels,
        max_decode_bytes=max_bytes,
        max_output_pixels=max_output,
        thumbnail_sizes=thumbnail_sizes,
        raise_errors=raise_errors,
        placeholder=placeholder,
        failure_timeout=math.ceil(failure_timeout),
        allowed_source_formats=_formats(
            "IMAGEKIT_ALLOWED_SOURCE_FORMATS", config["IMAGEKIT_ALLOWED_SOURCE_FORMATS"]
        ),
        delete_orphaned_cachefiles=config["IMAGEKIT_DELETE_ORPHANED_CACHEFILES"],
        local_state_timeout=_local_timeout(config["IMAGEKIT_LOCAL_STATE_TIMEOUT"]),
        responsive_widths=responsive_widths(
            "IMAGEKIT_RESPONSIVE_WIDTHS", config["IMAGEKIT_RESPONSIVE_WIDTHS"]
        ),
        responsive_formats=responsive_formats(
            "IMAGEKIT_RESPONSIVE_FORMATS", config["IMAGEKIT_RESPONSIVE_FORMATS"], warn=True
        ),
        cache_source=cache_source,
    )


def _limit(config: t.Mapping[str, t.Any], key: str, expected: str) -> int | None:
    """A limit setting: None (no limit) or a positive integer."""
    value = config[key]
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        _fail(key, value, expected)
    return value


def _thumbnail_sizes(value: t.Any) -> frozenset[str] | None:
    key = "IMAGEKIT_THUMBNAIL_SIZES"
    expected = 'None (any size) or a list of dimension strings such as ["100x100", "300x"]'
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, t.Iterable):
        _fail(key, value, expected)
    sizes = list(value)
    if not all(isinstance(size, str) and _DIMENSIONS.match(size) for size in sizes):
        _fail(key, value, expected)
    return frozenset(sizes)


def _local_timeout(value: t.Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        _fail("IMAGEKIT_LOCAL_STATE_TIMEOUT", value, "None (automatic), 0 (off) or seconds")
    return float(value)


def _is_cachelib(value: object) -> bool:
    from cachelib import BaseCache

    return isinstance(value, BaseCache)
