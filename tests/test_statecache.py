"""Tests for flask_imagekit.statecache over in-process cachelib caches (Redis: test_async).

``StateCache`` keeps cache file states and locks: a lock is taken atomically with
its expiry and only its holder releases or extends it; EXISTS states may be kept
in a local tier for a while; ``Outage`` windows stop a failing service from being
warned about (and waited on) for every image.
"""

from __future__ import annotations

import time
import typing as t
from pathlib import Path

import pytest
from cachelib import BaseCache, FileSystemCache, NullCache, SimpleCache

from flask_imagekit.statecache import Outage, StateCache

from .conftest import FakeClock, PreciseCache

EXISTS = "E100x50"  # what backends keep for a file that exists: starts with "E"
MISSING = "D"


@pytest.fixture(params=["simple", "precise"])
def cache(request: pytest.FixtureRequest) -> BaseCache:
    """An in-process cachelib cache: cachelib's SimpleCache, or one with float TTLs."""
    if request.param == "simple":
        return SimpleCache(default_timeout=0)
    return PreciseCache()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def timed(clock: FakeClock) -> PreciseCache:
    """A cache whose entries expire by ``clock``, so TTLs are tested without sleeping."""
    return PreciseCache(clock)


# Plain values ---------------------------------------------------------------------------


def test_values_go_to_the_cache(cache: BaseCache) -> None:
    states = StateCache(cache)
    assert states.get("k") is None
    assert states.set("k", EXISTS)
    assert states.get("k") == EXISTS
    assert cache.get("k") == EXISTS  # shared with every process that uses the cache
    states.set("k", MISSING)
    assert states.get("k") == MISSING
    states.delete("k")
    assert states.get("k") is None
    assert cache.get("k") is None


def test_set_passes_the_timeout_on(clock: FakeClock, timed: PreciseCache) -> None:
    states = StateCache(timed)
    states.set("short", MISSING, timeout=5)
    states.set("forever", EXISTS)
    clock.advance(4)
    assert states.get("short") == MISSING
    clock.advance(2)
    assert states.get("short") is None
    clock.advance(10 * 365 * 24 * 3600)
    assert states.get("forever") == EXISTS  # timeout 0: no expiry


def test_repr_names_the_cache_and_the_local_timeout() -> None:
    cache = SimpleCache()
    text = repr(StateCache(cache, local_timeout=7))
    assert repr(cache) in text
    assert "local_timeout=7.0" in text


# The local tier ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make_cache", "expected"),
    [
        (lambda tmp: SimpleCache(), 0.0),
        (lambda tmp: NullCache(), 0.0),
        (lambda tmp: PreciseCache(), 0.0),
        (lambda tmp: FileSystemCache(str(tmp / "states")), 60.0),
    ],
    ids=["SimpleCache", "NullCache", "custom", "FileSystemCache"],
)
def test_local_tier_is_on_only_for_caches_outside_the_process(
    tmp_path: Path, make_cache: t.Callable[[Path], BaseCache], expected: float
) -> None:
    assert StateCache(make_cache(tmp_path)).local_timeout == expected


@pytest.mark.parametrize(("given", "expected"), [(0, 0.0), (5, 5.0), (0.25, 0.25)])
def test_local_timeout_given_wins(tmp_path: Path, given: float, expected: float) -> None:
    assert StateCache(SimpleCache(), local_timeout=given).local_timeout == expected
    remote = FileSystemCache(str(tmp_path / "states"))
    assert StateCache(remote, local_timeout=given).local_timeout == expected


def test_without_a_local_tier_every_read_asks_the_cache(cache: BaseCache) -> None:
    states = StateCache(cache)
    assert states.local_timeout == 0
    states.set("k", EXISTS)
    cache.set("k", "E1x1")  # another process
    assert states.get("k") == "E1x1"
    cache.delete("k")
    assert states.get("k") is None


def test_local_tier_keeps_exists_after_a_set(cache: BaseCache) -> None:
    states = StateCache(cache, local_timeout=60)
    states.set("k", EXISTS)
    cache.delete("k")  # e.g. flushed, or evicted
    assert states.get("k") == EXISTS


