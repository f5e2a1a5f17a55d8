"""``flask_imagekit.locks``: in-process locks by key, and the heartbeat of shared locks."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from flask_imagekit.locks import Heartbeat, KeyedLocks


class Renewals:
    """A lock store that records renewals."""

    def __init__(self) -> None:
        self.renewed: list[str] = []

    def refresh(self, key: str, token: str, timeout: int) -> bool:
        self.renewed.append(key)
        return True


def test_a_free_key_is_held_at_once_and_a_held_one_after_waiting() -> None:
    locks = KeyedLocks()
    with locks.hold("a") as first:
        assert first is True
        outcome: list[bool | None] = []
        waiter = threading.Thread(target=lambda: outcome.append(_hold(locks, "a", None)))
        waiter.start()
        time.sleep(0.05)
    waiter.join(2)
    assert outcome == [None]  # taken after waiting: the other thread may have done the work


def _hold(locks: KeyedLocks, key: str, timeout: float | None) -> bool | None:
    with locks.hold(key, timeout) as held:
        return held


def test_a_wait_that_runs_out_holds_nothing_and_leaves_the_key_usable() -> None:
    locks = KeyedLocks()
    with locks.hold("a"):
        assert _hold(locks, "a", 0.01) is False
        assert _hold(locks, "a", -1) is False  # a negative wait is no wait
    assert _hold(locks, "a", 0) is True


def test_an_error_in_the_block_releases_the_key() -> None:
    locks = KeyedLocks()
    with pytest.raises(RuntimeError), locks.hold("a"):
        raise RuntimeError
    assert _hold(locks, "a", 0) is True


def test_the_heartbeat_renews_until_discarded_then_stops() -> None:
    cache = Renewals()
    heartbeat = Heartbeat(cache)
    heartbeat.add("lock:a", "t", 1)  # renewed every 0.2 s
    time.sleep(0.7)
    assert cache.renewed.count("lock:a") >= 2
    heartbeat.discard("lock:a", "t")
    assert heartbeat.held() == set()
    seen = len(cache.renewed)
    time.sleep(0.5)
    assert len(cache.renewed) == seen


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_while_the_heartbeat_is_busy_can_use_it() -> None:
    heartbeat = Heartbeat(Renewals())
    heartbeat.add("lock:parent", "p", 10)
    busy, done = threading.Event(), threading.Event()

    def hold_the_guard() -> None:  # the heartbeat thread, caught mid-renewal by the fork
        with heartbeat._guard:
            busy.set()
            done.wait(5)

    threading.Thread(target=hold_the_guard, daemon=True).start()
    busy.wait(2)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        signal.alarm(5)
        heartbeat.add("lock:child", "c", 10)
        os._exit(0 if heartbeat.held() == {("lock:child", "c")} else 1)
    done.set()
    _, status = os.waitpid(pid, 0)
    heartbeat.discard("lock:parent", "p")
    assert os.WIFEXITED(status)
    assert os.WEXITSTATUS(status) == 0
