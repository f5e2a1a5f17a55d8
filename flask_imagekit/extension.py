"""The Flask extension: per-app settings, the registry, the media route.

``ImageKit(app)`` or ``imagekit.init_app(app, db=db, cache=cache)``. The
extension never stores an app; each app's resolved settings live in an
:class:`~flask_imagekit.config.AppState` reached through ``current_app``.
"""

from __future__ import annotations

import logging
import os
import posixpath
import typing as t
import weakref
from urllib.parse import unquote, urlsplit

from flask import Flask, Response, request, send_file
from werkzeug.exceptions import NotFound

from .cli import imagekit_cli
from .config import DEFAULTS, load_settings
from .events import connect_source_signals
from .exceptions import ImproperlyConfigured, SuspiciousName
from .globals import STATE_KEY, current_state, current_state_or_none
from .models import listen as listen_to_db
from .registry import Register, Registry, Unregister, default_registry
from .state import AppState
from .storage import FileSystemStorage, clean_name, is_temporary_name
from .templating import init_templating

if t.TYPE_CHECKING:
    from flask_caching import Cache
    from flask_sqlalchemy import SQLAlchemy

__all__ = ["ImageKit", "current_state", "current_state_or_none"]

logger = logging.getLogger(__name__)

#: Browsers may keep cache files this long (their names change with the spec).
CACHEFILE_MAX_AGE = 365 * 24 * 3600

#: The only files the media route shows inline, by extension; anything else is a download.
MEDIA_INLINE_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".jpe": "image/jpeg",
    ".jfif": "image/jpeg",
    ".png": "image/png",
    ".apng": "image/apng",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".avifs": "image/avif",
}

#: Sent with every response of the media route: an uploaded SVG or HTML file must
#: never run as a page of the app's origin.
MEDIA_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


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
        self._states[app] = state
        app.extensions["imagekit"] = self
        app.extensions[STATE_KEY] = state
        if state.serve_media:
            _add_media_route(app, state)
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


def _add_media_route(app: Flask, state: AppState) -> None:
    """Serve the files under the media root at the path of ``IMAGEKIT_MEDIA_URL``.

    Only regular files that lie inside the root once symlinks are resolved, and are
    not the temporary file of a save; images inline, anything else as a download.
    """
    # Only the URL's path matters: an absolute URL names a CDN that pulls from the app.
    base = unquote(urlsplit(state.media_url).path).strip("/")
    base = f"/{base}" if base else ""
    cache_prefix = state.cachefile_dir + "/"
    storage = FileSystemStorage(state.media_root, state.media_url)

    def imagekit_media(filename: str) -> Response:
        try:
            name = clean_name(filename)
            path = os.path.realpath(storage.path(name))
        except SuspiciousName:
            raise NotFound() from None
        # storage.path() checked the name; this checks the very path that is opened,
        # in case a symlink changed in between.
        root = os.path.normcase(os.path.realpath(storage.location)).rstrip(os.sep)
        inside = os.path.normcase(path).startswith(root + os.sep)
        if not inside or is_temporary_name(name) or is_temporary_name(os.path.basename(path)):
            raise NotFound()
        if not os.path.isfile(path):
            raise NotFound()
        mimetype = MEDIA_INLINE_TYPES.get(posixpath.splitext(name)[1].lower())
        max_age = CACHEFILE_MAX_AGE if name.startswith(cache_prefix) else None
        try:
            return send_file(
                path,
                mimetype=mimetype or "application/octet-stream",
                as_attachment=mimetype is None,
                download_name=posixpath.basename(name),
                conditional=True,
                etag=True,
                max_age=max_age,
            )
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound() from None  # Deleted since the check above.

    def add_media_headers(response: Response) -> Response:
        rule = request.url_rule
        if rule is not None:
            ours = rule.endpoint == "imagekit_media"
        else:  # Not routed (404, 405, redirect): judge by the path.
            ours = bool(base) and (request.path == base or request.path.startswith(f"{base}/"))
        if ours:
            response.headers.update(MEDIA_HEADERS)
        return response

    app.add_url_rule(f"{base}/<path:filename>", "imagekit_media", imagekit_media)
    app.after_request(add_media_headers)
