"""Tests for flask_imagekit.cachefiles.backends: the Simple backend, its states, async jobs."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import typing as t
import uuid
from pathlib import Path

import pytest
from cachelib import BaseCache, SimpleCache
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from PIL import Image
from sqlalchemy import String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.cachefiles import ImageCacheFile, LazyGeneratedImageFile
from flask_imagekit.cachefiles.backends import CacheFileState, Simple
from flask_imagekit.exceptions import GenerationError, StorageError
from flask_imagekit.globals import current_state
from flask_imagekit.jobs import job_payload, run_job
from flask_imagekit.models import ImageSpecField
from flask_imagekit.processors import ResizeToFill
from flask_imagekit.storage import FileSystemStorage

from .conftest import (
    FakeClock,
    PreciseCache,
    Recorder,
    count_calls,
    photo,
    run_together,
    save_source,
)

SOURCE = "photos/bulldog.jpg"
LOGGER = "flask_imagekit.cachefiles.backends"


# Helpers ----------------------------------------------------------------------------


class Thumb(ImageSpec):
    processors = [ResizeToFill(100, 50)]
    format = "JPEG"


_count_lock = threading.Lock()


class CountingThumb(ImageSpec):
    """Counts its generations; sleeps inside generate() to widen races."""

    processors = [ResizeToFill(40, 30)]
    format = "JPEG"
    generations: t.ClassVar[list[int]] = []
    delay: t.ClassVar[float] = 0.2
    #: (cache, key) whose value is recorded at each generation.
    watch: t.ClassVar[tuple[t.Any, str] | None] = None
    seen_lock_values: t.ClassVar[list[t.Any]] = []

    def generate(self) -> t.Any:
        with _count_lock:
            type(self).generations.append(threading.get_ident())
        if CountingThumb.watch is not None:
            cache, key = CountingThumb.watch
            CountingThumb.seen_lock_values.append(cache.get(key))
        time.sleep(type(self).delay)
        return super().generate()


@pytest.fixture(autouse=True)
def _reset_counting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CountingThumb, "generations", [])
    monkeypatch.setattr(CountingThumb, "seen_lock_values", [])
    monkeypatch.setattr(CountingThumb, "watch", None)


class Flaky:
    """A processor that fails while ``Flaky.fail`` is true (not part of the hash)."""

    fail: t.ClassVar[bool] = True
    lock_seen: t.ClassVar[list[t.Any]] = []
    watch: t.ClassVar[tuple[t.Any, str] | None] = None

    def process(self, img: Image.Image) -> Image.Image:
        if Flaky.watch is not None:
            cache, key = Flaky.watch
            Flaky.lock_seen.append(cache.get(key))
        if Flaky.fail:
            msg = "processor exploded"
            raise RuntimeError(msg)
        return img


class FlakyThumb(ImageSpec):
    processors = [Flaky(), ResizeToFill(40, 30)]
    format = "JPEG"


class Abort(BaseException):
    """Like KeyboardInterrupt, without upsetting pytest."""


class AbortingThumb(Thumb):
    abort: t.ClassVar[bool] = True

    def generate(self) -> t.Any:
        if AbortingThumb.abort:
            raise Abort
        return super().generate()


def make_app(media_root: Path, name: str = "app", debug: bool = False, **config: t.Any) -> Flask:
    app = Flask(name, instance_path=str(media_root.parent / f"{name}-instance"))
    app.debug = debug
    app.config.update(TESTING=True, IMAGEKIT_MEDIA_ROOT=str(media_root), **config)
    return app


def int_backend() -> Simple:
    """A Simple backend with whole-second timeouts, which every cachelib cache takes."""
    return Simple(missing_timeout=1, lock_timeout=30)


def noop(file: ImageCacheFile) -> None:
    """A strategy callback that does nothing."""


#: A strategy that never generates on access, so bool() just asks the backend.
PASSIVE = {"on_source_saved": noop}


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".tmp-")]


def run_threads(
    apps: list[Flask], n: int, make_file: t.Callable[[], ImageCacheFile]
) -> list[tuple[str, bool, bool]]:
    """Access one cache file from ``n`` threads at once; return what each saw."""
    barrier = threading.Barrier(n)
    results: list[tuple[str, bool, bool]] = []
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            with apps[i % len(apps)].app_context():
                file = make_file()
                barrier.wait(timeout=20)
                url = file.url
                results.append((url, bool(file), os.path.isfile(file.path)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(results) == n
    return results


@pytest.fixture
def source(media_root: Path) -> str:
    return save_source(media_root, SOURCE, photo((160, 120)))


def state_cache() -> BaseCache:
    return current_state().state_cache


# States -----------------------------------------------------------------------------


def test_cache_file_state_values() -> None:
    assert {s.name for s in CacheFileState} == {"EXISTS", "GENERATING", "DOES_NOT_EXIST", "FAILED"}
    assert len({s.value for s in CacheFileState}) == 4


def test_state_is_exists_with_size_after_generation(
    ctx: Flask, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = ImageCacheFile(Thumb(source=source))
    backend = file.cachefile_backend
    assert isinstance(backend, Simple)
    assert backend.get_state(file, check_if_unknown=False) is CacheFileState.DOES_NOT_EXIST
    file.generate()
    assert backend.get_state(file) is CacheFileState.EXISTS
    assert backend.dimensions(file) == (100, 50)
    assert state_cache().get(backend.get_key(file)) is not None
    assert state_cache().get(backend.get_lock_key(file)) is None

    storage = current_state().storage
    calls = count_calls(monkeypatch, storage, "open", "exists", "save", "size")
    fresh = ImageCacheFile(Thumb(source=source))
    assert (fresh.width, fresh.height) == (100, 50)
    assert bool(fresh) is True
    assert fresh.url.endswith(fresh.name)
    assert calls == {}


def test_size_is_read_once_then_remembered(
    ctx: Flask, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = ImageCacheFile(Thumb(source=source))
    file.generate()
    file.cachefile_backend.forget(file)  # e.g. the state cache was flushed
    calls = count_calls(monkeypatch, current_state().storage, "open", "exists", "save")
    first = ImageCacheFile(Thumb(source=source))
    assert first.width == 100
    assert calls["save"] == 0  # found on disk, not regenerated
    assert calls["open"] == 1
    second = ImageCacheFile(Thumb(source=source))
    assert (second.width, second.height) == (100, 50)
    assert calls["open"] == 1
    assert first.cachefile_backend.dimensions(second) == (100, 50)


def test_missing_state_is_cached_for_missing_timeout(
    media_root: Path, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    app = make_app(
        media_root,
        IMAGEKIT_CACHE_BACKEND=PreciseCache(clock),
        IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=Simple(missing_timeout=1),
        IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=PASSIVE,
    )
    ImageKit(app)
    with app.app_context():
        calls = count_calls(monkeypatch, current_state().storage, "exists")
        file = ImageCacheFile(Thumb(source=source))
        backend = file.cachefile_backend
        assert bool(file) is False
        assert calls["exists"] == 1
        assert bool(file) is False
        assert calls["exists"] == 1  # DOES_NOT_EXIST remembered
        assert backend.get_state(file, check_if_unknown=False) is CacheFileState.DOES_NOT_EXIST
        # The file appears behind the backend's back: seen once the TTL is over.
        ImageCacheFile(
            Thumb(source=source),
            storage=FileSystemStorage(media_root),
            cachefile_backend=Simple(cache=PreciseCache()),
        ).generate()
        clock.advance(0.5)
        assert bool(file) is False
        assert calls["exists"] == 1
        clock.advance(0.6)
        assert bool(file) is True
        assert calls["exists"] == 2
        assert bool(file) is True
        assert calls["exists"] == 2  # EXISTS is kept


def test_default_backend_works_with_a_cachelib_cache_without_warnings(
    ctx: Flask, source: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    file = ImageCacheFile(Thumb(source=source))
    file.generate()
    missing = ImageCacheFile(Thumb(source="photos/none.jpg"), cachefile_strategy=PASSIVE)
    assert bool(missing) is False
    assert [r.getMessage() for r in caplog.records] == []


def test_state_timeout_setting_expires_exists(
    media_root: Path, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    app = make_app(
        media_root,
        IMAGEKIT_CACHE_BACKEND=PreciseCache(clock),
        IMAGEKIT_CACHE_TIMEOUT=10,
        IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=PASSIVE,
    )
    ImageKit(app)
    with app.app_context():
        ImageCacheFile(Thumb(source=source)).generate()
        calls = count_calls(monkeypatch, current_state().storage, "exists")
        file = ImageCacheFile(Thumb(source=source))
        clock.advance(9)
        assert bool(file) is True
        assert calls["exists"] == 0
        clock.advance(2)
        assert bool(file) is True
        assert calls["exists"] == 1


def test_exists_is_kept_forever_by_default(
    media_root: Path, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    app = make_app(media_root, IMAGEKIT_CACHE_BACKEND=PreciseCache(clock))
    ImageKit(app)
    with app.app_context():
        ImageCacheFile(Thumb(source=source)).generate()
        calls = count_calls(monkeypatch, current_state().storage, "exists")
        clock.advance(10 * 365 * 24 * 3600)
        assert bool(ImageCacheFile(Thumb(source=source))) is True
        assert calls == {}


def test_keys_use_the_prefix_and_stay_short(media_root: Path) -> None:
    app = make_app(media_root, IMAGEKIT_CACHE_PREFIX="myapp-ik:")
    ImageKit(app)
    with app.app_context():
        backend = Simple()
        a = ImageCacheFile(Thumb(source="a.jpg"))
        b = ImageCacheFile(Thumb(source="b.jpg"))
        keys = {backend.get_key(a), backend.get_lock_key(a), backend.get_key(b)}
        assert len(keys) == 3
        assert all(k.startswith("myapp-ik:") for k in keys)
        long_a = ImageCacheFile(Thumb(source="d/" + "x" * 240 + "a.jpg"))
        long_b = ImageCacheFile(Thumb(source="d/" + "x" * 240 + "b.jpg"))
        long_keys = [
            backend.get_key(long_a),
            backend.get_key(long_b),
            backend.get_lock_key(long_a),
        ]
        assert len(set(long_keys)) == 3
        assert all(len(k) <= 250 and k.startswith("myapp-ik:") for k in long_keys)


# One generation at a time ------------------------------------------------------------


def test_threads_generate_a_cold_file_once(ctx: Flask, source: str, media_root: Path) -> None:
    results = run_threads([ctx], 8, lambda: ImageCacheFile(CountingThumb(source=source)))
    assert len(CountingThumb.generations) == 1
    assert {r[0] for r in results} == {results[0][0]}
    assert all(ok and on_disk for _, ok, on_disk in results)
    assert temp_files(media_root) == []


def test_two_apps_sharing_a_state_cache_generate_once(media_root: Path, source: str) -> None:
    # Two apps = two storage objects, so only the state cache lock can serialise them
    # (the in-process lock is per storage): a stand-in for two processes.
    shared = PreciseCache()
    apps = [make_app(media_root, f"app{i}", IMAGEKIT_CACHE_BACKEND=shared) for i in range(2)]
    for app in apps:
        ImageKit(app)
    results = run_threads(apps, 8, lambda: ImageCacheFile(CountingThumb(source=source)))
    assert len(CountingThumb.generations) == 1
    assert all(ok and on_disk for _, ok, on_disk in results)


def test_two_apps_sharing_a_cachelib_cache_generate_once(media_root: Path, source: str) -> None:
    shared = SimpleCache()
    apps = [make_app(media_root, f"app{i}", IMAGEKIT_CACHE_BACKEND=shared) for i in range(2)]
    for app in apps:
        ImageKit(app)
    run_threads(apps, 8, lambda: ImageCacheFile(CountingThumb(source=source)))
    assert len(CountingThumb.generations) == 1


def redis_config(url: str) -> dict[str, t.Any]:
    return {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": url}


@pytest.mark.redis
def test_threads_generate_once_with_redis_state(
    media_root: Path, source: str, redis_url: str
) -> None:
    app = make_app(media_root, IMAGEKIT_CACHE_BACKEND=redis_config(redis_url))
    ImageKit(app)
    results = run_threads([app], 8, lambda: ImageCacheFile(CountingThumb(source=source)))
    assert len(CountingThumb.generations) == 1
    assert all(ok and on_disk for _, ok, on_disk in results)
    with app.app_context():
        file = ImageCacheFile(CountingThumb(source=source))
        backend = file.cachefile_backend
        assert backend.get_state(file, check_if_unknown=False) is CacheFileState.EXISTS
        assert state_cache().get(backend.get_lock_key(file)) is None


@pytest.mark.redis
def test_two_apps_sharing_redis_generate_once(
    media_root: Path, source: str, redis_url: str
) -> None:
    apps = [
        make_app(
            media_root,
            f"app{i}",
            IMAGEKIT_CACHE_BACKEND=redis_config(redis_url),
            IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=int_backend(),
        )
        for i in range(2)
    ]
    for app in apps:
        ImageKit(app)
    results = run_threads(apps, 8, lambda: ImageCacheFile(CountingThumb(source=source)))
    assert len(CountingThumb.generations) == 1
    assert all(ok and on_disk for _, ok, on_disk in results)


CHILD = r"""
import json, os, sys, threading, time

