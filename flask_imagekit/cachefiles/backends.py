"""Cache file backends: *how* cache files are generated, and what is known of them.

A backend keeps each file's state in the app's state cache (a Flask-Caching /
cachelib cache), so the existence of a file is known without asking the storage:

* ``EXISTS`` (kept for ``IMAGEKIT_CACHE_TIMEOUT``, forever by default), with the
  image's width and height when known;
* ``DOES_NOT_EXIST``, kept only briefly (``missing_timeout``);
* ``GENERATING``, a lock taken atomically with ``cache.add`` and an expiry, so
  that one process at a time generates a file; a generation keeps its lock
  alive, and a process that dies leaves a lock that expires after
  ``lock_timeout``;
* ``FAILED``, kept for ``IMAGEKIT_FAILURE_TIMEOUT`` seconds after a generation
  failed on its source or its processors, so pages do not decode a broken
  source on every view (an explicit ``generate()`` still tries).

A failed generation never leaves ``GENERATING`` or ``EXISTS`` behind. If the
state cache is unreachable, or refuses writes, generation goes on inline with a
logged warning. A page that finds the lock held waits ``lock_wait`` seconds at
most, then renders the file as pending.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import functools
import hashlib
import logging
import math
import os
import re
import threading
import time
import typing as t
import uuid

from ..exceptions import (
    GenerationError,
    ImageKitError,
    ImproperlyConfigured,
    MissingCacheFile,
    MissingSource,
    SourceError,
    StorageError,
)
from ..statecache import Outage, StateCache

if t.TYPE_CHECKING:
    from cachelib import BaseCache

    from . import ImageCacheFile

__all__ = ["RQ", "CacheFileState", "CachedFileBackend", "Celery", "Simple", "rendering"]

logger = logging.getLogger(__name__)

_MAX_KEY_LENGTH = 200
# Keys every cachelib backend takes (Memcached: no spaces or control characters).
_UNSAFE_KEY = re.compile(r"[^!-~]")
# State values: "E[:WxH]" exists, "D" does not exist, "M" its source is missing,
# "F:<error class>:<message>" its last generation failed.
_SOURCE_MISSING = "M"
_FAILED = "F"
_MAX_FAILURE_MESSAGE = 500
_MISSING = ("D", _SOURCE_MISSING)


class CacheFileState(str, enum.Enum):
    """What a backend knows of a cache file."""

    EXISTS = "exists"
    GENERATING = "generating"
    DOES_NOT_EXIST = "does_not_exist"
    FAILED = "failed"


#: True while a cache file is generated because a page needs it (``url``,
#: ``bool()``, rendering), as opposed to an explicit ``generate()``: such a
#: generation honours the FAILED state and waits at most ``lock_wait`` seconds.
rendering: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "flask_imagekit_rendering", default=False
)

_FAILURE_CLASSES: dict[str, type[ImageKitError]] = {
    cls.__name__: cls for cls in (SourceError, MissingSource, GenerationError, StorageError)
}


class _KeyedLocks:
    """In-process locks by key, dropped when nobody holds or waits for them."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, list[t.Any]] = {}

    @contextlib.contextmanager
    def hold(self, key: str, timeout: float | None = None) -> t.Iterator[bool]:
        """Hold the lock of ``key``; yields False if ``timeout`` ran out first."""
        with self._guard:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        lock: threading.Lock = entry[0]
        acquired = lock.acquire(timeout=-1 if timeout is None else timeout)
        try:
            yield acquired
        finally:
            if acquired:
                lock.release()
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[key]

    def reset(self) -> None:
        """Forget every lock (in a forked child, where no thread holds them)."""
        self._guard = threading.Lock()
        self._locks = {}


_local_locks = _KeyedLocks()


