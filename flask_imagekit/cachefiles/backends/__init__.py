"""Cache file backends: *how* cache files are generated, and what is known of them.

:class:`Simple` generates inline; :class:`Celery` and :class:`RQ` send signed jobs
to workers. Each keeps file states in the app's state cache (see
:mod:`flask_imagekit.cachefiles.backends.base` for the state machine).
"""

from __future__ import annotations

from .base import (
    CachedFileBackend,
    CacheFileState,
    Lookup,
    Simple,
    rendering,
    resolve_backend,
)
from .queues import RQ, AsyncBackend, Celery

__all__ = [
    "RQ",
    "AsyncBackend",
    "CacheFileState",
    "CachedFileBackend",
    "Celery",
    "Lookup",
    "Simple",
    "rendering",
    "resolve_backend",
]