media_root, redis_url, log_path, ready_path, go_path, n_threads = sys.argv[1:7]
n_threads = int(n_threads)

from flask import Flask
from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.cachefiles import ImageCacheFile
from flask_imagekit.processors import ResizeToFill


class CountingThumb(ImageSpec):
    processors = [ResizeToFill(40, 30)]
    format = "JPEG"

    def generate(self):
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"%d\n" % os.getpid())
        finally:
            os.close(fd)
        time.sleep(0.3)
        return super().generate()


app = Flask("child", instance_path=os.path.abspath(ready_path + "-instance"))
app.config.update(
    IMAGEKIT_MEDIA_ROOT=media_root,
    IMAGEKIT_CACHE_BACKEND={"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": redis_url},
)
ImageKit(app)
barrier = threading.Barrier(n_threads)
results, errors = [], []


def work():
    try:
        with app.app_context():
            file = ImageCacheFile(CountingThumb(source="photos/bulldog.jpg"))
            barrier.wait(timeout=30)
            url = file.url
            results.append({"name": file.name, "url": url, "bool": bool(file),
                            "on_disk": os.path.isfile(file.path)})
    except BaseException as exc:
        errors.append(repr(exc))


threads = [threading.Thread(target=work) for _ in range(n_threads)]
open(ready_path, "w").close()
deadline = time.monotonic() + 30
while not os.path.exists(go_path):
    if time.monotonic() > deadline:
        sys.exit("no go signal")
    time.sleep(0.002)
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
json.dump({"results": results, "errors": errors}, sys.stdout)
"""


class Thumb40(ImageSpec):
    processors = [ResizeToFill(40, 30)]
    format = "JPEG"


@pytest.mark.redis
def test_two_processes_generate_a_cold_file_once(
    media_root: Path, source: str, redis_url: str, tmp_path: Path, ctx: Flask
) -> None:
    log = tmp_path / "generations.log"
    outputs = run_together(tmp_path, CHILD, [str(media_root), redis_url, str(log)], "4")
    for out in outputs:
        report = json.loads(out)
        assert report["errors"] == []
        assert len(report["results"]) == 4
        for result in report["results"]:
            assert result["bool"]
            assert result["on_disk"]
    assert len(log.read_text().splitlines()) == 1
    expected = ImageCacheFile(Thumb40(source=source)).name
    names = {r["name"] for out in outputs for r in json.loads(out)["results"]}
    assert names == {expected}
    assert (media_root / expected).is_file()
    assert temp_files(media_root) == []


# Failures ---------------------------------------------------------------------------


@pytest.fixture(params=["precise", "redis"])
def lock_app(request: pytest.FixtureRequest, media_root: Path) -> t.Iterator[Flask]:
    """An app whose backend really takes its lock in the state cache."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        cache_setting: t.Any = redis_config(url)
    else:
        cache_setting = PreciseCache()
    app = make_app(
        media_root,
        IMAGEKIT_CACHE_BACKEND=cache_setting,
        IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=int_backend(),
    )
    ImageKit(app)
    with app.app_context():
        yield app


