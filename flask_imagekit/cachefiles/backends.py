"""Cache file backends: *how* cache files are generated, and what is known of them.

A backend keeps each file's state in the app's state cache (a Flask-Caching /
cachelib cache), so the existence of a file is known without asking the storage:

* ``EXISTS`` (kept for ``IMAGEKIT_CACHE_TIMEOUT``, forever by default), with the
  image's width and height when known;
* ``DOES_NOT_EXIST``, kept only briefly (``missing_timeout``);
* ``GENERATING``, a lock taken atomically with ``cache.add`` and an expiry, so
  that one process at a time generates a file; a process that dies leaves a
  lock that expires after ``lock_timeout``.

A failed generation never leaves ``GENERATING`` or ``EXISTS`` behind. If the
state cache is unreachable, generation goes on inline with a logged warning.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import hashlib
import logging
import math
import threading
import time
import typing as t
import uuid

from ..exceptions import ImproperlyConfigured
from ..statecache import StateCache

if t.TYPE_CHECKING:
    from cachelib import BaseCache

    from . import ImageCacheFile

__all__ = ["RQ", "CacheFileState", "CachedFileBackend", "Celery", "Simple"]

logger = logging.getLogger(__name__)

_MAX_KEY_LENGTH = 200
# State values: "E[:WxH]" exists, "D" does not exist, "M" its source is missing.
_SOURCE_MISSING = "M"
_MISSING = ("D", _SOURCE_MISSING)
# Seconds a state cache that failed is left alone before it is tried again.
_RETRY_UNREACHABLE_AFTER = 5


class CacheFileState(str, enum.Enum):
    """What a backend knows of a cache file."""

    EXISTS = "exists"
    GENERATING = "generating"
    DOES_NOT_EXIST = "does_not_exist"


class _KeyedLocks:
    """In-process locks by key, dropped when nobody holds or waits for them."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, list[t.Any]] = {}

    @contextlib.contextmanager
    def hold(self, key: str) -> t.Iterator[None]:
        with self._guard:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[key]


_local_locks = _KeyedLocks()


