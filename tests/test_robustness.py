"""Off the happy path: uploads that are gone, locks under contention, forks, queues.

Each test pins down one way a page, a worker or a stored name used to go wrong.
"""

from __future__ import annotations

import io
import os
import pickle
import threading
import time
import typing as t
from pathlib import Path

import pytest
from cachelib import SimpleCache
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from PIL import Image
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from werkzeug.datastructures import FileStorage

from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.cachefiles import ImageCacheFile
from flask_imagekit.cachefiles.backends import AsyncBackend, CacheFileState, Simple
from flask_imagekit.exceptions import ImproperlyConfigured, SourceError
from flask_imagekit.models import ImageSpecField, ProcessedImageField, StoredImage
from flask_imagekit.processors import ResizeToFill
from flask_imagekit.sources import SourceFile
from flask_imagekit.specs.sourcegroups import ImageFieldSourceGroup
from flask_imagekit.storage import FileSystemStorage

from .conftest import encode, save_source

CALLS: list[float] = []


class Fill(ImageSpec):
    processors = [ResizeToFill(20, 20)]
    format = "PNG"


class Slow(Fill):
    """Takes a second; fails when ``fail`` is set."""

    fail = False

    def generate(self) -> t.Any:
        CALLS.append(time.monotonic())
        time.sleep(1.0)
        if self.fail:
            msg = "broken source"
            raise SourceError(msg)
        return super().generate()


class SlowFailing(Slow):
    fail = True


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    CALLS.clear()


def production_app(media_root: Path, tmp_path: Path, **config: t.Any) -> Flask:
    app = Flask("robust", instance_path=str(tmp_path / "instance"))
    app.config.update(IMAGEKIT_MEDIA_ROOT=str(media_root), SECRET_KEY="test", **config)
    ImageKit(app)
    return app


def red(size: tuple[int, int] = (40, 40)) -> bytes:
    return encode(Image.new("RGB", size, (255, 0, 0)), "PNG")


# Uploads ----------------------------------------------------------------------------------


def test_a_closed_upload_never_reads_the_stored_file_of_that_name(
    app: Flask, imagekit: ImageKit, media_root: Path
) -> None:
    save_source(media_root, "avatars/victim.png", Image.new("RGB", (40, 40), (0, 0, 255)))
    stream = io.BytesIO(red())
    upload = FileStorage(stream, filename="avatars/victim.png")
    stream.close()
    with app.app_context():
        file = ImageCacheFile(Fill(source=upload))
        with pytest.raises(SourceError, match="no longer open"):
            file.generate()
    assert not (media_root / "CACHE").exists()