def assert_clean_state(file: ImageCacheFile) -> None:
    backend = file.cachefile_backend
    cache = state_cache()
    assert cache.get(backend.get_lock_key(file)) is None
    raw = cache.get(backend.get_key(file))
    state = backend.get_state(file, check_if_unknown=False)
    # A failure on the source or a processor is remembered for a while (FAILED).
    assert state in (CacheFileState.DOES_NOT_EXIST, CacheFileState.FAILED), raw
    assert state not in (CacheFileState.GENERATING, CacheFileState.EXISTS)


def test_failing_processor_leaves_nothing_behind(
    lock_app: Flask, source: str, media_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Flaky, "fail", True)
    monkeypatch.setattr(Flaky, "lock_seen", [])
    file = ImageCacheFile(FlakyThumb(source=source))
    backend = file.cachefile_backend
    monkeypatch.setattr(Flaky, "watch", (state_cache(), backend.get_lock_key(file)))
    with pytest.raises(GenerationError, match="processor exploded"):
        file.generate()
    assert Flaky.lock_seen  # the processor ran ...
    assert Flaky.lock_seen[0] is not None  # ... while the lock was held
    assert not (media_root / file.name).exists()
    assert temp_files(media_root) == []
    assert_clean_state(file)
    with pytest.raises(GenerationError):
        _ = file.url  # JustInTime tries again, and fails again
    assert_clean_state(file)

    monkeypatch.setattr(Flaky, "fail", False)
    file.generate()
    assert (media_root / file.name).is_file()
    assert backend.get_state(file) is CacheFileState.EXISTS
    assert state_cache().get(backend.get_lock_key(file)) is None
    assert (file.width, file.height) == (40, 30)


