"""Generation on real Celery and RQ workers, with cache file states in Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import pytest
from flask import Flask

from flask_imagekit.cachefiles import ImageCacheFile, LazyGeneratedImageFile
from flask_imagekit.cachefiles.backends import CacheFileState
from flask_imagekit.extension import current_state
from flask_imagekit.jobs import job_payload, run_job
from flask_imagekit.statecache import StateCache

from .conftest import photo, save_source

pytestmark = pytest.mark.redis

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture
def async_env(redis_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    media = tmp_path / "media"
    for index in range(3):
        save_source(media, f"pics/p{index}.jpg", photo((400 + index, 300)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IK_", "FLASK_"))}
    env.update(
        IK_MEDIA=str(media),
        IK_REDIS=redis_url,
        IK_QUEUE=f"ik-{request.node.name}"[:60],
        IK_BACKEND="rq",
        PYTHONPATH=str(REPO),
        FLASK_APP="tests.asyncapp:create_app",
    )
    env.pop("PYTHONWARNINGS", None)
    return env


def load_app(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Flask:
    for key, value in env.items():
        if key.startswith("IK_"):
            monkeypatch.setenv(key, value)
    from .asyncapp import create_app

    return create_app()


def rq_burst(
    env: dict[str, str], timeout: float = 60, worker_class: str | None = None
) -> subprocess.CompletedProcess[str]:
    extra = ["--worker-class", worker_class] if worker_class else []
    return subprocess.run(
        [
            str(BIN / "rq"),
            "worker",
            "--burst",
            "--url",
            env["IK_REDIS"],
            "--serializer",
            "json",
            *extra,
            env["IK_QUEUE"],
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_for(predicate: t.Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_rq_worker_generates_what_a_page_view_enqueued(
    async_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = load_app(async_env, monkeypatch)
    with app.app_context():
        file = LazyGeneratedImageFile("async:thumb", source="pics/p0.jpg")
        assert not file  # JustInTime enqueued the job; the file does not exist yet
        url = file.url  # a second access does not enqueue it twice
        backend = file.cachefile_backend
        assert backend.get_state(file) is CacheFileState.GENERATING
        queue = backend.queue
        assert queue.count == 1
        job = queue.jobs[0]
        assert job.func_name == "flask_imagekit.jobs.rq_generate"
        payload = job.args[0]
        json.dumps(payload)  # JSON-safe, no pickled objects
        assert payload["generator_id"] == "async:thumb"
        assert payload["source"]["name"] == "pics/p0.jpg"

    result = rq_burst(async_env)
    assert result.returncode == 0, result.stderr

    with app.app_context():
        file = LazyGeneratedImageFile("async:thumb", source="pics/p0.jpg")
        assert file.url == url
        assert file  # EXISTS now, set by the worker in the shared state
        assert (file.width, file.height) == (60, 40)
        assert Path(file.path).is_file()


@pytest.mark.parametrize(
    ("worker_class", "loads"),
    [
        ("flask_imagekit.rqworker.Worker", 1),
        ("flask_imagekit.rqworker.SimpleWorker", 1),
        (None, 3),  # RQ's own worker builds the app again in every work horse
    ],
)
def test_rq_workers_that_load_the_app_once(
    async_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    worker_class: str | None,
    loads: int,
) -> None:
    app = load_app(async_env, monkeypatch)
    with app.app_context():
        files = [LazyGeneratedImageFile("async:thumb", source=f"pics/p{i}.jpg") for i in range(3)]
        for file in files:
            assert file.cachefile_backend.enqueue(file)
    log = tmp_path / "loads.txt"
    result = rq_burst(dict(async_env, IK_LOAD_LOG=str(log)), worker_class=worker_class)
    assert result.returncode == 0, result.stderr
    assert len(log.read_text().split()) == loads
    with app.app_context():
        for file in files:
            assert Path(file.path).is_file()


def test_duplicate_and_late_jobs_are_no_ops(
    async_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = load_app(async_env, monkeypatch)
    with app.app_context():
        file = LazyGeneratedImageFile("async:thumb", source="pics/p1.jpg")
        payload = job_payload(file)
        assert run_job(payload) == "generated"
        mtime = Path(file.path).stat().st_mtime_ns
        assert run_job(payload) == "exists"
        assert run_job(job_payload(file)) == "exists"
        assert Path(file.path).stat().st_mtime_ns == mtime


def test_job_for_a_vanished_source_is_logged_not_retried(
    async_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = load_app(async_env, monkeypatch)
    with app.app_context():
        file = LazyGeneratedImageFile("async:thumb", source="pics/gone.jpg")
        backend = file.cachefile_backend
        assert backend.enqueue(file)
        payload = backend.queue.jobs[0].args[0]
        assert run_job(payload) == "missing"
        assert "pics/gone.jpg" in caplog.text
        # The lock the scheduler took is released: the state is not stuck.
        assert backend.get_state(file, check_if_unknown=False) is not CacheFileState.GENERATING


def test_celery_worker_generates_enqueued_files_from_the_cli(
    async_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = dict(async_env, IK_BACKEND="celery")
    app = load_app(env, monkeypatch)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["imagekit", "generate", "--enqueue"])
    assert result.exit_code == 0, result.output
    assert "Enqueued 3 files, 0 already there, 0 failed." in result.output
    worker = subprocess.Popen(
        [
            str(BIN / "celery"),
            "-A",
            "tests.asyncapp.worker",
            "worker",
            "--pool",
            "solo",
            "--concurrency",
            "1",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "-Q",
            env["IK_QUEUE"],
            "--loglevel",
            "WARNING",
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with app.app_context():
            files = [
                LazyGeneratedImageFile("async:thumb", source=f"pics/p{i}.jpg") for i in range(3)
            ]
            wait_for(
                lambda: all(Path(current_state().media_root, f.name).is_file() for f in files)
            )
            wait_for(lambda: all(bool(f) for f in files))
            assert [(f.width, f.height) for f in files] == [(60, 40)] * 3
        again = runner.invoke(args=["imagekit", "generate", "--enqueue"])
        assert "Enqueued 0 files, 3 already there, 0 failed." in again.output
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=30)
    assert "Traceback" not in output, output


def test_enqueue_needs_an_async_backend(ctx: Flask, media_root: Path) -> None:
    imagekit = ctx.extensions["imagekit"]

    class Group:
        def files(self) -> t.Iterator[str]:
            yield save_source(media_root, "a.jpg")

    from .asyncapp import Thumb

    imagekit.register.generator("sync:thumb", Thumb)
    imagekit.register.source_group("sync:thumb", Group())
    result = ctx.test_cli_runner().invoke(args=["imagekit", "generate", "--enqueue"])
    assert result.exit_code == 1
    assert "--enqueue needs an async cache file backend" in result.output


def test_killed_worker_leaves_a_lock_that_expires(
    async_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mark = tmp_path / "generating"
    env = dict(async_env, IK_LOCK_TIMEOUT="2", IK_SLOW="30", IK_SLOW_MARK=str(mark))
    app = load_app(env, monkeypatch)
    with app.app_context():
        file = LazyGeneratedImageFile("async:slow", source="pics/p2.jpg")
        backend = file.cachefile_backend
        assert backend.enqueue(file)
        lock_key = backend.get_lock_key(file)
    worker = subprocess.Popen(
        [str(BIN / "rq"), "worker", "--url", env["IK_REDIS"], "-S", "json", env["IK_QUEUE"]],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    import redis

    client = redis.Redis.from_url(env["IK_REDIS"])
    try:
        # The work horse took the job up and generates under the lock it took over
        # (it loads the app first: slow on a busy machine).
        wait_for(mark.exists, timeout=60)
        with app.app_context():
            assert not backend.is_queued(file)
        horses = children_of(worker.pid)
        assert horses, "the job should be running in a work horse"
        for pid in [worker.pid, *horses]:  # the worker and its work horse, mid-job
            os.kill(pid, signal.SIGKILL)
        with app.app_context():
            states = current_state().states
            # Looked at before reaping the worker: the lock lives 1-2 s once unrenewed.
            assert states.lock_holder(lock_key) is not None  # left behind by the dead job
        worker.communicate(timeout=10)
        with app.app_context():
            assert not Path(current_state().media_root, file.name).exists()
            wait_for(lambda: states.lock_holder(lock_key) is None, timeout=10)
            # After the lock expired, the next request schedules it again.
            monkeypatch.setenv("IK_SLOW", "0")
            file = LazyGeneratedImageFile("async:slow", source="pics/p2.jpg")
            assert not file
            assert backend.queue.count == 1
        result = rq_burst(dict(env, IK_SLOW="0"))
        assert result.returncode == 0, result.stderr
        with app.app_context():
            file = LazyGeneratedImageFile("async:slow", source="pics/p2.jpg")
            assert file
            assert (file.width, file.height) == (30, 30)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.communicate()
        client.close()


def children_of(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def test_redis_lock_is_taken_with_its_expiry_in_one_step(redis_url: str) -> None:
    from cachelib import RedisCache

    cache = RedisCache(
        host=redis_url.rsplit("/", 1)[0].removeprefix("redis://").split(":")[0],
        port=6379,
        db=15,
        key_prefix="t:",
    )
    states = StateCache(cache)
    assert states.acquire("lock:a", "token-1", timeout=30)
    assert not states.acquire("lock:a", "token-2", timeout=30)
    ttl = cache._write_client.ttl("t:lock:a")
    assert 0 < ttl <= 30  # never a lock without expiry
    states.release("lock:a", "token-2")  # not the holder: nothing happens
    assert states.lock_holder("lock:a") == "token-1"
    states.release("lock:a", "token-1")
    assert states.lock_holder("lock:a") is None


def test_local_tier_saves_redis_round_trips(
    redis_url: str, app: Flask, media_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flask_imagekit import ImageKit

    from .asyncapp import Thumb

    app.config["IMAGEKIT_CACHE_BACKEND"] = {
        "CACHE_TYPE": "RedisCache",
        "CACHE_REDIS_URL": redis_url,
    }
    ImageKit(app)
    save_source(media_root, "pics/p0.jpg")
    with app.app_context():
        ImageCacheFile(Thumb(source="pics/p0.jpg")).generate()
        remote = current_state().state_cache
        calls = {"get": 0}
        original = remote.get

        def counting(key: str) -> t.Any:
            calls["get"] += 1
            return original(key)

        monkeypatch.setattr(remote, "get", counting)
        for _ in range(20):
            file = ImageCacheFile(Thumb(source="pics/p0.jpg"))
            assert file.url
            assert (file.width, file.height) == (60, 40)
        assert calls["get"] == 0  # generation put EXISTS in the local tier too

        current_state().states._local.clear()
        for _ in range(20):
            assert ImageCacheFile(Thumb(source="pics/p0.jpg")).url
        assert calls["get"] == 1  # one round trip, then local hits
