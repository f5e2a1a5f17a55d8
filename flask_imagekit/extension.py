"""The Flask extension: per-app settings, the registry, the media route.

``ImageKit(app)`` or ``imagekit.init_app(app, db=db, cache=cache)``. The
extension never stores an app; each app's resolved settings live in an
:class:`~flask_imagekit.config.AppState` reached through ``current_app``.
"""

from __future__ import annotations

import logging
import typing as t
import weakref

from flask import Flask, Response, send_from_directory
from werkzeug.exceptions import NotFound

from . import generatorlibrary  # noqa: F401 - registers imagekit:thumbnail
from .cachefiles import ImageCacheFile
from .cachefiles.strategies import call_strategy
from .cli import imagekit_cli
from .config import (
    _STATE_KEY,
    DEFAULTS,
    AppState,
    current_state,
    current_state_or_none,
    load_state,
)
from .exceptions import ImproperlyConfigured, SuspiciousName
from .registry import Register, Registry, Unregister, default_registry
from .signals import source_changed, source_created, source_deleted
from .storage import clean_name
from .templating import init_templating

if t.TYPE_CHECKING:
    from flask_caching import Cache
    from flask_sqlalchemy import SQLAlchemy

__all__ = ["ImageKit", "current_state", "current_state_or_none"]

logger = logging.getLogger(__name__)

#: Browsers may keep cache files this long (their names change with the spec).
CACHEFILE_MAX_AGE = 365 * 24 * 3600


class ImageKit:
    """The flask_imagekit extension.

    :param app: an app to initialise right away (or call :meth:`init_app` later).
    :param db: the Flask-SQLAlchemy extension, for model integration.
    :param cache: a Flask-Caching ``Cache`` to keep cache file states in, unless
        ``IMAGEKIT_CACHE_BACKEND`` says otherwise.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        db: SQLAlchemy | None = None,
        cache: Cache | None = None,
    ) -> None:
        #: Generators and source groups of this extension; they win over the
        #: process-wide ``flask_imagekit.register`` on the same id.
        self.registry = Registry(parent=default_registry)
        self.register = Register(self.registry)
        self.unregister = Unregister(self.registry)
        self.db = db
        self.cache = cache
        self._states: weakref.WeakKeyDictionary[Flask, AppState] = weakref.WeakKeyDictionary()
        if app is not None:
            self.init_app(app, db=db, cache=cache)

    def init_app(
        self,
        app: Flask,
        db: SQLAlchemy | None = None,
        cache: Cache | None = None,
    ) -> None:
        """Validate the ``IMAGEKIT_*`` config of ``app`` and set the extension up on it."""
        if "imagekit" in app.extensions:
            msg = "An ImageKit instance is already registered on this app; init it only once."
            raise ImproperlyConfigured(msg)
        explicit_cache = app.config.get("IMAGEKIT_CACHE_BACKEND") is not None
        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        state = load_state(app, self.registry, cache or self.cache, explicit_cache)
        state.db = db or self.db
        self._states[app] = state
        app.extensions["imagekit"] = self
        app.extensions[_STATE_KEY] = state
        if state.serve_media:
            _add_media_route(app, state)
        init_templating(app)
        app.cli.add_command(imagekit_cli)
        _connect_source_signals()

    def state(self, app: Flask) -> AppState:
        """The resolved settings of ``app``."""
        try:
            return self._states[app]
        except KeyError:
            msg = f"ImageKit was not initialised on {app!r}; call imagekit.init_app(app)."
            raise ImproperlyConfigured(msg) from None


def _add_media_route(app: Flask, state: AppState) -> None:
    url = state.media_url
    if "://" in url or url.startswith("//"):
        return  # Files are served elsewhere (a CDN, a web server).
    cache_prefix = state.cachefile_dir + "/"
    root = state.media_root

    def imagekit_media(filename: str) -> Response:
        try:
            name = clean_name(filename)
        except SuspiciousName:
            raise NotFound() from None
        max_age = CACHEFILE_MAX_AGE if name.startswith(cache_prefix) else None
        return send_from_directory(root, name, max_age=max_age)

    app.add_url_rule(f"{url.rstrip('/')}/<path:filename>", "imagekit_media", imagekit_media)


# Source signals -> strategies ------------------------------------------------------

_SOURCE_CALLBACKS = {
    "created": ("on_source_created", "on_source_saved"),
    "changed": ("on_source_changed", "on_source_saved"),
    "deleted": ("on_source_deleted",),
}


def dispatch_source_event(state: AppState, sender: t.Any, source: t.Any, event: str) -> None:
    """Tell the strategy of every spec ``sender`` feeds that ``source`` was ``event``."""
    registry = state.registry
    for generator_id in registry.generator_ids_for_source_group(sender):
        try:
            generator = registry.get_generator(generator_id, source=source)
            file = ImageCacheFile(generator, generator_id=generator_id)
            for callback in _SOURCE_CALLBACKS[event]:
                call_strategy(file.cachefile_strategy, callback, file)
            if event == "deleted" and state.delete_orphaned_cachefiles:
                file.storage.delete(file.name)
                file.cachefile_backend.forget(file)
        except Exception:
            logger.exception(
                "flask_imagekit: handling source %s of %r for %r failed",
                event,
                source,
                generator_id,
            )


def _receiver(event: str) -> t.Callable[..., None]:
    def receive(sender: t.Any, source: t.Any = None, **extra: t.Any) -> None:
        state = current_state_or_none()
        if state is not None and source is not None:
            dispatch_source_event(state, sender, source, event)

    receive.__name__ = f"on_source_{event}"
    return receive


_RECEIVERS = {event: _receiver(event) for event in _SOURCE_CALLBACKS}


def _connect_source_signals() -> None:
    for signal, event in (
        (source_created, "created"),
        (source_changed, "changed"),
        (source_deleted, "deleted"),
    ):
        signal.connect(_RECEIVERS[event], weak=False)
