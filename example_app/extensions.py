"""The extensions of the example app, created once and set up by ``create_app()``.

They hold no app: ``create_app()`` calls ``init_app`` on each, so several apps
(tests, the demo) can live in one process.
"""

from __future__ import annotations

from flask_caching import Cache
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase

from flask_imagekit import ImageKit

__all__ = ["Base", "cache", "csrf", "db", "imagekit"]


class Base(DeclarativeBase):
    """Declarative base of the example app's models."""


#: Flask-SQLAlchemy: the ``Photo`` and ``Author`` tables.
db = SQLAlchemy(model_class=Base)
#: Flask-Caching (SimpleCache by default); flask_imagekit keeps cache file states in it.
cache = Cache()
#: CSRF protection for the upload form.
csrf = CSRFProtect()
#: flask_imagekit; the app's specs are registered on it in :mod:`example_app.specs`.
imagekit = ImageKit()