def test_interrupted_generation_leaves_nothing_behind(
    lock_app: Flask, source: str, media_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(AbortingThumb, "abort", True)
    file = ImageCacheFile(AbortingThumb(source=source))
    with pytest.raises(Abort):
        file.generate()
    assert not (media_root / file.name).exists()
    assert_clean_state(file)
    monkeypatch.setattr(AbortingThumb, "abort", False)
    assert file.url.endswith(file.name)
    assert (media_root / file.name).is_file()


def test_failing_storage_save_leaves_nothing_behind(
    lock_app: Flask, source: str, media_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = current_state().storage

    def broken_save(name: str, content: t.Any, **kw: t.Any) -> str:
        msg = "disk full"
        raise StorageError(msg)

    monkeypatch.setattr(storage, "save", broken_save)
    file = ImageCacheFile(Thumb(source=source))
    with pytest.raises(StorageError, match="disk full"):
        file.generate()
    assert_clean_state(file)
    monkeypatch.undo()
    file.generate()
    assert (media_root / file.name).is_file()


def test_missing_source_leaves_nothing_behind(lock_app: Flask, media_root: Path) -> None:
    from flask_imagekit.exceptions import MissingSource

    file = ImageCacheFile(Thumb(source="photos/gone.jpg"))
    with pytest.raises(MissingSource):
        file.generate()
    assert_clean_state(file)
    assert not (media_root / "CACHE").exists() or list((media_root / "CACHE").rglob("*.jpg")) == []


# Locks ------------------------------------------------------------------------------


def test_abandoned_lock_expires_then_the_file_is_generated(
    media_root: Path, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = PreciseCache()
    app = make_app(
        media_root,
        IMAGEKIT_CACHE_BACKEND=cache,
        IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=Simple(lock_timeout=0.5),
    )
    ImageKit(app)
    monkeypatch.setattr(CountingThumb, "delay", 0.0)
    with app.app_context():
        file = ImageCacheFile(CountingThumb(source=source))
        backend = file.cachefile_backend
        lock_key = backend.get_lock_key(file)
        monkeypatch.setattr(CountingThumb, "watch", (cache, lock_key))
        # A process took the lock and died.
        assert cache.add(lock_key, "dead-process", timeout=0.5)
        assert backend.get_state(file) is CacheFileState.GENERATING
        start = time.monotonic()
        _ = file.url
        elapsed = time.monotonic() - start
    assert 0.4 <= elapsed < 3
    assert len(CountingThumb.generations) == 1
    assert CountingThumb.seen_lock_values[0] not in (None, "dead-process")  # its own lock
    assert cache.get(lock_key) is None
    assert (media_root / file.name).is_file()


@pytest.mark.redis
def test_abandoned_lock_expires_with_redis(
    media_root: Path, source: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(
        media_root,
        IMAGEKIT_CACHE_BACKEND=redis_config(redis_url),
        IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=Simple(missing_timeout=1, lock_timeout=1),
    )
    ImageKit(app)
    monkeypatch.setattr(CountingThumb, "delay", 0.0)
    with app.app_context():
        cache = state_cache()
        file = ImageCacheFile(CountingThumb(source=source))
        lock_key = file.cachefile_backend.get_lock_key(file)
        monkeypatch.setattr(CountingThumb, "watch", (cache, lock_key))
        assert cache.add(lock_key, "dead-process", timeout=1)
        start = time.monotonic()
        file.generate()
        elapsed = time.monotonic() - start
        assert cache.get(lock_key) is None
    assert 0.5 <= elapsed < 4
    assert len(CountingThumb.generations) == 1
    assert CountingThumb.seen_lock_values[0] not in (None, "dead-process")
    assert (media_root / file.name).is_file()


def test_abandoned_lock_is_respected_with_a_cachelib_cache(
    media_root: Path, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(media_root, IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=Simple(lock_timeout=0.5))
    ImageKit(app)
    monkeypatch.setattr(CountingThumb, "delay", 0.0)
    with app.app_context():
        cache = state_cache()
        file = ImageCacheFile(CountingThumb(source=source))
        lock_key = file.cachefile_backend.get_lock_key(file)
        monkeypatch.setattr(CountingThumb, "watch", (cache, lock_key))
        assert cache.add(lock_key, "dead-process", timeout=1)
        file.generate()
    assert CountingThumb.seen_lock_values == [CountingThumb.seen_lock_values[0]]
    assert CountingThumb.seen_lock_values[0] not in (None, "dead-process")


def test_waiter_uses_the_file_another_process_generated(
    media_root: Path, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = PreciseCache()
    app = make_app(
        media_root,
        IMAGEKIT_CACHE_BACKEND=cache,
        IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=Simple(lock_timeout=5),
    )
    ImageKit(app)
    with app.app_context():
        file = ImageCacheFile(CountingThumb(source=source))
        backend = file.cachefile_backend
        lock_key = backend.get_lock_key(file)
        # "Another process": its own storage object and its own backend.
        other = ImageCacheFile(
            Thumb40(source=source),
            storage=FileSystemStorage(media_root),
            cachefile_backend=Simple(cache=PreciseCache()),
        )
        assert other.name == file.name
        assert cache.add(lock_key, "other-process", timeout=5)

    def other_process() -> None:
        time.sleep(0.3)
        with app.app_context():
            other.generate()  # writes the file (its own state cache)
            backend.set_state(file, CacheFileState.EXISTS, (40, 30))
            cache.delete(lock_key)

    thread = threading.Thread(target=other_process)
    thread.start()
    try:
        with app.app_context():
            start = time.monotonic()
            file.generate()
            elapsed = time.monotonic() - start
    finally:
        thread.join()
    assert 0.2 <= elapsed < 4
    assert CountingThumb.generations == []  # it waited and used the other's result
    assert (media_root / file.name).is_file()


def test_stale_exists_state_and_force(
    ctx: Flask, source: str, media_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = ImageCacheFile(Thumb(source=source))
    file.generate()
    path = media_root / file.name
    path.unlink()  # deleted behind the backend's back
    backend = file.cachefile_backend
    assert backend.get_state(file) is CacheFileState.EXISTS
    calls = count_calls(monkeypatch, current_state().storage, "exists", "save")
    file.generate()  # trusts the state: no storage call, nothing written
    assert calls == {}
    assert not path.exists()
    file.generate(force=True)
    assert path.is_file()
    assert calls["save"] == 1
    with Image.open(path) as img:
        assert img.size == (100, 50)
    assert backend.get_state(file) is CacheFileState.EXISTS
    assert state_cache().get(backend.get_lock_key(file)) is None


def test_forget_makes_the_backend_ask_the_storage_again(
    ctx: Flask, source: str, media_root: Path
) -> None:
    file = ImageCacheFile(Thumb(source=source))
    file.generate()
    (media_root / file.name).unlink()
    file.cachefile_backend.forget(file)
    assert bool(ImageCacheFile(Thumb(source=source))) is True  # JustInTime regenerates
    assert (media_root / file.name).is_file()


# Unreachable state cache ---------------------------------------------------------------


def test_unreachable_state_cache_generates_inline_with_a_warning(
    media_root: Path, source: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(
        media_root,
        IMAGEKIT_CACHE_BACKEND=redis_config("redis://127.0.0.1:1/0"),
        IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=int_backend(),
    )
    ImageKit(app)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    with app.app_context():
        file = ImageCacheFile(Thumb(source=source))
        url = file.url
        assert url == "/media/" + file.name
        assert (media_root / file.name).is_file()
        assert bool(file) is True
        assert (file.width, file.height) == (100, 50)
    warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert warnings
    assert any(
        "state cache" in r.getMessage() and "connect" in r.getMessage().lower() for r in warnings
    )


def test_unreachable_state_cache_still_generates_once_per_process(
    media_root: Path, source: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(
        media_root,
        IMAGEKIT_CACHE_BACKEND=redis_config("redis://127.0.0.1:1/0"),
        IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=int_backend(),
    )
    ImageKit(app)
    caplog.set_level(logging.ERROR, logger=LOGGER)
    results = run_threads([app], 8, lambda: ImageCacheFile(CountingThumb(source=source)))
    assert len(CountingThumb.generations) == 1
    assert all(ok and on_disk for _, ok, on_disk in results)


# Async backends: what travels to a worker ------------------------------------------------


def test_rows_with_uuid_keys_travel_to_workers(
    db_app: tuple[Flask, SQLAlchemy], media_root: Path
) -> None:
    app, db = db_app
    backend = Recorder()
    app.config.update(SECRET_KEY="test", IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=backend)

    class Item(db.Model):  # type: ignore[name-defined,misc]
        id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
        picture: Mapped[str | None] = mapped_column(String(255))
        thumb = ImageSpecField(source="picture", processors=[ResizeToFill(8, 8)], format="JPEG")

    ImageKit(app, db=db)
    save_source(media_root, "a.jpg")
    with app.app_context():
        db.create_all()
        item = Item(picture="a.jpg")
        db.session.add(item)
        db.session.commit()
        assert item.thumb.url  # JustInTime enqueues: the payload must be JSON
        payload = json.loads(json.dumps(backend.sent[-1]))
        key = {"uuid": str(item.id)}
        assert payload["source"]["model"] == {"entity": "Item", "identity": [key]}
        db.session.remove()
        assert run_job(payload) == "generated"


def test_job_for_a_vanished_source_is_not_enqueued_again_at_once(
    app: Flask, media_root: Path
) -> None:
    backend = Recorder()
    app.config.update(SECRET_KEY="test", IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=backend)
    imagekit = ImageKit(app)
    imagekit.register.generator("review:thumb", Thumb40)
    with app.app_context():
        file = LazyGeneratedImageFile("review:thumb", source="gone.jpg")
        assert not file
        assert len(backend.sent) == 1
        assert run_job(backend.sent[0]) == "missing"
        for _ in range(5):
            assert not LazyGeneratedImageFile("review:thumb", source="gone.jpg")
        assert len(backend.sent) == 1  # remembered as missing: no job per page view
        state = backend.get_state(file, check_if_unknown=False)
        assert state is CacheFileState.DOES_NOT_EXIST
        assert job_payload(file)["source"]["name"] == "gone.jpg"


class ClockedThumb(Thumb):
    """Moves a fake clock a second into its generation, then records the lock there."""

    clock: t.ClassVar[FakeClock | None] = None
    watch: t.ClassVar[tuple[t.Any, str] | None] = None
    seen: t.ClassVar[list[t.Any]] = []

    def generate(self) -> t.Any:
        assert ClockedThumb.clock is not None
        assert ClockedThumb.watch is not None
        ClockedThumb.clock.advance(1.0)
        cache, key = ClockedThumb.watch
        ClockedThumb.seen.append(cache.get(key))
        return super().generate()


def test_worker_taking_over_a_lock_about_to_expire_extends_it(
    media_root: Path, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    cache = PreciseCache(clock)
    app = make_app(
        media_root,
        IMAGEKIT_CACHE_BACKEND=cache,
        IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=Simple(lock_timeout=30),
    )
    ImageKit(app)
    monkeypatch.setattr(ClockedThumb, "clock", clock)
    monkeypatch.setattr(ClockedThumb, "seen", [])
    with app.app_context():
        file = ImageCacheFile(ClockedThumb(source=source))
        backend = file.cachefile_backend
        lock_key = backend.get_lock_key(file)
        monkeypatch.setattr(ClockedThumb, "watch", (cache, lock_key))
        # The worker picks the job up when the scheduler's lock has half a second
        # left; the heartbeat's first renewal is seconds away.
        assert cache.add(lock_key, "scheduler-token", timeout=30)
        clock.advance(29.5)
        assert backend.generate_now(file, token="scheduler-token")
    # A second into the job the lock is still the scheduler's: taken over, not lapsed.
    assert ClockedThumb.seen == ["scheduler-token"]
    assert cache.get(lock_key) is None  # released at the end
