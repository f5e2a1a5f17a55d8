"""ImageKit for Flask: image specs, processors and cache files.

Declare image specs (processors + format + options); flask_imagekit generates the
derived images from source images, stores them as cache files and gives their
URLs from Python, SQLAlchemy models and Jinja templates.
"""

from __future__ import annotations

from .exceptions import ImageKitError
from .extension import ImageKit
from .registry import register, unregister
from .specs import ImageSpec

__all__ = ["ImageKit", "ImageKitError", "ImageSpec", "register", "unregister"]