class CachedFileBackend:
    """Base class of backends that keep file states in the app's state cache.

    :param cache: a cachelib cache to use instead of the app's state cache.
    :param missing_timeout: seconds a DOES_NOT_EXIST state is trusted.
    :param lock_timeout: seconds after which an abandoned GENERATING lock expires;
        a live generation renews its lock, so this can stay short.
    :param lock_wait: seconds a page waits for a lock held by another process
        before rendering the file as pending (an explicit ``generate()`` waits
        until the lock is released or expires).
    """

    def __init__(
        self,
        cache: BaseCache | None = None,
        *,
        missing_timeout: int = 5,
        lock_timeout: int = 10,
        lock_wait: float = 2,
    ) -> None:
        self.cache = cache
        # cachelib counts timeouts in whole seconds.
        self.missing_timeout = max(1, math.ceil(missing_timeout))
        self.lock_timeout = max(1, math.ceil(lock_timeout))
        if isinstance(lock_wait, bool) or not isinstance(lock_wait, int | float) or lock_wait < 0:
            msg = f"lock_wait = {lock_wait!r} is invalid: give a number of seconds (0 or more)."
            raise ImproperlyConfigured(msg)
        self.lock_wait = float(lock_wait)

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

    def get_queued_key(self, file: ImageCacheFile) -> str:
        """The state cache key that marks a job for ``file`` as waiting in a queue."""
        return self._key(file, "queued:")

    def _key(self, file: ImageCacheFile, kind: str) -> str:
        keys: dict[str, str] = file.__dict__.setdefault("_state_keys", {})
        key = keys.get(kind)
        if key is None:
            key = f"{file.app_state.cache_prefix}{kind}{file.name}"
            if len(key) > _MAX_KEY_LENGTH or _UNSAFE_KEY.search(key):
                digest = hashlib.sha256(file.name.encode("utf-8")).hexdigest()
                key = f"{file.app_state.cache_prefix}{kind}#{digest}"
            keys[kind] = key
        return key

    def _call(self, file: ImageCacheFile, op: str, *args: t.Any, **kwargs: t.Any) -> t.Any:
        """Run a cache operation; an unreachable cache counts as a miss, with a warning."""
        cache = self._state_cache(file)
        if cache.unreachable.active:
            return _CACHE_FAILED  # known to be down: do not wait on it for every image
        try:
            return getattr(cache, op)(*args, **kwargs)
        except _unreachable_errors() as exc:
            cache.unreachable.begin()
            logger.warning(
                "flask_imagekit: the state cache %r failed on %s (%s); going on without it "
                "for %d seconds (files are generated inline, existence asked of the storage).",
                cache,
                op,
                exc,
                Outage.SECONDS,
            )
            return _CACHE_FAILED

    # States -----------------------------------------------------------------

    def get_state(self, file: ImageCacheFile, check_if_unknown: bool = True) -> CacheFileState:
        """Return the state of ``file``; if unknown, ask the storage (and remember)."""
        raw = self._call(file, "get", self.get_key(file))
        if isinstance(raw, str) and raw.startswith(_FAILED):
            return CacheFileState.FAILED
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

    def remember_failure(self, file: ImageCacheFile, error: BaseException) -> None:
        """Record that generating ``file`` failed, for ``IMAGEKIT_FAILURE_TIMEOUT`` seconds."""
        kind = type(error).__name__ if type(error).__name__ in _FAILURE_CLASSES else "SourceError"
        message = str(error)[:_MAX_FAILURE_MESSAGE]
        timeout = file.app_state.failure_timeout
        self._call(file, "set", self.get_key(file), f"{_FAILED}:{kind}:{message}", timeout=timeout)
        file.app_state.file_memo.clear()

    def failure(self, file: ImageCacheFile) -> ImageKitError | None:
        """The error of the last failed generation of ``file``, while it is remembered."""
        raw = self._call(file, "get", self.get_key(file))
        if not (isinstance(raw, str) and raw.startswith(_FAILED)):
            return None
        _, kind, message = (raw.split(":", 2) + ["", ""])[:3]
        cls = _FAILURE_CLASSES.get(kind, SourceError)
        return cls(f"{message} (failed recently; retried after IMAGEKIT_FAILURE_TIMEOUT)")

    def is_pending(self, file: ImageCacheFile) -> bool:
        """Whether ``file`` is known not to be there yet (being generated, missing or failed).

        Asks only the state cache, never the storage: an unknown state is not pending.
        """
        raw = self._call(file, "get", self.get_key(file))
        if isinstance(raw, str) and raw.startswith("E"):
            return False
        if raw in _MISSING or (isinstance(raw, str) and raw.startswith(_FAILED)):
            return True
        return self._call(file, "lock_holder", self.get_lock_key(file)) not in (
            None,
            _CACHE_FAILED,
        )

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
        for_page = rendering.get()
        if token is not None:
            # A worker picked the job up: it is no longer waiting in the queue.
            self._call(file, "delete", self.get_queued_key(file))
        wait = self.lock_wait if for_page and token is None else None
        with _local_locks.hold(f"{id(file.storage)}:{file.name}", wait) as held:
            if not held:
                self._raise_pending(file)
            if token is None:
                token = uuid.uuid4().hex
            elif self._call(file, "lock_holder", self.get_lock_key(file)) != token:
                token = uuid.uuid4().hex  # the scheduler's lock expired or was replaced
            else:
                return self._generate_locked(file, force, token)
            state = self.get_state(file)
            if not force and state is CacheFileState.EXISTS:
                return False
            if for_page and state is CacheFileState.FAILED:
                self._raise_failure(file)  # another thread failed on it meanwhile
            while not self._acquire(file, token):
                if self._call(file, "lock_holder", self.get_lock_key(file)) is None:
                    # Nobody holds it, yet the cache would not take it: the cache
                    # refuses writes (a dead Memcached answers False). Go on inline.
                    _warn_refused(self._state_cache(file))
                    return self._generate_locked(file, force, token, locked=False)
                released = self._wait_for_release(
                    file, self.lock_wait if for_page else self.lock_timeout + 1
                )
                state = self.get_state(file, check_if_unknown=False)
                if state is CacheFileState.EXISTS:
                    return False
                if for_page and state is CacheFileState.FAILED:
                    self._raise_failure(file)
                if not released and for_page:
                    self._raise_pending(file)
            return self._generate_locked(file, force, token)

    def _raise_pending(self, file: ImageCacheFile) -> t.NoReturn:
        msg = (
            f"{file.name!r} is being generated elsewhere; it is shown as pending until it "
            "is ready."
        )
        raise MissingCacheFile(msg)

    def _raise_failure(self, file: ImageCacheFile) -> None:
        error = self.failure(file)
        if error is not None:
            raise error

    def _generate_locked(
        self, file: ImageCacheFile, force: bool, token: str, *, locked: bool = True
    ) -> bool:
        if locked:
            _heartbeat.add(
                self._state_cache(file), self.get_lock_key(file), token, self.lock_timeout
            )
        try:
            if not force and file.storage.exists(file.name):
                self.set_state(file, CacheFileState.EXISTS)
                return False
            size = file._write()
        except (SourceError, GenerationError) as exc:
            # Remembered, so pages do not decode a broken source on every view. A
            # storage failure is not: the next view retries once the disk is back.
            self.remember_failure(file, exc)
            raise
        except BaseException:
            self.forget(file)
            raise
        else:
            self.set_state(file, CacheFileState.EXISTS, size)
            file.app_state.file_memo.clear()
            return True
        finally:
            if locked:
                _heartbeat.discard(self.get_lock_key(file), token)
                self._release(file, token)

    def _acquire(self, file: ImageCacheFile, token: str) -> bool:
        key = self.get_lock_key(file)
        added = self._call(file, "acquire", key, token, self.lock_timeout)
        # Without a working state cache the in-process lock and atomic saves still hold.
        return added is _CACHE_FAILED or bool(added)

    def _release(self, file: ImageCacheFile, token: str) -> None:
        self._call(file, "release", self.get_lock_key(file), token)

    def _wait_for_release(self, file: ImageCacheFile, seconds: float) -> bool:
        """Wait up to ``seconds`` for the lock of ``file`` to go; True if it went."""
        key = self.get_lock_key(file)
        deadline = time.monotonic() + seconds
        delay = 0.005
        while True:
            if self._call(file, "lock_holder", key) in (None, _CACHE_FAILED):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.2)


