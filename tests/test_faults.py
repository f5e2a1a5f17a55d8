"""Faults and races with real Redis state and real processes.

Many readers of one cold file, a storage that dies half way through a write, a
generating process killed with SIGKILL, a state that lies about a deleted file,
and an unreachable Redis.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import typing as t
from pathlib import Path

import pytest
from flask import Flask

from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.cachefiles import ImageCacheFile
from flask_imagekit.cachefiles.backends import CacheFileState, Simple
from flask_imagekit.exceptions import StorageError
from flask_imagekit.globals import current_state
from flask_imagekit.processors import ResizeToFill
from flask_imagekit.storage import FileSystemStorage

from .conftest import photo, save_source

REPO = Path(__file__).resolve().parents[1]


class Thumb(ImageSpec):
    processors = [ResizeToFill(80, 60)]
    format = "JPEG"


def redis_state(url: str) -> dict[str, str]:
    return {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": url}


# Many readers, one cold file -------------------------------------------------------------

READERS_CHILD = """
import json, os, sys, threading, time
sys.path.insert(0, {repo!r})
from flask import Flask
from PIL import Image
from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.cachefiles import ImageCacheFile
from flask_imagekit.processors import ResizeToFill

log = {log!r}

class Counted(ImageSpec):
    processors = [ResizeToFill(400, 300)]
    format = "PNG"

    def generate(self):
        with open(log, "a") as fp:
            fp.write(f"{{os.getpid()}}\\n")
        return super().generate()

app = Flask("child")
app.config.update(
    IMAGEKIT_MEDIA_ROOT={media!r},
    IMAGEKIT_CACHE_BACKEND={{"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": {redis!r}}},
)
ImageKit(app)
with app.app_context():
    path = ImageCacheFile(Counted(source="pics/big.jpg")).path
barrier = threading.Barrier({threads} + 1)
results, partial = [], []
done = threading.Event()

def ask():
    with app.app_context():
        file = ImageCacheFile(Counted(source="pics/big.jpg"))
        barrier.wait()
        exists = bool(file)
        with Image.open(file.path) as img:
            img.load()
            results.append((exists, img.size))

def watch():
    # Reads the final path over and over while it is being generated.
    barrier.wait()
    while not done.is_set():
        if os.path.exists(path):
            try:
                with Image.open(path) as img:
                    img.load()
            except Exception as exc:
                partial.append(repr(exc))
        time.sleep(0.0005)

while not os.path.exists({go!r}):
    time.sleep(0.005)
workers = [threading.Thread(target=ask) for _ in range({threads})]
watcher = threading.Thread(target=watch)
for thread in [watcher, *workers]:
    thread.start()
for thread in workers:
    thread.join()