def test_local_tier_keeps_exists_read_from_the_cache(cache: BaseCache) -> None:
    states = StateCache(cache, local_timeout=60)
    cache.set("k", EXISTS)
    assert states.get("k") == EXISTS
    cache.set("k", "E1x1")
    assert states.get("k") == EXISTS  # answered locally: no round trip


@pytest.mark.parametrize("value", [MISSING, "G", "F:boom", 42, ("E",)])
def test_local_tier_keeps_nothing_but_exists(cache: BaseCache, value: t.Any) -> None:
    # A missing file may appear any moment (a worker made it): always ask.
    states = StateCache(cache, local_timeout=60)
    states.set("written", value)
    cache.set("written", EXISTS)  # another process generated the file
    assert states.get("written") == EXISTS
    cache.set("read", value)
    assert states.get("read") == value
    cache.set("read", EXISTS)
    assert states.get("read") == EXISTS


def test_writing_another_state_replaces_the_local_exists(cache: BaseCache) -> None:
    states = StateCache(cache, local_timeout=60)
    states.set("k", EXISTS)
    states.set("k", MISSING)  # e.g. the file was deleted here
    assert states.get("k") == MISSING


def test_local_entries_expire(cache: BaseCache) -> None:
    states = StateCache(cache, local_timeout=0.05)
    states.set("k", EXISTS)
    cache.set("k", "E1x1")
    assert states.get("k") == EXISTS
    time.sleep(0.1)
    assert states.get("k") == "E1x1"


def test_delete_forgets_the_local_entry(cache: BaseCache) -> None:
    states = StateCache(cache, local_timeout=60)
    states.set("k", EXISTS)
    states.delete("k")
    assert states.get("k") is None
    assert cache.get("k") is None


def test_a_missing_value_is_not_remembered(cache: BaseCache) -> None:
    states = StateCache(cache, local_timeout=60)
    assert states.get("k") is None
    cache.set("k", EXISTS)
    assert states.get("k") == EXISTS


def test_local_tiers_are_per_state_cache(cache: BaseCache) -> None:
    one = StateCache(cache, local_timeout=60)
    two = StateCache(cache, local_timeout=60)
    one.set("k", EXISTS)
    cache.delete("k")
    assert one.get("k") == EXISTS
    assert two.get("k") is None


# Locks ------------------------------------------------------------------------------------


def test_a_lock_has_one_holder(cache: BaseCache) -> None:
    states = StateCache(cache)
    assert states.lock_holder("lock") is None
    assert states.acquire("lock", "a", timeout=30)
    assert not states.acquire("lock", "b", timeout=30)
    assert not states.acquire("lock", "a", timeout=30)  # not re-entrant
    assert states.lock_holder("lock") == "a"


def test_only_the_holder_releases(cache: BaseCache) -> None:
    states = StateCache(cache)
    states.acquire("lock", "a", timeout=30)
    states.release("lock", "b")
    assert states.lock_holder("lock") == "a"
    states.release("lock", "a")
    assert states.lock_holder("lock") is None
    assert states.acquire("lock", "b", timeout=30)
    assert states.lock_holder("lock") == "b"


def test_releasing_a_free_lock_does_nothing(cache: BaseCache) -> None:
    states = StateCache(cache)
    states.release("lock", "a")
    assert states.lock_holder("lock") is None
    assert states.acquire("lock", "a", timeout=30)


def test_locks_are_independent(cache: BaseCache) -> None:
    states = StateCache(cache)
    assert states.acquire("lock:1", "a", timeout=30)
    assert states.acquire("lock:2", "b", timeout=30)
    states.release("lock:1", "a")
    assert states.lock_holder("lock:2") == "b"


def test_a_lock_expires_after_its_timeout(clock: FakeClock, timed: PreciseCache) -> None:
    states = StateCache(timed)
    assert states.acquire("lock", "dead-process", timeout=2)
    clock.advance(1.9)
    assert not states.acquire("lock", "b", timeout=2)
    clock.advance(0.2)
    assert states.lock_holder("lock") is None
    assert states.acquire("lock", "b", timeout=2)


