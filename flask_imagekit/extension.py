"""The Flask extension: per-app settings, the registry, the media route.

``ImageKit(app)`` or ``imagekit.init_app(app, db=db, cache=cache)``. The
extension never stores an app; each app's resolved settings live in an
:class:`~flask_imagekit.config.AppState` reached through ``current_app``.
"""

from __future__ import annotations

import logging
import typing as t
import weakref

from flask import Flask

from .cachefiles.onrequest import check_app
from .cachefiles.strategies import OnRequest
from .cli import imagekit_cli
from .config import DEFAULTS, load_settings
from .events import connect_source_signals
from .exceptions import ImproperlyConfigured
from .globals import STATE_KEY, current_state, current_state_or_none
from .models import listen as listen_to_db
from .registry import Register, Registry, Unregister, default_registry
from .serving import add_media_route
from .state import AppState
from .templating import init_templating

if t.TYPE_CHECKING:
    from flask_caching import Cache
    from flask_sqlalchemy import SQLAlchemy

__all__ = ["ImageKit", "current_state", "current_state_or_none"]

logger = logging.getLogger(__name__)


class ImageKit:
    """The flask_imagekit extension.

    :param app: an app to initialise right away (or call :meth:`init_app` later).
    :param db: the Flask-SQLAlchemy extension, for model integration: source
        signals are sent for the rows of its ``db.session``. When not given, the
        one already initialised on the app is used.
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
        settings = load_settings(app, cache or self.cache, explicit_cache)
        # Without db=, a Flask-SQLAlchemy already set up on the app is the one.
        db = db or self.db or app.extensions.get("sqlalchemy")
        state = AppState.build(settings, self.registry, db)
        if isinstance(state.cachefile_strategy, OnRequest):
            check_app(app, state)  # a secret to sign with, a route to generate in
        self._states[app] = state
        app.extensions["imagekit"] = self
        app.extensions[STATE_KEY] = state
        if state.serve_media:
            add_media_route(app, state)
        init_templating(app)
        app.cli.add_command(imagekit_cli)
        connect_source_signals()
        if db is not None:
            listen_to_db(db)

    def state(self, app: Flask) -> AppState:
        """The resolved settings of ``app``."""
        try:
            return self._states[app]
        except KeyError:
            msg = f"ImageKit was not initialised on {app!r}; call imagekit.init_app(app)."
            raise ImproperlyConfigured(msg) from None