class OneWay(io.RawIOBase):
    """A stream that cannot seek (a socket, a pipe)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer: t.Any) -> int:
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_a_stream_that_cannot_seek_is_read_once(app: Flask, imagekit: ImageKit) -> None:
    with app.app_context():
        file = ImageCacheFile(
            Fill(source=SourceFile("s.png", file=io.BufferedReader(OneWay(red()))))
        )
        file.generate()
        assert (file.width, file.height) == (20, 20)


def test_a_pickled_upload_keeps_its_name_and_refuses_to_read_another_file(
    app: Flask, imagekit: ImageKit, media_root: Path
) -> None:
    save_source(media_root, "me.png", Image.new("RGB", (40, 40), (0, 0, 255)))
    with app.app_context():
        file = ImageCacheFile(Fill(source=FileStorage(io.BytesIO(red()), filename="me.png")))
        name = file.name
        copy = pickle.loads(pickle.dumps(file))
        assert copy.name == name
        with pytest.raises(SourceError, match="no longer open"):
            copy.generate()
    assert not (media_root / name).exists()


# Locks under contention -------------------------------------------------------------------


def _views(app: Flask, spec: type[ImageSpec], source: str, count: int) -> list[tuple[float, str]]:
    results: dict[int, tuple[float, str]] = {}

    def view(index: int) -> None:
        with app.app_context():
            started = time.monotonic()
            url = ImageCacheFile(spec(source=source)).url
            results[index] = (time.monotonic() - started, url)

    threads = [threading.Thread(target=view, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    return [results[i] for i in range(count)]


def test_threads_of_one_process_wait_at_most_lock_wait(media_root: Path, tmp_path: Path) -> None:
    save_source(media_root, "a.png")
    app = production_app(
        media_root, tmp_path, IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=Simple(lock_wait=0.2)
    )
    results = _views(app, Slow, "a.png", 3)
    assert len(CALLS) == 1
    assert results[0][0] >= 1.0
    assert all(elapsed < 0.8 for elapsed, _ in results[1:]), results  # pending, not blocked


def test_a_failure_is_not_retried_by_the_threads_that_waited(
    media_root: Path, tmp_path: Path
) -> None:
    save_source(media_root, "b.png")
    app = production_app(media_root, tmp_path, IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=Simple())
    results = _views(app, SlowFailing, "b.png", 3)
    assert len(CALLS) == 1
    assert all(url.startswith("data:image/svg+xml") for _, url in results)


# Forks ------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_renew_its_parents_locks() -> None:
    from flask_imagekit.statecache import StateCache

    states = StateCache(SimpleCache())
    states.heartbeat.add("lock:x", "parent", 30)
    try:
        assert states.heartbeat.held() == {("lock:x", "parent")}
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child reports what it inherited
            os.write(write, str(len(states.heartbeat.held())).encode())
            os._exit(0)
        os.waitpid(pid, 0)
        assert os.read(read, 16) == b"0"
    finally:
        states.heartbeat.discard("lock:x", "parent")


# Async backends ---------------------------------------------------------------------------


class Queue(AsyncBackend):
    """A queue nobody works on: counts what was sent."""

    def __init__(self, **kwargs: t.Any) -> None:
        super().__init__(**kwargs)
        self.sent: list[dict[str, t.Any]] = []

    def schedule(self, payload: dict[str, t.Any]) -> None:
        self.sent.append(payload)


def test_a_queued_job_is_not_sent_again_when_the_lock_timeout_passes(
    media_root: Path, tmp_path: Path
) -> None:
    save_source(media_root, "q.png")
    backend = Queue(lock_timeout=1, queue_timeout=30)
    app = production_app(
        media_root,
        tmp_path,
        IMAGEKIT_CACHE_BACKEND=SimpleCache(),
        IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=backend,
    )
    app.extensions["imagekit"].register.generator("robust:fill", Fill)
    with app.app_context():
        for _ in range(3):
            assert not ImageCacheFile(Fill(source="q.png"))
            time.sleep(1.1)
    assert len(backend.sent) == 1


def test_a_failed_async_file_shows_the_placeholder_url(media_root: Path, tmp_path: Path) -> None:
    save_source(media_root, "f.png")
    backend = Queue()
    app = production_app(
        media_root,
        tmp_path,
        IMAGEKIT_CACHE_BACKEND=SimpleCache(),
        IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=backend,
    )
    with app.app_context():
        file = ImageCacheFile(Fill(source="f.png"))
        backend.remember_failure(file, SourceError("corrupt"))
        assert backend.get_state(file) is CacheFileState.FAILED
        assert file.url.startswith("data:image/svg+xml")
        assert not file
        assert backend.sent == []


class PerClass(Simple):
    made = 0

    def __init__(self) -> None:
        super().__init__()
        PerClass.made += 1


class WithItsBackend(Fill):
    cachefile_backend = PerClass


def test_a_backend_given_as_a_class_is_made_once(app: Flask, imagekit: ImageKit) -> None:
    PerClass.made = 0
    with app.app_context():
        backends = {
            id(ImageCacheFile(WithItsBackend(source=f"{i}.png")).cachefile_backend)
            for i in range(5)
        }
    assert len(backends) == 1
    assert PerClass.made == 1


# Programming errors -----------------------------------------------------------------------


def test_an_unknown_format_raises_even_in_production(media_root: Path, tmp_path: Path) -> None:
    class Typo(Fill):
        format = "JPG2"

    save_source(media_root, "t.png")
    app = production_app(media_root, tmp_path)
    with app.app_context(), pytest.raises(ImproperlyConfigured, match="JPG2"):
        _ = ImageCacheFile(Typo(source="t.png")).url


# Models -----------------------------------------------------------------------------------


def test_sources_in_another_storage_keep_it_in_groups_and_signals(
    tmp_path: Path, media_root: Path
) -> None:
    uploads = FileSystemStorage(tmp_path / "uploads", "/uploads/")

    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)

    class Card(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "robust_card"
        id: Mapped[int] = mapped_column(primary_key=True)
        art: Mapped[str | None] = ProcessedImageField(
            [ResizeToFill(30, 30)], format="PNG", upload_to="p", storage=uploads
        )
        art_thumb = ImageSpecField(source="art", processors=[ResizeToFill(10, 10)], format="PNG")

    app = Flask("robust_models", instance_path=str(tmp_path / "instance"))
    app.config.update(
        TESTING=True,
        IMAGEKIT_MEDIA_ROOT=str(media_root),
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    db.init_app(app)
    ImageKit(app, db=db)
    with app.app_context():
        db.create_all()
        card = Card(art=FileStorage(io.BytesIO(red()), filename="a.png"))
        db.session.add(card)
        db.session.commit()
        page_name = card.art_thumb.name
        (source,) = list(ImageFieldSourceGroup(Card, "art").files())
        assert source.storage == uploads
        result = app.test_cli_runner().invoke(args=["imagekit", "generate"])
        assert result.exit_code == 0, result.output
        assert (media_root / page_name).is_file()
        # A name assigned as a string is a stored image too.
        card.art = "p/a.png"
        assert isinstance(card.art, StoredImage)
        assert card.art.url == "/uploads/p/a.png"
        db.session.remove()


def test_a_stored_image_whose_file_is_gone_still_renders(
    app: Flask, imagekit: ImageKit, caplog: pytest.LogCaptureFixture
) -> None:
    with app.app_context():
        html = StoredImage("photos/gone.jpg").__html__()
    assert html == '<img src="/media/photos/gone.jpg">'
    assert "photos/gone.jpg" in caplog.text