class CachedFileBackend:
    """Base class of backends that keep file states in the app's state cache.

    :param cache: a cachelib cache to use instead of the app's state cache.
    :param missing_timeout: seconds a DOES_NOT_EXIST state is trusted.
    :param lock_timeout: seconds after which an abandoned GENERATING lock expires.
    """

    def __init__(
        self,
        cache: BaseCache | None = None,
        *,
        missing_timeout: int = 5,
        lock_timeout: int = 60,
    ) -> None:
        self.cache = cache
        # cachelib counts timeouts in whole seconds.
        self.missing_timeout = max(1, math.ceil(missing_timeout))
        self.lock_timeout = max(1, math.ceil(lock_timeout))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # Keys and cache access ------------------------------------------------------

    def _state_cache(self, file: ImageCacheFile) -> StateCache:
        if self.cache is None:
            return file.app_state.states
        states = self.__dict__.get("_states")
        if states is None:
            states = self.__dict__["_states"] = StateCache(self.cache)
        return t.cast(StateCache, states)

    def __getstate__(self) -> dict[str, t.Any]:
        state = dict(self.__dict__)
        state.pop("_states", None)
        return state

    def get_key(self, file: ImageCacheFile) -> str:
        """The state cache key of ``file``."""
        return self._key(file, "state:")

    def get_lock_key(self, file: ImageCacheFile) -> str:
        """The state cache key of the GENERATING lock of ``file``."""
        return self._key(file, "lock:")

    def _key(self, file: ImageCacheFile, kind: str) -> str:
        keys: dict[str, str] = file.__dict__.setdefault("_state_keys", {})
        key = keys.get(kind)
        if key is None:
            key = f"{file.app_state.cache_prefix}{kind}{file.name}"
            if len(key) > _MAX_KEY_LENGTH:
                digest = hashlib.sha256(file.name.encode("utf-8")).hexdigest()
                key = f"{file.app_state.cache_prefix}{kind}#{digest}"
            keys[kind] = key
        return key

    def _call(self, file: ImageCacheFile, op: str, *args: t.Any, **kwargs: t.Any) -> t.Any:
        """Run a cache operation; an unreachable cache counts as a miss, with a warning."""
        cache = self._state_cache(file)
        if cache.unreachable_until > time.monotonic():
            return _CACHE_FAILED  # known to be down: do not wait on it for every image
        try:
            return getattr(cache, op)(*args, **kwargs)
        except _unreachable_errors() as exc:
            cache.unreachable_until = time.monotonic() + _RETRY_UNREACHABLE_AFTER
            logger.warning(
                "flask_imagekit: the state cache %r failed on %s (%s); going on without it "
                "for %d seconds (files are generated inline, existence asked of the storage).",
                cache,
                op,
                exc,
                _RETRY_UNREACHABLE_AFTER,
            )
            return _CACHE_FAILED

    # States -----------------------------------------------------------------

    def get_state(self, file: ImageCacheFile, check_if_unknown: bool = True) -> CacheFileState:
        """Return the state of ``file``; if unknown, ask the storage (and remember)."""
        raw = self._call(file, "get", self.get_key(file))
        if isinstance(raw, str) and raw.startswith("E"):
            if raw != file.__dict__.get("_state_raw"):
                # The same lookup tells the size: pages need no second one.
                file.__dict__["_state_raw"] = raw
                size = _parse_size(raw)
                if size is not None:
                    if file._size is not None and size != file._size:
                        file.__dict__.pop("_markup", None)  # regenerated elsewhere
                    file._size = size
            return CacheFileState.EXISTS
        if raw is None or raw in _MISSING or raw is _CACHE_FAILED:
            holder = self._call(file, "lock_holder", self.get_lock_key(file))
            if holder not in (None, _CACHE_FAILED):
                return CacheFileState.GENERATING
            if raw in _MISSING or not check_if_unknown:
                return CacheFileState.DOES_NOT_EXIST
        exists = file.storage.exists(file.name)
        self.set_state(file, CacheFileState.EXISTS if exists else CacheFileState.DOES_NOT_EXIST)
        return CacheFileState.EXISTS if exists else CacheFileState.DOES_NOT_EXIST

    def set_state(
        self,
        file: ImageCacheFile,
        state: CacheFileState,
        size: tuple[int, int] | None = None,
    ) -> None:
        """Record ``state`` for ``file`` (with its pixel size when it exists)."""
        key = self.get_key(file)
        if state is CacheFileState.EXISTS:
            value = f"E:{size[0]}x{size[1]}" if size else "E"
            timeout = math.ceil(file.app_state.cache_timeout or 0)
            self._call(file, "set", key, value, timeout=timeout)
        elif state is CacheFileState.DOES_NOT_EXIST:
            self._call(file, "set", key, "D", timeout=self.missing_timeout)
        else:
            msg = "GENERATING is set by taking the lock, not with set_state()."
            raise ValueError(msg)

    def remember_missing_source(self, file: ImageCacheFile) -> None:
        """Record that ``file``'s source is gone, so it is not scheduled again at once."""
        timeout = max(self.missing_timeout, self.lock_timeout)
        self._call(file, "set", self.get_key(file), _SOURCE_MISSING, timeout=timeout)

    def source_missing(self, file: ImageCacheFile) -> bool:
        """Whether a worker found ``file``'s source gone a short while ago."""
        return bool(self._call(file, "get", self.get_key(file)) == _SOURCE_MISSING)

    def forget(self, file: ImageCacheFile) -> None:
        """Drop what is known of ``file`` (after deleting it, for instance)."""
        self._call(file, "delete", self.get_key(file))
        file.app_state.file_memo.clear()

    def exists(self, file: ImageCacheFile) -> bool:
        """Tell whether ``file`` exists, asking the storage only if the state is unknown."""
        return self.get_state(file) is CacheFileState.EXISTS

    def dimensions(self, file: ImageCacheFile) -> tuple[int, int] | None:
        """Width and height of ``file`` if its state knows them."""
        raw = self._call(file, "get", self.get_key(file))
        return _parse_size(raw) if isinstance(raw, str) else None

    def remember_dimensions(self, file: ImageCacheFile, size: tuple[int, int]) -> None:
        """Store the pixel size of an existing ``file`` in its state."""
        self.set_state(file, CacheFileState.EXISTS, size)

    # Generation -----------------------------------------------------------------

    def generate(self, file: ImageCacheFile, force: bool = False) -> None:
        """Make sure ``file`` exists (regenerate it if ``force``)."""
        raise NotImplementedError

    def generate_now(
        self, file: ImageCacheFile, force: bool = False, token: str | None = None
    ) -> bool:
        """Generate ``file`` in this process, one generation at a time per file.

        Returns True if this call generated the file, False if it already existed
        or another process generated it meanwhile. Exceptions propagate after the
        state is cleaned up. ``token`` is the lock a scheduler took for this job
        (async backends): a worker holding it goes on under that lock.
        """
        with _local_locks.hold(f"{id(file.storage)}:{file.name}"):
            if token is None:
                token = uuid.uuid4().hex
            elif self._call(file, "lock_holder", self.get_lock_key(file)) != token:
                token = uuid.uuid4().hex  # the scheduler's lock expired or was replaced
            else:
                return self._generate_locked(file, force, token)
            if not force and self.get_state(file) is CacheFileState.EXISTS:
                return False
            while not self._acquire(file, token):
                self._wait_for_release(file)
                if self.get_state(file, check_if_unknown=False) is CacheFileState.EXISTS:
                    return False
            return self._generate_locked(file, force, token)

    def _generate_locked(self, file: ImageCacheFile, force: bool, token: str) -> bool:
        try:
            if not force and file.storage.exists(file.name):
                self.set_state(file, CacheFileState.EXISTS)
                return False
            size = file._write()
        except BaseException:
            self.forget(file)
            raise
        else:
            self.set_state(file, CacheFileState.EXISTS, size)
            file.app_state.file_memo.clear()
            return True
        finally:
            self._release(file, token)

    def _acquire(self, file: ImageCacheFile, token: str) -> bool:
        key = self.get_lock_key(file)
        added = self._call(file, "acquire", key, token, self.lock_timeout)
        # Without a working state cache the in-process lock and atomic saves still hold.
        return added is _CACHE_FAILED or bool(added)

    def _release(self, file: ImageCacheFile, token: str) -> None:
        self._call(file, "release", self.get_lock_key(file), token)

    def _wait_for_release(self, file: ImageCacheFile) -> None:
        key = self.get_lock_key(file)
        deadline = time.monotonic() + self.lock_timeout + 1
        delay = 0.005
        while time.monotonic() < deadline:
            if self._call(file, "lock_holder", key) in (None, _CACHE_FAILED):
                return
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


