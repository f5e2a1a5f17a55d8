"""Cache files: the generated images, with their names, URLs and sizes.

An :class:`ImageCacheFile` pairs a generator (usually a spec bound to a source)
with a name in a storage. Its strategy decides *when* it is generated (on access
with JustInTime, on source save with Optimistic); its backend decides *how* and
remembers whether it exists, so URLs of existing files cost no storage call.

A per-image problem (no source, a missing or corrupt source, a failed
generation, a file still pending) never breaks a page in production: with
``IMAGEKIT_RAISE_ERRORS`` false the file renders a placeholder, its ``url`` is
the placeholder's and ``bool()`` is false, with one warning per file and failure
window. Programming errors (``NotRegistered``, ``ImproperlyConfigured``) raise
in every mode.
"""

from __future__ import annotations

from .file import ImageCacheFile
from .html import PER_IMAGE_ERRORS
from .lazy import LazyGeneratedImageFile, LazyImageCacheFile

__all__ = ["PER_IMAGE_ERRORS", "ImageCacheFile", "LazyGeneratedImageFile", "LazyImageCacheFile"]