def _warn_refused(cache: StateCache) -> None:
    if not cache.refusing.begin():
        return
    logger.warning(
        "flask_imagekit: the state cache %r refuses writes (is its server down?); files are "
        "generated inline without a shared lock meanwhile.",
        cache,
    )


class _Heartbeat:
    """Renews the GENERATING locks of running generations, so their TTL can stay short.

    One daemon thread per process wakes up a few times per lock timeout and
    extends every lock still held by this process; a process that dies stops
    renewing, and its locks expire after ``lock_timeout``.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], tuple[StateCache, int, float]] = {}
        self._wakeup = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def reset(self) -> None:
        """Forget every lock and the thread (in a forked child)."""
        self._guard = threading.Lock()
        self._locks = {}
        self._thread = None

    def add(self, cache: StateCache, key: str, token: str, timeout: int) -> None:
        with self._guard:
            self._locks[(key, token)] = (cache, timeout, time.monotonic() + _renew_every(timeout))
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="flask_imagekit-lock-heartbeat", daemon=True
                )
                self._thread.start()

    def discard(self, key: str, token: str) -> None:
        with self._guard:
            self._locks.pop((key, token), None)

    def _run(self) -> None:
        while True:
            self._wakeup.wait(0.25)
            now = time.monotonic()
            with self._guard:
                due = [
                    (key, token, cache, timeout)
                    for (key, token), (cache, timeout, at) in self._locks.items()
                    if at <= now
                ]
                for key, token, cache, timeout in due:
                    self._locks[(key, token)] = (cache, timeout, now + _renew_every(timeout))
            for key, token, cache, timeout in due:
                try:
                    cache.refresh(key, token, timeout)
                except Exception:  # a cache outage: the lock may lapse, generation goes on
                    logger.debug("flask_imagekit: could not renew lock %s", key, exc_info=True)


def _renew_every(timeout: int) -> float:
    # cachelib rounds expiry times down to the second, so a lock may live only
    # timeout - 1 seconds: renew three times within that.
    return max(0.2, (timeout - 1) / 3)


_heartbeat = _Heartbeat()


def _after_fork_in_child() -> None:
    # A forked child holds none of its parent's locks and must not renew them;
    # module locks may have been held by a thread that does not exist here.
    _heartbeat.reset()
    _local_locks.reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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


@functools.cache
def _broker_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean a job queue cannot be reached (Redis for RQ, kombu for Celery)."""
    errors = list(_unreachable_errors())
    try:
        from kombu.exceptions import OperationalError
    except ImportError:
        pass
    else:
        errors.append(OperationalError)
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
        """Generate ``file`` now unless its state says it exists.

        For a page (see :data:`rendering`), a generation that failed a short while
        ago is not tried again: its error is raised at once.
        """
        if force:
            self.generate_now(file, force=True)
            return
        state = self.get_state(file)
        if state is CacheFileState.EXISTS:
            return
        if state is CacheFileState.FAILED and rendering.get():
            error = self.failure(file)
            if error is not None:
                raise error
        self.generate_now(file)