@functools.cache
def _unreachable_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean the state cache cannot be reached (not a bug in a call)."""
    errors: list[type[BaseException]] = [OSError, ConnectionError, TimeoutError, EOFError]
    try:
        from redis.exceptions import RedisError
    except ImportError:
        pass
    else:
        errors.append(RedisError)
    return tuple(errors)


@functools.lru_cache(maxsize=4096)
def _parse_size(raw: str) -> tuple[int, int] | None:
    if raw.startswith("E:"):
        width, _, height = raw[2:].partition("x")
        with contextlib.suppress(ValueError):
            return int(width), int(height)
    return None


class _CacheFailed:
    def __repr__(self) -> str:
        return "<cache failed>"


_CACHE_FAILED: t.Any = _CacheFailed()


class Simple(CachedFileBackend):
    """Generate files inline, in the process that needs them."""

    def generate(self, file: ImageCacheFile, force: bool = False) -> None:
        """Generate ``file`` now unless its state says it exists."""
        if force or self.get_state(file) is not CacheFileState.EXISTS:
            self.generate_now(file, force=force)


class AsyncBackend(CachedFileBackend):
    """Base class of backends that generate files on workers.

    ``generate`` marks the file GENERATING (the lock, so other page views do not
    enqueue it again) and sends a JSON-safe job: generator id, source reference,
    generator kwargs and the lock's token. A worker rebuilds the spec from its
    own app's registry (:func:`flask_imagekit.jobs.run_job`). Until the file
    exists, ``bool(file)`` is False.
    """

    def generate(self, file: ImageCacheFile, force: bool = False) -> None:
        """Schedule the generation of ``file`` unless it exists or is under way."""
        if not force:
            if self.get_state(file) is not CacheFileState.DOES_NOT_EXIST:
                return
            if self.source_missing(file):
                return  # a worker just found the source gone: no new job per page view
        self.enqueue(file, force=force)

    def enqueue(self, file: ImageCacheFile, force: bool = False) -> bool:
        """Take the GENERATING lock and send the job; False if it is already taken."""
        from ..jobs import job_payload

        payload = job_payload(file, force=force)
        token = t.cast(str, payload["token"])
        if not self._acquire(file, token):
            return False
        try:
            self.schedule(payload)
        except BaseException:
            self._release(file, token)
            raise
        return True

    def schedule(self, payload: dict[str, t.Any]) -> None:
        """Send ``payload`` to a worker."""
        raise NotImplementedError


class Celery(AsyncBackend):
    """Generate files on Celery workers (``pip install imagekit-flask[celery]``).

    :param celery_app: the Celery app; by default ``current_app.extensions["celery"]``
        (where Flask's Celery pattern keeps it).
    :param queue: the queue to send jobs to (Celery's default when None).

    Workers need the task: call :func:`flask_imagekit.jobs.init_celery` on the
    Celery app in the app factory.
    """

    def __init__(
        self, celery_app: t.Any = None, *, queue: str | None = None, **kwargs: t.Any
    ) -> None:
        super().__init__(**kwargs)
        self.celery_app = celery_app
        self.queue = queue

    def schedule(self, payload: dict[str, t.Any]) -> None:
        """Send the job as the ``flask_imagekit.generate`` task."""
        from ..jobs import CELERY_TASK_NAME

        celery_app = self.celery_app
        if celery_app is None:
            from flask import current_app

            celery_app = current_app.extensions.get("celery")
        if celery_app is None:
            msg = (
                "The Celery backend has no Celery app: pass Celery(celery_app) or keep it "
                'in app.extensions["celery"] as in Flask\'s Celery guide.'
            )
            raise ImproperlyConfigured(msg)
        options = {"queue": self.queue} if self.queue else {}
        celery_app.send_task(CELERY_TASK_NAME, args=[payload], **options)


class RQ(AsyncBackend):
    """Generate files on RQ workers (``pip install imagekit-flask[rq]``).

    :param queue: an ``rq.Queue``; or give ``redis_url`` and ``queue_name``.
    :param job_timeout: seconds a job may run before RQ kills it.

    Jobs are serialised as JSON, so run workers with
    ``FLASK_APP=yourapp rq worker --serializer rq.serializers.JSONSerializer``.
    """

    def __init__(
        self,
        queue: t.Any = None,
        *,
        redis_url: str = "redis://127.0.0.1:6379/0",
        queue_name: str = "default",
        job_timeout: int = 300,
        **kwargs: t.Any,
    ) -> None:
        super().__init__(**kwargs)
        self._queue = queue
        self.redis_url = redis_url
        self.queue_name = queue_name
        self.job_timeout = job_timeout

    @property
    def queue(self) -> t.Any:
        """The RQ queue jobs go to."""
        if self._queue is None:
            from redis import Redis
            from rq import Queue
            from rq.serializers import JSONSerializer

            self._queue = Queue(
                self.queue_name,
                connection=Redis.from_url(self.redis_url),
                serializer=JSONSerializer,
            )
        return self._queue

    def schedule(self, payload: dict[str, t.Any]) -> None:
        """Enqueue :func:`flask_imagekit.jobs.rq_generate` with the payload."""
        self.queue.enqueue(
            "flask_imagekit.jobs.rq_generate",
            payload,
            job_timeout=self.job_timeout,
            result_ttl=0,
        )

    def __getstate__(self) -> dict[str, t.Any]:
        state = super().__getstate__()
        state["_queue"] = None
        return state