def test_a_late_release_does_not_free_the_next_holders_lock(
    clock: FakeClock, timed: PreciseCache
) -> None:
    states = StateCache(timed)
    states.acquire("lock", "slow", timeout=2)
    clock.advance(3)  # "slow" overran its lock ...
    assert states.acquire("lock", "next", timeout=2)  # ... and somebody else took it
    states.release("lock", "slow")
    assert states.lock_holder("lock") == "next"


def test_the_holder_extends_its_lock(clock: FakeClock, timed: PreciseCache) -> None:
    states = StateCache(timed)
    states.acquire("lock", "a", timeout=2)
    clock.advance(1.5)
    assert states.refresh("lock", "a", timeout=2)
    clock.advance(1.5)  # 3 s after acquire, 1.5 s after the refresh
    assert states.lock_holder("lock") == "a"
    assert not states.acquire("lock", "b", timeout=2)
    clock.advance(1)
    assert states.lock_holder("lock") is None


def test_refresh_by_another_token_changes_nothing(clock: FakeClock, timed: PreciseCache) -> None:
    states = StateCache(timed)
    states.acquire("lock", "a", timeout=2)
    assert not states.refresh("lock", "b", timeout=60)
    assert states.lock_holder("lock") == "a"
    clock.advance(2.5)
    assert states.lock_holder("lock") is None  # the refused refresh did not extend it


def test_refresh_of_a_lost_lock_does_not_take_it_again(
    clock: FakeClock, timed: PreciseCache
) -> None:
    states = StateCache(timed)
    states.acquire("lock", "a", timeout=2)
    clock.advance(3)
    assert not states.refresh("lock", "a", timeout=2)
    assert states.lock_holder("lock") is None
    assert states.acquire("lock", "b", timeout=2)
    assert not states.refresh("lock", "a", timeout=2)
    assert states.lock_holder("lock") == "b"


def test_refresh_works_on_cachelibs_simple_cache() -> None:
    states = StateCache(SimpleCache())
    states.acquire("lock", "a", timeout=30)
    assert states.refresh("lock", "a", timeout=60)
    assert states.lock_holder("lock") == "a"
    assert not states.refresh("lock", "b", timeout=60)


def test_lock_holder_never_comes_from_the_local_tier(cache: BaseCache) -> None:
    states = StateCache(cache, local_timeout=60)
    states.set("key", EXISTS)  # remembered locally
    cache.delete("key")
    assert states.get("key") == EXISTS
    assert states.lock_holder("key") is None  # a lock is always read from the shared cache


# Outage windows ---------------------------------------------------------------------------


@pytest.fixture
def short_outages(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(Outage, "SECONDS", 0.5)
    return 0.5


def test_an_outage_is_inactive_until_a_failure() -> None:
    assert Outage().active is False


def test_the_first_failure_opens_a_window(short_outages: float) -> None:
    outage = Outage()
    assert outage.begin() is True  # warn now
    assert outage.active is True
    assert outage.begin() is False  # the same window: no second warning
    assert outage.active is True


def test_the_window_closes_after_its_seconds(short_outages: float) -> None:
    outage = Outage()
    outage.begin()
    time.sleep(short_outages + 0.05)
    assert outage.active is False
    assert outage.begin() is True  # a new window: warn again
    assert outage.active is True


def test_a_failure_in_the_window_extends_it(short_outages: float) -> None:
    outage = Outage()
    outage.begin()
    time.sleep(0.3)
    assert outage.begin() is False
    time.sleep(0.3)  # 0.6 s after the first failure, 0.3 s after the second
    assert outage.active is True
    time.sleep(0.3)
    assert outage.active is False


def test_the_default_window_is_a_few_seconds() -> None:
    assert 1 <= Outage.SECONDS <= 60


def test_a_state_cache_has_separate_windows_for_unreachable_and_refusing() -> None:
    states = StateCache(SimpleCache())
    assert isinstance(states.unreachable, Outage)
    assert isinstance(states.refusing, Outage)
    assert not states.unreachable.active
    assert not states.refusing.active
    assert states.unreachable.begin()
    assert states.unreachable.active
    assert not states.refusing.active
    assert states.refusing.begin()  # its own window: its own first warning
    other = StateCache(SimpleCache())
    assert not other.unreachable.active  # per state cache, not per process