class AsyncBackend(CachedFileBackend):
    """Base class of backends that generate files on workers.

    ``generate`` marks the file GENERATING (the lock, so other page views do not
    enqueue it again) and sends a JSON-safe job signed with the app's
    ``SECRET_KEY``: generator id, source name, generator kwargs and the lock's
    token (:func:`flask_imagekit.jobs.job_payload`). A worker checks it and
    rebuilds the spec from its own app's registry
    (:func:`flask_imagekit.jobs.run_job`). Until the file exists, ``bool(file)``
    is False.

    Workers read sources by name from the source storage: a source that is not
    stored there (an upload, an open file, a path) is refused with
    :class:`~flask_imagekit.exceptions.UnstoredSource`, and an app without
    ``SECRET_KEY`` with :class:`~flask_imagekit.exceptions.ImproperlyConfigured`.
    """

    #: Files may be pending on a worker: ``bool()`` asks the state cache.
    is_async = True

    def __init__(self, *args: t.Any, queue_timeout: int = 600, **kwargs: t.Any) -> None:
        """``queue_timeout``: seconds a job may wait in the queue before it is sent again.

        A sent job is marked *queued* for that long, so page views do not send it
        again however long the queue; the worker that picks it up drops the mark
        and holds the GENERATING lock, renewed while it runs, so a worker killed
        mid-job frees the file after ``lock_timeout``.
        """
        super().__init__(*args, **kwargs)
        self.queue_timeout = max(self.lock_timeout, math.ceil(queue_timeout))
        #: The broker could not be reached: files are generated inline meanwhile.
        self.broker_down = Outage()

    def generate(self, file: ImageCacheFile, force: bool = False) -> None:
        """Schedule the generation of ``file`` unless it exists or is under way."""
        if not force:
            state = self.get_state(file)
            if state is CacheFileState.FAILED and rendering.get():
                self._raise_failure(file)
            if state is not CacheFileState.DOES_NOT_EXIST or self.is_queued(file):
                return
            if self.source_missing(file):
                return  # a worker just found the source gone: no new job per page view
        self.enqueue(file, force=force)

    def enqueue(self, file: ImageCacheFile, force: bool = False) -> bool:
        """Take the GENERATING lock and send the job; False if it is already taken.

        The job is built (and its source checked) before the lock is taken.
        """
        from ..jobs import job_payload

        payload = job_payload(file, force=force)
        if self.broker_down.active:
            # Known to be down: no connection attempt per image.
            self.generate_now(file, force=force)
            return True
        token = t.cast(str, payload["token"])
        if not self._acquire(file, token):
            return False
        try:
            self.schedule(payload)
            self._call(file, "set", self.get_queued_key(file), token, timeout=self.queue_timeout)
        except _broker_errors() as exc:
            self._release(file, token)
            self.broker_down.begin()
            logger.warning(
                "flask_imagekit: the broker of %r is unreachable (%s); generating inline for "
                "%d seconds.",
                self,
                exc,
                Outage.SECONDS,
            )
            self.generate_now(file, force=force)
        except BaseException:
            self._release(file, token)
            raise
        return True

    def schedule(self, payload: dict[str, t.Any]) -> None:
        """Send ``payload`` to a worker."""
        raise NotImplementedError

    def is_queued(self, file: ImageCacheFile) -> bool:
        """Whether a job for ``file`` was sent and no worker has picked it up yet."""
        return self._call(file, "get", self.get_queued_key(file)) not in (None, _CACHE_FAILED)

    def is_pending(self, file: ImageCacheFile) -> bool:
        """Like :meth:`CachedFileBackend.is_pending`; a queued job counts too."""
        return super().is_pending(file) or self.is_queued(file)

    def job_failed(self, file: ImageCacheFile, token: str, error: BaseException) -> None:
        """Record that the job for ``file`` failed with ``error``, and release its lock.

        The file is FAILED for ``IMAGEKIT_FAILURE_TIMEOUT`` seconds (or, when its
        source is gone, known missing for a while), so page views do not send a job
        per view; then the lock the scheduler took with ``token`` is released.
        """
        # The state first: between the two, a page must not find the file unknown.
        if isinstance(error, MissingSource):
            self.remember_missing_source(file)
        else:
            self.remember_failure(file, error)
        self._release(file, token)


class Celery(AsyncBackend):
    """Generate files on Celery workers (``pip install imagekit-flask[celery]``).

    :param celery_app: the Celery app; by default ``current_app.extensions["celery"]``
        (where Flask's Celery pattern keeps it).
    :param queue: the queue to send jobs to (Celery's default when None).

    Workers need the task: call :func:`flask_imagekit.jobs.init_celery` on the
    Celery app in the app factory, and the web app's ``SECRET_KEY`` to verify jobs.
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
    ``FLASK_APP=yourapp rq worker --serializer rq.serializers.JSONSerializer``;
    the app they load needs the web app's ``SECRET_KEY`` to verify jobs. Refused
    jobs land in the queue's failed job registry.
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
