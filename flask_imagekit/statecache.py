"""The state cache of cache files: a cachelib cache, made safe for locks and fast.

:class:`StateCache` wraps the cachelib cache that Flask-Caching (or the user)
provides and adds two things backends need:

* an atomic lock: ``add`` with an expiry in one step (cachelib's Redis ``add``
  is ``SETNX`` then ``EXPIRE``, which leaves an eternal lock if the process
  dies in between) and a compare-and-delete release, so a process only ever
  releases its own lock;
* a write that sets a state and releases a lock in one step (:meth:`StateCache.complete`);
* a local in-process tier in front of a remote cache (Redis, Memcached, …):
  EXISTS states are kept locally for ``local_timeout`` seconds, so a page with
  many images does not pay one network round trip each. Other states and locks
  are always read from the shared cache.
"""

from __future__ import annotations

import itertools
import threading
import time
import typing as t

from .locks import Heartbeat, KeyedLocks

if t.TYPE_CHECKING:
    from cachelib import BaseCache

__all__ = ["Outage", "StateCache"]

# Deletes the key only if it still holds this process's token.
_RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""

# Extends the key's expiry only if it still holds this process's token.
_REFRESH_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('expire', KEYS[1], ARGV[2])
end
return 0
"""

# Sets the state, then releases the lock if it still holds this process's token.
_COMPLETE_SCRIPT = """
if tonumber(ARGV[3]) > 0 then
    redis.call('set', KEYS[2], ARGV[2], 'EX', ARGV[3])
else
    redis.call('set', KEYS[2], ARGV[2])
end
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""

_LOCAL_MAX_ENTRIES = 100_000


def _is_redis(cache: object) -> bool:
    from cachelib.redis import RedisCache

    # Any cachelib Redis cache (Flask-Caching's included) has these.
    return isinstance(cache, RedisCache) or (
        hasattr(cache, "_write_client") and hasattr(cache, "_get_prefix")
    )


def _is_cluster(cache: object) -> bool:
    client = getattr(cache, "_write_client", None)
    return any(cls.__name__ == "RedisCluster" for cls in type(client).__mro__)


def _is_remote(cache: object) -> bool:
    """Whether reads of ``cache`` leave the process (a network or disk round trip)."""
    import cachelib

    remote = tuple(
        getattr(cachelib, name)
        for name in (
            "RedisCache",
            "MemcachedCache",
            "FileSystemCache",
            "UWSGICache",
            "DynamoDbCache",
            "MongoDbCache",
            "ValkeyCache",
        )
        if hasattr(cachelib, name)
    )
    return isinstance(cache, remote) or _is_redis(cache)


class Outage:
    """A window of a few seconds after a service failed, so it is warned about once
    and not waited on for every image meanwhile."""

    __slots__ = ("_until",)

    #: Seconds a failed service is left alone before it is tried again.
    SECONDS = 5

    def __init__(self) -> None:
        self._until = 0.0

    @property
    def active(self) -> bool:
        """Whether the service failed less than :attr:`SECONDS` ago."""
        return self._until > time.monotonic()

    def begin(self) -> bool:
        """Record a failure now; True if it opens a new window (warn then)."""
        now = time.monotonic()
        new = self._until <= now
        self._until = now + self.SECONDS
        return new