done.set()
watcher.join()
print(json.dumps({{"results": results, "partial": partial}}))
"""


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.parametrize("threads", [20, 50])
def test_two_processes_of_many_threads_one_generation_no_partial_reads(
    redis_url: str, tmp_path: Path, threads: int
) -> None:
    media = tmp_path / "media"
    save_source(media, "pics/big.jpg", photo((3000, 2000)))
    log, go, script = tmp_path / "generations.log", tmp_path / "go", tmp_path / "child.py"
    script.write_text(
        READERS_CHILD.format(
            repo=str(REPO),
            log=str(log),
            media=str(media),
            redis=redis_url,
            threads=threads,
            go=str(go),
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    children = [
        subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    threading.Timer(1.0, go.touch).start()
    reports = [json.loads(child.communicate(timeout=120)[0]) for child in children]
    assert [child.returncode for child in children] == [0, 0]
    results = [tuple(entry) for report in reports for entry in report["results"]]
    assert len(results) == 2 * threads
    assert all(exists and tuple(size) == (400, 300) for exists, size in results)
    assert [p for report in reports for p in report["partial"]] == []
    assert len(log.read_text().splitlines()) == 1


# A storage that fails half way through a write --------------------------------------------


class HalfThenFail:
    """File-like content whose second read fails, as a disk filling up would."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.reads = 0

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        if self.reads == 1:
            return self.data[: len(self.data) // 2]
        raise OSError(28, "No space left on device")


class FlakyStorage(FileSystemStorage):
    """Fails every save while ``broken`` is set, after writing half the bytes."""

    broken = True

    def save(self, name: str, content: t.Any, *, overwrite: bool = True) -> str:
        if self.broken:
            data = content if isinstance(content, bytes) else content.read()
            return super().save(name, HalfThenFail(data), overwrite=overwrite)
        return super().save(name, content, overwrite=overwrite)


@pytest.mark.parametrize("state", ["simple", "redis"])
def test_storage_failing_half_way_leaves_nothing_and_the_retry_works(
    app: Flask, media_root: Path, state: str, request: pytest.FixtureRequest
) -> None:
    storage = FlakyStorage(media_root, "/media/")
    app.config["IMAGEKIT_DEFAULT_FILE_STORAGE"] = storage
    if state == "redis":
        app.config["IMAGEKIT_CACHE_BACKEND"] = redis_state(request.getfixturevalue("redis_url"))
    ImageKit(app)
    save_source(media_root, "pics/a.jpg")
    with app.app_context():
        file = ImageCacheFile(Thumb(source="pics/a.jpg"))
        backend = file.cachefile_backend
        with pytest.raises(StorageError, match="No space left"):
            file.generate()
        final = media_root / file.name
        assert not final.exists()
        assert [p.name for p in final.parent.iterdir()] == []  # no temp file either
        states = current_state().states
        assert backend.get_state(file, check_if_unknown=False) is not CacheFileState.EXISTS
        assert states.lock_holder(backend.get_lock_key(file)) is None
        storage.broken = False
        file = ImageCacheFile(Thumb(source="pics/a.jpg"))
        assert file.url
        assert (file.width, file.height) == (80, 60)
        assert final.is_file()


# SIGKILL of a process generating a file -------------------------------------------------

KILLED_CHILD = """
import sys, time
sys.path.insert(0, {repo!r})
from flask import Flask
from PIL import Image
from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.cachefiles import ImageCacheFile
from flask_imagekit.cachefiles.backends import Simple
from flask_imagekit.processors import ResizeToFill

class Stall:
    def process(self, img):
        print("generating", flush=True)
        time.sleep(60)
        return img

class Thumb(ImageSpec):
    processors = [ResizeToFill(80, 60)]
    format = "JPEG"

class Stalled(Thumb):
    processors = [Stall(), ResizeToFill(80, 60)]

app = Flask("child")
app.config.update(
    IMAGEKIT_MEDIA_ROOT={media!r},
    IMAGEKIT_CACHE_BACKEND={{"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": {redis!r}}},
    IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=Simple(lock_timeout=2),
)
ImageKit(app)
with app.app_context():
    name = ImageCacheFile(Thumb(source="pics/a.jpg")).name
    ImageCacheFile(Stalled(source="pics/a.jpg"), name=name).generate()
"""


@pytest.mark.redis
def test_killed_generating_process_leaves_a_lock_that_expires(
    redis_url: str, app: Flask, media_root: Path, tmp_path: Path
) -> None:
    save_source(media_root, "pics/a.jpg")
    script = tmp_path / "child.py"
    script.write_text(KILLED_CHILD.format(repo=str(REPO), media=str(media_root), redis=redis_url))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    child = subprocess.Popen(
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "generating"
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    app.config.update(
        IMAGEKIT_CACHE_BACKEND=redis_state(redis_url),
        IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=Simple(lock_timeout=2),
    )
    ImageKit(app)
    with app.app_context():
        file = ImageCacheFile(Thumb(source="pics/a.jpg"))
        backend = file.cachefile_backend
        states = current_state().states
        lock = backend.get_lock_key(file)
        assert states.lock_holder(lock) is not None  # the dead process's lock
        assert backend.get_state(file) is CacheFileState.GENERATING
        assert not (media_root / file.name).exists()
        started = time.monotonic()
        assert file.url  # waits for the lock to expire, then generates
        waited = time.monotonic() - started
        assert waited < 2 + 1.5, waited  # within the lock's TTL (and polling)
        assert (media_root / file.name).is_file()
        assert (file.width, file.height) == (80, 60)
        assert states.lock_holder(lock) is None


# A state that says EXISTS for a file deleted behind its back ---------------------------


def test_deleted_file_recovered_by_generate_force(app: Flask, media_root: Path) -> None:
    imagekit = ImageKit(app)

    class Group:
        def files(self) -> t.Iterator[str]:
            yield "pics/a.jpg"

    imagekit.register.generator("faults:thumb", Thumb)
    imagekit.register.source_group("faults:thumb", Group())
    save_source(media_root, "pics/a.jpg")
    runner = app.test_cli_runner()
    assert runner.invoke(args=["imagekit", "generate"]).exit_code == 0
    with app.app_context():
        file = ImageCacheFile(Thumb(source="pics/a.jpg"))
        path = media_root / file.name
    path.unlink()  # behind the backend's back: the state still says EXISTS
    with app.app_context():
        assert bool(ImageCacheFile(Thumb(source="pics/a.jpg")))  # trusted state
    result = runner.invoke(args=["imagekit", "generate"])
    assert "1 already there" in result.output  # the state is trusted here too
    assert not path.exists()
    result = runner.invoke(args=["imagekit", "generate", "--force"])
    assert result.exit_code == 0, result.output
    assert "Generated 1 file" in result.output
    assert path.is_file()


def test_deleted_file_regenerated_by_justintime_after_the_state_timeout(
    app: Flask, media_root: Path
) -> None:
    app.config["IMAGEKIT_CACHE_TIMEOUT"] = 1
    ImageKit(app)
    save_source(media_root, "pics/a.jpg")
    with app.app_context():
        file = ImageCacheFile(Thumb(source="pics/a.jpg"))
        file.generate()
        path = media_root / file.name
        path.unlink()
        time.sleep(1.2)  # the EXISTS state expires: the next use asks the storage
        assert ImageCacheFile(Thumb(source="pics/a.jpg")).url
        assert path.is_file()


# Redis unreachable ----------------------------------------------------------------------


def test_pages_render_with_redis_unreachable(
    app: Flask, media_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app.config["IMAGEKIT_CACHE_BACKEND"] = redis_state("redis://127.0.0.1:1/0")
    imagekit = ImageKit(app)
    imagekit.register.generator("faults:thumb", Thumb)
    for index in range(3):
        save_source(media_root, f"pics/{index}.jpg")
    template = (
        '{% for n in names %}{{ generateimage("faults:thumb", source=n) }}'
        '{{ thumbnail("40x30", n) }}{% endfor %}'
    )
    caplog.set_level(logging.WARNING)
    with app.test_request_context():
        html = app.jinja_env.from_string(template).render(
            names=[f"pics/{i}.jpg" for i in range(3)]
        )
    assert html.count("<img src=") == 6
    assert html.count('width="80" height="60"') == 3
    assert len(list((media_root / "CACHE").rglob("*.jpg"))) == 6
    warnings = [r for r in caplog.records if "state cache" in r.getMessage()]
    assert len(warnings) == 1  # one warning per outage, not one per image
