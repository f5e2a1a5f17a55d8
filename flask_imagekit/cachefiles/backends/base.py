"""The state machine of cache files, kept in the app's state cache, and inline generation.

A backend keeps each file's state in the app's state cache (a Flask-Caching /
cachelib cache), so the existence of a file is known without asking the storage:

* ``EXISTS`` (kept for ``IMAGEKIT_CACHE_TIMEOUT``, forever by default), with the
  image's width and height when known;
* ``DOES_NOT_EXIST``, kept only briefly (``missing_timeout``);
* ``GENERATING``, a lock taken atomically and with an expiry, so that one process
  at a time generates a file; a generation keeps its lock alive, and a process
  that dies leaves a lock that expires after ``lock_timeout``;
* ``FAILED``, kept for ``IMAGEKIT_FAILURE_TIMEOUT`` seconds after a generation
  failed on its source or its processors, so pages do not decode a broken
  source on every view (an explicit ``generate()`` still tries).

Backends return what they learn (a state, a size) and never write into the
cache file. A failed generation never leaves ``GENERATING`` or ``EXISTS``
behind. If the state cache is unreachable, or refuses writes, generation goes on
inline with a logged warning. A page that finds the lock held waits
``lock_wait`` seconds at most, then renders the file as pending.
"""

from __future__ import annotations

import logging
import math
import time
import typing as t
import uuid

from ...exceptions import (
    GenerationError,
    ImageKitError,
    ImproperlyConfigured,
    MissingCacheFile,
    SourceError,
)
from ...importing import invalid, resolve_instance
from ...statecache import Outage, StateCache
from ..output import write_output
from .pictures import PictureRecords
from .states import (
    CACHE_FAILED,
    SOURCE_MISSING,
    CacheFileState,
    Lookup,
    exists_value,
    failure_value,
    parse_state,
    rendering,
    state_key,
    unreachable_errors,
    warn_refused,
)

if t.TYPE_CHECKING:
    from cachelib import BaseCache

    from .. import ImageCacheFile

__all__ = [
    "CacheFileState",
    "CachedFileBackend",
    "Lookup",
    "Simple",
    "rendering",
    "resolve_backend",
]

logger = logging.getLogger("flask_imagekit.cachefiles.backends")


class Outcome(t.NamedTuple):
    """What a generation under the lock did."""

    generated: bool
    size: tuple[int, int] | None


