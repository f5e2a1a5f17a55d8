"""In-process locks by key, and the heartbeat that keeps shared locks alive.

Both belong to one :class:`~flask_imagekit.statecache.StateCache`. A forked
child holds none of its parent's locks and must not renew them, so each notices
a change of process id and starts afresh.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import typing as t

__all__ = ["Heartbeat", "KeyedLocks"]

logger = logging.getLogger("flask_imagekit")


class KeyedLocks:
    """In-process locks by key, dropped when nobody holds or waits for them."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._guard = threading.Lock()
        self._locks: dict[str, list[t.Any]] = {}

    @contextlib.contextmanager
    def hold(self, key: str, timeout: float | None = None) -> t.Iterator[bool | None]:
        """Hold the lock of ``key``.

        Yields True if it was free, None if it was taken after waiting for another
        thread (which may have done the work meanwhile), False if ``timeout`` ran out.
        """
        if self._pid != os.getpid():
            # A forked child: locks held by its parent's threads are not its own.
            self._pid, self._guard, self._locks = os.getpid(), threading.Lock(), {}
        with self._guard:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        lock: threading.Lock = entry[0]
        outcome: bool | None = False  # not held until acquired
        try:
            if lock.acquire(blocking=False):
                outcome = True
            elif lock.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
                outcome = None
            yield outcome
        finally:
            if outcome is not False:
                lock.release()
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    self._locks.pop(key, None)


class Renewable(t.Protocol):
    """What the heartbeat renews locks in."""

    def refresh(self, key: str, token: str, timeout: int) -> bool:
        """Extend lock ``key`` if ``token`` still holds it."""
        ...


class Heartbeat:
    """Renews the shared locks of running generations, so their TTL can stay short.

    One daemon thread wakes up a few times per lock timeout and extends every lock
    still held here; a process that dies stops renewing, and its locks expire
    after their timeout.
    """

    def __init__(self, cache: Renewable) -> None:
        self._cache = cache
        self._pid = os.getpid()
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], tuple[int, float]] = {}
        self._thread: threading.Thread | None = None

    def _forget_parent(self) -> None:
        # Checked before taking the guard: in a forked child, the parent's
        # heartbeat thread may have held it at the fork, and would never release it.
        if self._pid != os.getpid():
            self._pid, self._guard, self._locks, self._thread = (
                os.getpid(),
                threading.Lock(),
                {},
                None,
            )

    def add(self, key: str, token: str, timeout: int) -> None:
        """Keep the lock ``key`` held by ``token`` alive until :meth:`discard`."""
        self._forget_parent()
        with self._guard:
            self._locks[(key, token)] = (timeout, time.monotonic() + _renew_every(timeout))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="flask_imagekit-lock-heartbeat", daemon=True
                )
                self._thread.start()

    def held(self) -> set[tuple[str, str]]:
        """The ``(key, token)`` pairs this process is renewing now."""
        self._forget_parent()
        with self._guard:
            return set(self._locks)

    def discard(self, key: str, token: str) -> None:
        """Stop renewing the lock ``key`` held by ``token``."""
        with self._guard:
            self._locks.pop((key, token), None)

    def _run(self) -> None:
        while True:
            time.sleep(0.25)
            now = time.monotonic()
            with self._guard:
                if self._thread is not threading.current_thread():
                    return  # replaced after a fork
                if not self._locks:
                    self._thread = None  # idle: the next add() starts a new thread
                    return
                due = [
                    (key, token, timeout)
                    for (key, token), (timeout, at) in self._locks.items()
                    if at <= now
                ]
                for key, token, timeout in due:
                    self._locks[(key, token)] = (timeout, now + _renew_every(timeout))
            for key, token, timeout in due:
                try:
                    self._cache.refresh(key, token, timeout)
                except Exception:  # a cache outage: the lock may lapse, generation goes on
                    logger.debug("flask_imagekit: could not renew lock %s", key, exc_info=True)


def _renew_every(timeout: int) -> float:
    # cachelib rounds expiry times down to the second, so a lock may live only
    # timeout - 1 seconds: renew three times within that.
    return max(0.2, (timeout - 1) / 3)
