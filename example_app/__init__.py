"""The flask_imagekit example app: a photo gallery.

``create_app()`` is an app factory; ``flask --app example_app seed`` draws sample
photos, ``flask --app example_app imagekit generate`` makes their cache files
(all of them: none has to be made ahead, but it may be),
``python -m example_app.demo`` (``make demo``) sets it up and serves the app.

What it shows (see each module):

* :mod:`~example_app.models`: ``ImageSpecField`` (inline specs and registered
  ones, ``spec_id=``; the OnRequest and Optimistic strategies) and
  ``ProcessedImageField``;
* :mod:`~example_app.specs`: specs registered on the extension, one of them
  dynamic (``get_field_info``), one with responsive candidates (AVIF and WebP
  at several widths);
* :mod:`~example_app.sourcegroups`: a custom source group for
  ``flask imagekit generate``;
* :mod:`~example_app.forms`: the WTForms ``ProcessedImageField``;
* :mod:`~example_app.views`: uploads; an author belongs to the browser session
  that created it, and refused uploads are explained in plain words (the
  detail goes to the log);
* the templates: the ``picture`` (the gallery's cards, with a blurred preview),
  ``thumbnail`` and ``generateimage`` Jinja globals.
"""

from __future__ import annotations

import os
import secrets
import typing as t

from flask import Flask

__all__ = ["INSTANCE_PATH_ENV", "create_app", "database_uri"]

#: Environment variable choosing the instance folder (database, media files).
INSTANCE_PATH_ENV = "EXAMPLE_APP_INSTANCE_PATH"

DEFAULTS: dict[str, t.Any] = {
    # Refuse request bodies over 8 MiB (an error on the upload form).
    "MAX_CONTENT_LENGTH": 8 * 1024 * 1024,
    # flask_imagekit refuses sources of more pixels (a validation error).
    "IMAGEKIT_MAX_SOURCE_PIXELS": 30_000_000,
    "CACHE_TYPE": "SimpleCache",
    "CACHE_DEFAULT_TIMEOUT": 300,
    "PHOTOS_PER_PAGE": 24,
}


def database_uri(instance_path: str, environ: t.Mapping[str, str] = os.environ) -> str:
    """``DATABASE_URL`` (for PostgreSQL, through psycopg 3) or SQLite in the instance folder."""
    url = environ.get("DATABASE_URL")
    if not url:
        return f"sqlite:///{os.path.join(instance_path, 'example.sqlite3')}"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def create_app(config: t.Mapping[str, t.Any] | None = None) -> Flask:
    """Create the example app.

    Settings, later ones winning: :data:`DEFAULTS`; ``config.py`` in the instance
    folder; ``FLASK_*`` environment variables (``FLASK_SECRET_KEY``,
    ``FLASK_IMAGEKIT_MEDIA_ROOT``, …); then ``config``. The instance folder is
    ``$EXAMPLE_APP_INSTANCE_PATH`` or Flask's default; the database is
    ``$DATABASE_URL`` or SQLite in the instance folder; media files go to
    ``<instance>/media`` (flask_imagekit's default).
    """
    app = Flask(
        __name__,
        instance_path=os.environ.get(INSTANCE_PATH_ENV) or None,
        instance_relative_config=True,
    )
    app.config.update(DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env()
    if config:
        app.config.update(config)
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        app.config["SQLALCHEMY_DATABASE_URI"] = database_uri(app.instance_path)
    if not app.config.get("SECRET_KEY"):
        # Fine for a demo (sessions last as long as the process); set FLASK_SECRET_KEY.
        app.config["SECRET_KEY"] = secrets.token_urlsafe(32)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith(f"sqlite:///{app.instance_path}"):
        os.makedirs(app.instance_path, exist_ok=True)

    from . import models, specs  # noqa: F401 - define the tables, register the specs
    from .cli import init_db_command, seed_command
    from .extensions import cache, csrf, db, imagekit
    from .views import bp

    db.init_app(app)
    cache.init_app(app)
    csrf.init_app(app)
    imagekit.init_app(app, db=db, cache=cache)
    app.register_blueprint(bp)
    app.cli.add_command(init_db_command)
    app.cli.add_command(seed_command)
    return app