class CachedFileBackend(PictureRecords):
    """Base class of backends that keep file states in the app's state cache.

    :param cache: a cachelib cache to use instead of the app's state cache.
    :param missing_timeout: seconds a DOES_NOT_EXIST state is trusted.
    :param lock_timeout: seconds after which an abandoned GENERATING lock expires;
        a live generation renews its lock, so this can stay short.
    :param lock_wait: seconds a page waits for a lock held by another process
        before rendering the file as pending (an explicit ``generate()`` waits
        until the lock is released or expires).
    """

    #: Files are generated where they are needed, never pending on a worker.
    is_async = False

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
        self._own_states: StateCache | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __getstate__(self) -> dict[str, t.Any]:
        state = dict(self.__dict__)
        state["_own_states"] = None
        return state

    # Keys and cache access ------------------------------------------------------

    def state_cache(self, file: ImageCacheFile) -> StateCache:
        """The state cache holding ``file``'s state: the backend's own, or the app's."""
        if self.cache is None:
            return file.app_state.states
        states = self._own_states
        if states is None:
            states = self._own_states = StateCache(self.cache)
        return states

    def get_key(self, file: ImageCacheFile) -> str:
        """The state cache key of ``file``."""
        return state_key(file.app_state.cache_prefix, "state:", file.name)

    def get_lock_key(self, file: ImageCacheFile) -> str:
        """The state cache key of the GENERATING lock of ``file``."""
        return state_key(file.app_state.cache_prefix, "lock:", file.name)

    def get_queued_key(self, file: ImageCacheFile) -> str:
        """The state cache key that marks a job for ``file`` as waiting in a queue."""
        return state_key(file.app_state.cache_prefix, "queued:", file.name)

    def _call(self, file: ImageCacheFile, op: str, *args: t.Any, **kwargs: t.Any) -> t.Any:
        """Run a cache operation; an unreachable cache counts as a miss, with a warning."""
        cache = self.state_cache(file)
        if cache.unreachable.active:
            return CACHE_FAILED  # known to be down: do not wait on it for every image
        try:
            return getattr(cache, op)(*args, **kwargs)
        except unreachable_errors() as exc:
            cache.unreachable.begin()
            logger.warning(
                "flask_imagekit: the state cache %r failed on %s (%s); going on without it "
                "for %d seconds (files are generated inline, existence asked of the storage).",
                cache,
                op,
                exc,
                Outage.SECONDS,
            )
            return CACHE_FAILED

    # States -----------------------------------------------------------------

    def lookup(self, file: ImageCacheFile) -> Lookup:
        """What the state cache knows of ``file``: one read, never the storage."""
        return parse_state(self._call(file, "get", self.get_key(file)))

    def state_and_size(
        self, file: ImageCacheFile, check_if_unknown: bool = True
    ) -> tuple[CacheFileState, tuple[int, int] | None]:
        """The state of ``file`` and its size when known; if unknown, ask the storage."""
        found = self.lookup(file)
        if found.state in (CacheFileState.EXISTS, CacheFileState.FAILED):
            return t.cast(CacheFileState, found.state), found.size
        if self._call(file, "lock_holder", self.get_lock_key(file)) not in (None, CACHE_FAILED):
            return CacheFileState.GENERATING, None
        if found.state is not None or not check_if_unknown:
            return CacheFileState.DOES_NOT_EXIST, None
        exists = file.storage.exists(file.name)
        state = CacheFileState.EXISTS if exists else CacheFileState.DOES_NOT_EXIST
        self.set_state(file, state)
        return state, None

    def get_state(self, file: ImageCacheFile, check_if_unknown: bool = True) -> CacheFileState:
        """Return the state of ``file``; if unknown, ask the storage (and remember)."""
        return self.state_and_size(file, check_if_unknown)[0]

    def set_state(
        self,
        file: ImageCacheFile,
        state: CacheFileState,
        size: tuple[int, int] | None = None,
    ) -> None:
        """Record ``state`` for ``file`` (with its pixel size when it exists)."""
        key = self.get_key(file)
        if state is CacheFileState.EXISTS:
            self._call(file, "set", key, exists_value(size), timeout=self._exists_timeout(file))
        elif state is CacheFileState.DOES_NOT_EXIST:
            self._call(file, "set", key, "D", timeout=self.missing_timeout)
        else:
            msg = "GENERATING is set by taking the lock, FAILED by remember_failure()."
            raise ImproperlyConfigured(msg)

    def _exists_timeout(self, file: ImageCacheFile) -> int:
        return math.ceil(file.app_state.cache_timeout or 0)

    def remember_missing_source(self, file: ImageCacheFile) -> None:
        """Record that ``file``'s source is gone, so it is not scheduled again at once."""
        timeout = max(self.missing_timeout, self.lock_timeout)
        self._call(file, "set", self.get_key(file), SOURCE_MISSING, timeout=timeout)

    def remember_failure(self, file: ImageCacheFile, error: BaseException) -> None:
        """Record that generating ``file`` failed, for ``IMAGEKIT_FAILURE_TIMEOUT`` seconds."""
        timeout = file.app_state.failure_timeout
        self._call(file, "set", self.get_key(file), failure_value(error), timeout=timeout)

    def failure(self, file: ImageCacheFile) -> ImageKitError | None:
        """The error of the last failed generation of ``file``, while it is remembered."""
        return self.lookup(file).error

    def is_pending(self, file: ImageCacheFile) -> bool:
        """Whether ``file`` is known not to be there yet (being generated, missing or failed).

        Asks only the state cache, never the storage: an unknown state is not pending.
        """
        found = self.lookup(file)
        if found.state is CacheFileState.EXISTS:
            return False
        if found.state is not None:
            return True
        return self._call(file, "lock_holder", self.get_lock_key(file)) not in (None, CACHE_FAILED)

    def source_missing(self, file: ImageCacheFile) -> bool:
        """Whether a worker found ``file``'s source gone a short while ago."""
        return bool(self._call(file, "get", self.get_key(file)) == SOURCE_MISSING)

    def forget(self, file: ImageCacheFile) -> None:
        """Drop what is known of ``file`` (after deleting it, for instance)."""
        self._call(file, "delete", self.get_key(file))

    def exists(self, file: ImageCacheFile) -> bool:
        """Tell whether ``file`` exists, asking the storage only if the state is unknown."""
        return self.get_state(file) is CacheFileState.EXISTS

    def dimensions(self, file: ImageCacheFile) -> tuple[int, int] | None:
        """Width and height of ``file`` if its state knows them."""
        return self.lookup(file).size

    def remember_dimensions(self, file: ImageCacheFile, size: tuple[int, int]) -> None:
        """Store the pixel size of an existing ``file`` in its state."""
        self.set_state(file, CacheFileState.EXISTS, size)

    # Generation -----------------------------------------------------------------

    def generate(self, file: ImageCacheFile, force: bool = False) -> tuple[int, int] | None:
        """Make sure ``file`` exists (regenerate it if ``force``); its size when known."""
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
        return self.run_generation(file, force, token).generated

    def run_generation(
        self,
        file: ImageCacheFile,
        force: bool = False,
        token: str | None = None,
        *,
        looked_up: bool = False,
    ) -> Outcome:
        """Like :meth:`generate_now`, telling the size too.

        ``looked_up``: the caller has just found the state unknown or missing, so
        unless another thread of this process held the file meanwhile it is not
        read again.
        """
        for_page = rendering.get()
        states = self.state_cache(file)
        if token is not None:
            # A worker picked the job up: it is no longer waiting in the queue.
            self._call(file, "delete", self.get_queued_key(file))
        wait = self.lock_wait if for_page and token is None else None
        with states.local_locks.hold(f"{id(file.storage)}:{file.name}", wait) as held:
            if held is False:
                self._raise_pending(file)
            if token is None:
                token = uuid.uuid4().hex
            elif (
                self._call(file, "refresh", self.get_lock_key(file), token, self.lock_timeout)
                is True
            ):
                # Extended in the same step as checked: a lock taken over moments
                # before it expires does not lapse before the first heartbeat.
                return self._generate_locked(file, force, token)
            else:
                token = uuid.uuid4().hex  # the scheduler's lock expired or was replaced
            if not (looked_up and held):
                state, size = self.state_and_size(file, check_if_unknown=False)
                if not force and state is CacheFileState.EXISTS:
                    return Outcome(False, size)
                if for_page and state is CacheFileState.FAILED:
                    self._raise_failure(file)  # another thread failed on it meanwhile
            while not self._acquire(file, token):
                if self._call(file, "lock_holder", self.get_lock_key(file)) is None:
                    # Nobody holds it, yet the cache would not take it: the cache
                    # refuses writes (a dead Memcached answers False). Go on inline.
                    warn_refused(states)
                    return self._generate_locked(file, force, token, locked=False)
                released = self._wait_for_release(
                    file, self.lock_wait if for_page else self.lock_timeout + 1
                )
                state, size = self.state_and_size(file, check_if_unknown=False)
                if state is CacheFileState.EXISTS:
                    return Outcome(False, size)
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
    ) -> Outcome:
        states = self.state_cache(file)
        lock_key = self.get_lock_key(file)
        if locked:
            states.heartbeat.add(lock_key, token, self.lock_timeout)
        try:
            size: tuple[int, int] | None = None
            generated = force or not file.storage.exists(file.name)
            if generated:
                size = write_output(file.generator, file.storage, file.name)
        except (SourceError, GenerationError) as exc:
            # Remembered, so pages do not decode a broken source on every view. A
            # storage failure is not: the next view retries once the disk is back.
            self.remember_failure(file, exc)
            self._finish(file, token, locked)
            raise
        except BaseException:
            self.forget(file)
            self._finish(file, token, locked)
            raise
        if locked:
            states.heartbeat.discard(lock_key, token)
            # The state and the release in one step: no reader finds neither.
            self._call(
                file,
                "complete",
                self.get_key(file),
                exists_value(size),
                self._exists_timeout(file),
                lock_key,
                token,
            )
        else:
            self.set_state(file, CacheFileState.EXISTS, size)
        if generated:  # a candidate: what the pictures of its spec need, one read away
            self.record_candidate(file)
        return Outcome(generated, size)

    def _finish(self, file: ImageCacheFile, token: str, locked: bool) -> None:
        if locked:
            self.state_cache(file).heartbeat.discard(self.get_lock_key(file), token)
            self.release(file, token)

    def _acquire(self, file: ImageCacheFile, token: str) -> bool:
        key = self.get_lock_key(file)
        added = self._call(file, "acquire", key, token, self.lock_timeout)
        # Without a working state cache the in-process lock and atomic saves still hold.
        return added is CACHE_FAILED or bool(added)

    def release(self, file: ImageCacheFile, token: str) -> None:
        """Release the GENERATING lock of ``file`` if ``token`` still holds it."""
        self._call(file, "release", self.get_lock_key(file), token)

    def _wait_for_release(self, file: ImageCacheFile, seconds: float) -> bool:
        """Wait up to ``seconds`` for the lock of ``file`` to go; True if it went."""
        key = self.get_lock_key(file)
        deadline = time.monotonic() + seconds
        delay = 0.005
        while True:
            if self._call(file, "lock_holder", key) in (None, CACHE_FAILED):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.2)


class Simple(CachedFileBackend):
    """Generate files inline, in the process that needs them."""

    def generate(self, file: ImageCacheFile, force: bool = False) -> tuple[int, int] | None:
        """Generate ``file`` now unless its state says it exists; return its size when known.

        For a page (see :data:`rendering`), a generation that failed a short while
        ago is not tried again: its error is raised at once.
        """
        if force:
            return self.run_generation(file, force=True).size
        found = self.lookup(file)
        if found.state is CacheFileState.EXISTS:
            return found.size
        if found.error is not None and rendering.get():
            raise found.error
        return self.run_generation(file, looked_up=found.state is not CacheFileState.FAILED).size


def resolve_backend(key: str, value: t.Any) -> t.Any:
    """Resolve a cache file backend setting and check it looks like a backend."""
    backend = resolve_instance(key, value, "a cache file backend")
    if not all(callable(getattr(backend, name, None)) for name in ("generate", "exists")):
        invalid(
            key, value, "a cache file backend such as flask_imagekit.cachefiles.backends.Simple"
        )
    return backend