class StateCache:
    """Cache file states and locks on top of a cachelib cache.

    :param cache: the cachelib cache (the app's state cache).
    :param local_timeout: seconds an EXISTS state is trusted from the local
        tier; ``None`` turns the tier on (60 s) for caches outside the process
        (Redis, Memcached, files, …), ``0`` turns it off.
    """

    def __init__(self, cache: BaseCache, local_timeout: float | None = None) -> None:
        self.cache = cache
        if local_timeout is None:
            local_timeout = 60.0 if _is_remote(cache) else 0.0
        self.local_timeout = float(local_timeout)
        self._local: dict[str, tuple[t.Any, float]] = {}
        self._redis = _is_redis(cache)
        # A script may touch one hash slot only on a cluster: the state and the lock are two.
        self._one_slot_scripts = self._redis and not _is_cluster(cache)
        self._scripts: dict[str, t.Any] = {}
        self._lock = threading.Lock()
        #: The cache could not be reached: it is left alone for a few seconds.
        self.unreachable = Outage()
        #: The cache refused a write: warned about once per window.
        self.refusing = Outage()
        #: Bumped by every state written here, so what was derived from states can tell.
        self.epoch = 0
        self._epochs = itertools.count(1)  # next() on it is atomic: no bump is lost
        #: Locks between the threads of this process, by key.
        self.local_locks = KeyedLocks()
        #: Keeps the shared locks of this process's running generations alive.
        self.heartbeat = Heartbeat(self)

    def __repr__(self) -> str:
        return f"StateCache({self.cache!r}, local_timeout={self.local_timeout})"

    # Plain values (states) ----------------------------------------------------------

    def get(self, key: str) -> t.Any:
        """The value under ``key``, from the local tier when it is fresh there."""
        if self.local_timeout:
            entry = self._local.get(key)
            if entry is not None:
                if entry[1] > time.monotonic():
                    return entry[0]
                self._local.pop(key, None)
        value = self.cache.get(key)
        if self.local_timeout and value is not None:
            self._remember(key, value)
        return value

    def set(self, key: str, value: t.Any, timeout: int = 0) -> t.Any:
        """Store ``value`` under ``key`` for ``timeout`` seconds (0: no expiry)."""
        return self._store(key, value, timeout)

    def _store(self, key: str, value: t.Any, timeout: int) -> t.Any:
        result = self.cache.set(key, value, timeout=timeout)
        self.epoch = next(self._epochs)
        if self.local_timeout:
            self._remember(key, value)
        return result

    def delete(self, key: str) -> t.Any:
        """Remove ``key``."""
        self._local.pop(key, None)
        self.epoch = next(self._epochs)
        return self.cache.delete(key)

    def complete(self, key: str, value: t.Any, timeout: int, lock_key: str, token: str) -> None:
        """Store ``value`` under ``key``, then release ``lock_key`` if ``token`` holds it.

        One round trip on Redis: a reader never finds the lock gone and the state not yet set.
        """
        if self._one_slot_scripts:
            cache: t.Any = self.cache
            name = f"{cache._get_prefix()}{key}"
            self._run_script(
                _COMPLETE_SCRIPT,
                lock_key,
                token,
                cache.serializer.dumps(value),
                timeout,
                keys=[name],
            )
            self.epoch = next(self._epochs)
            if self.local_timeout:
                self._remember(key, value)
            return
        self._store(key, value, timeout)
        self._release(lock_key, token)

    def _remember(self, key: str, value: t.Any) -> None:
        # Only EXISTS is kept: a missing file may appear any moment (a worker).
        if not (isinstance(value, str) and value.startswith("E")):
            self._local.pop(key, None)
            return
        if len(self._local) > _LOCAL_MAX_ENTRIES:
            self._local.clear()
        self._local[key] = (value, time.monotonic() + self.local_timeout)

    # Locks ---------------------------------------------------------------------------

    def lock_holder(self, key: str) -> t.Any:
        """The token holding the lock ``key`` (never from the local tier), or None."""
        return self.cache.get(key)

    def acquire(self, key: str, token: str, timeout: int) -> bool:
        """Take the lock ``key`` for ``timeout`` seconds, atomically; False if taken."""
        if self._redis:
            cache: t.Any = self.cache
            name = f"{cache._get_prefix()}{key}"
            return bool(
                cache._write_client.set(name, cache.serializer.dumps(token), nx=True, ex=timeout)
            )
        return bool(self.cache.add(key, token, timeout=timeout))

    def release(self, key: str, token: str) -> None:
        """Release the lock ``key`` if ``token`` still holds it."""
        self._release(key, token)

    def _release(self, key: str, token: str) -> None:
        if self._redis:
            self._run_script(_RELEASE_SCRIPT, key, token)
            return
        with self._lock:  # in-process caches: the check and the delete cannot interleave
            if self.cache.get(key) == token:
                self.cache.delete(key)

    def refresh(self, key: str, token: str, timeout: int) -> bool:
        """Extend the lock ``key`` by ``timeout`` seconds if ``token`` still holds it."""
        if self._redis:
            return bool(self._run_script(_REFRESH_SCRIPT, key, token, timeout))
        with self._lock:
            if self.cache.get(key) != token:
                return False
            return bool(self.cache.set(key, token, timeout=timeout))

    def _run_script(
        self, source: str, key: str, token: str, *args: t.Any, keys: t.Sequence[str] = ()
    ) -> t.Any:
        """Run a Lua script on ``key`` (prefixed as cachelib does), ``token`` and ``args``."""
        cache: t.Any = self.cache
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = cache._write_client.register_script(source)
        name = f"{cache._get_prefix()}{key}"
        return script(keys=[name, *keys], args=[cache.serializer.dumps(token), *args])
