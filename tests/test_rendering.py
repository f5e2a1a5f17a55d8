"""Rendering never breaks a page (a per-image problem degrades to a placeholder).

In production (``IMAGEKIT_RAISE_ERRORS`` false, the default outside debug and
testing) a NULL or missing source, a corrupt source or a processor that raises
renders the placeholder ``<img>``, its ``url`` is the placeholder's, ``bool()``
is false and one warning is logged per file and failure window; in debug the
``ImageKitError`` is raised. A failed generation is remembered (FAILED) so a
broken source is not decoded on every view; an explicit ``generate()`` retries.
The backend never spins on a cache that refuses writes nor waits for a lock a
killed process left behind.
"""

from __future__ import annotations

import logging
import threading
import time
import typing as t
from pathlib import Path

import pytest
from cachelib import SimpleCache
from flask import Flask, render_template_string
from flask_sqlalchemy import SQLAlchemy
from PIL import Image
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_imagekit import ImageKit, ImageSpec, register
from flask_imagekit.cachefiles import ImageCacheFile
from flask_imagekit.cachefiles.backends import RQ, AsyncBackend, CacheFileState, Simple
from flask_imagekit.exceptions import (
    GenerationError,
    ImproperlyConfigured,
    MissingSource,
    NotRegistered,
    SourceError,
)
from flask_imagekit.models import ImageSpecField
from flask_imagekit.processors import ResizeToFill

from .conftest import save_source

CALLS = {"broken": 0}


class Fill(ImageSpec):
    processors = [ResizeToFill(40, 30)]
    format = "JPEG"


class Exploding:
    """A processor that fails on every image (and counts its calls)."""

    def process(self, img: Image.Image) -> Image.Image:
        CALLS["broken"] += 1
        msg = "boom"
        raise ValueError(msg)


class Broken(ImageSpec):
    processors = [Exploding()]
    format = "JPEG"


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    CALLS["broken"] = 0


def make_app(
    media_root: Path, tmp_path: Path, *, production: bool = True, **config: t.Any
) -> Flask:
    app = Flask("rendering", instance_path=str(tmp_path / "instance"))
    app.config.update(TESTING=not production, IMAGEKIT_MEDIA_ROOT=str(media_root), **config)
    return app


@pytest.fixture
def sources(media_root: Path) -> dict[str, str]:
    save_source(media_root, "photos/good.jpg")
    (media_root / "photos/corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    return {"good": "photos/good.jpg", "corrupt": "photos/corrupt.jpg", "missing": "photos/x.jpg"}


PAGE = """
{%- for name in names -%}
[{{ generateimage("t:fill", source=name) }}][{{ thumbnail("20x20", name) }}]
{%- endfor -%}
[{{ generateimage("t:broken", source=good) }}]
"""


def render_page(app: Flask, sources: dict[str, str]) -> str:
    with app.test_request_context():
        return render_template_string(
            PAGE,
            names=[sources["good"], sources["corrupt"], sources["missing"], None],
            good=sources["good"],
        )


def test_a_gallery_with_bad_rows_renders_in_production(
    media_root: Path, tmp_path: Path, sources: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(media_root, tmp_path)
    ImageKit(app)
    register.generator("t:fill", Fill)
    register.generator("t:broken", Broken)
    with caplog.at_level(logging.WARNING, logger="flask_imagekit"):
        html = render_page(app, sources)
    assert html.count("/media/CACHE/images/photos/good/") == 2
    # corrupt x2, missing x2, NULL x2, broken processor x1: the placeholder
    assert html.count('src="data:image/svg+xml') == 7
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 5  # one per file that failed (a NULL source is no error)
    assert all(
        "photos/good.jpg" not in r.getMessage() or "boom" in r.getMessage() for r in warnings
    )


def test_the_same_page_raises_in_debug(
    media_root: Path, tmp_path: Path, sources: dict[str, str]
) -> None:
    app = make_app(media_root, tmp_path, production=False)
    ImageKit(app)
    register.generator("t:fill", Fill)
    with app.test_request_context():
        with pytest.raises(SourceError):
            render_template_string('{{ generateimage("t:fill", source=n) }}', n=sources["corrupt"])
        with pytest.raises(MissingSource):
            render_template_string('{{ generateimage("t:fill", source=n) }}', n=sources["missing"])
        # A NULL source is no error: it renders nothing.
        assert render_template_string('[{{ generateimage("t:fill", source=None) }}]') == "[]"


def test_programming_errors_raise_in_production(media_root: Path, tmp_path: Path) -> None:
    app = make_app(media_root, tmp_path)
    ImageKit(app)
    with app.test_request_context():
        with pytest.raises(NotRegistered):
            render_template_string('{{ generateimage("nope", source="a.jpg") }}')
        with pytest.raises(ImproperlyConfigured):
            render_template_string('{{ thumbnail("axb", "a.jpg") }}')


@pytest.mark.parametrize("production", [True, False])
def test_a_sourceless_file_is_empty_and_false(
    media_root: Path, tmp_path: Path, production: bool
) -> None:
    app = make_app(media_root, tmp_path, production=production)
    ImageKit(app)
    with app.app_context():
        file = ImageCacheFile(Fill(source=None))
        assert str(file) == ""
        assert not file
        if production:
            assert file.__html__().startswith('<img src="data:image/svg+xml')
            assert file.url.startswith("data:image/svg+xml")
        else:
            assert file.__html__() == ""
            with pytest.raises(MissingSource):
                _ = file.url


def test_placeholder_setting_url_and_callable(
    media_root: Path, tmp_path: Path, sources: dict[str, str]
) -> None:
    app = make_app(media_root, tmp_path, IMAGEKIT_PLACEHOLDER="/static/missing.png")
    ImageKit(app)
    with app.app_context():
        file = ImageCacheFile(Fill(source=sources["corrupt"]))
        assert file.url == "/static/missing.png"
        assert 'src="/static/missing.png"' in file.__html__()
        assert not file

    seen: list[ImageCacheFile] = []

    def placeholder(file: ImageCacheFile) -> str:
        seen.append(file)
        return f"/placeholder/{file.name.rsplit('/', 1)[1]}"

    app2 = make_app(media_root, tmp_path, IMAGEKIT_PLACEHOLDER=placeholder)
    ImageKit(app2)
    with app2.app_context():
        file = ImageCacheFile(Fill(source=sources["corrupt"]))
        assert file.url.startswith("/placeholder/")
        assert seen == [file]


def test_placeholder_keeps_the_users_size_and_attrs(
    media_root: Path, tmp_path: Path, sources: dict[str, str]
) -> None:
    app = make_app(media_root, tmp_path)
    ImageKit(app)
    register.generator("t:fill", Fill)
    with app.test_request_context():
        html = render_template_string(
            '{{ generateimage("t:fill", source=n, attrs={"alt": "A <b>", "width": 40}) }}',
            n=sources["corrupt"],
        )
    assert 'alt="A &lt;b&gt;"' in html
    assert 'width="40"' in html


def test_failed_generation_is_remembered_and_retried_explicitly(
    media_root: Path, tmp_path: Path, sources: dict[str, str]
) -> None:
    app = make_app(media_root, tmp_path, IMAGEKIT_FAILURE_TIMEOUT=60)
    ImageKit(app)
    with app.app_context():
        for _ in range(5):
            file = ImageCacheFile(Broken(source=sources["good"]))
            assert not file
            assert file.url.startswith("data:")
        assert CALLS["broken"] == 1
        assert file.cachefile_backend.get_state(file) is CacheFileState.FAILED
        with pytest.raises(GenerationError, match="boom"):
            file.generate()  # explicit: tries again and raises
        assert CALLS["broken"] == 2


def test_failure_window_expires(media_root: Path, tmp_path: Path, sources: dict[str, str]) -> None:
    app = make_app(media_root, tmp_path, IMAGEKIT_FAILURE_TIMEOUT=1)
    ImageKit(app)
    with app.app_context():
        assert not ImageCacheFile(Broken(source=sources["good"]))
        time.sleep(1.1)
        assert not ImageCacheFile(Broken(source=sources["good"]))
    assert CALLS["broken"] == 2


# Model attributes ---------------------------------------------------------------------------


def test_model_attributes_of_bad_rows_render_in_production(
    media_root: Path, tmp_path: Path, sources: dict[str, str]
) -> None:
    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)

    class Photo(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "rendering_photo"
        id: Mapped[int] = mapped_column(primary_key=True)
        image: Mapped[str | None] = mapped_column(String(255))
        thumb = ImageSpecField(source="image", processors=[ResizeToFill(20, 20)], format="JPEG")

    app = make_app(media_root, tmp_path, SQLALCHEMY_DATABASE_URI="sqlite://")
    db.init_app(app)
    ImageKit(app, db=db)
    with app.test_request_context():
        db.create_all()
        rows = [Photo(image=sources[k]) for k in ("good", "corrupt", "missing")] + [Photo()]
        db.session.add_all(rows)
        db.session.commit()
        html = render_template_string(
            "{% for p in photos %}[{{ p.thumb }}]{% if p.thumb %}{{ p.thumb.width }}{% endif %}"
            "{% endfor %}",
            photos=Photo.query.order_by(Photo.id).all(),
        )
        db.session.remove()
    parts = html.split("[")[1:]
    assert parts[0].startswith('<img src="/media/')
    assert parts[0].endswith("]20")
    for part in parts[1:]:
        assert part.startswith('<img src="data:image/svg+xml')


# Locks and caches that misbehave ------------------------------------------------------------


class RefusingCache(SimpleCache):
    """A cache whose writes are refused without an error (a dead Memcached, say)."""

    def set(self, key: str, value: t.Any, timeout: t.Any = None) -> bool:
        return False

    def add(self, key: str, value: t.Any, timeout: t.Any = None) -> bool:
        return False


def test_a_cache_that_refuses_writes_does_not_hang(
    media_root: Path, tmp_path: Path, sources: dict[str, str]
) -> None:
    app = make_app(media_root, tmp_path, production=False, IMAGEKIT_CACHE_BACKEND=RefusingCache())
    ImageKit(app)
    done: list[str] = []

    def render() -> None:
        with app.app_context():
            done.append(ImageCacheFile(Fill(source=sources["good"])).url)

    thread = threading.Thread(target=render, daemon=True)
    thread.start()
    thread.join(10)
    assert done, "generation spun on a cache that refuses writes"
    assert (media_root / done[0].removeprefix("/media/")).is_file()


def test_a_lock_left_by_a_killed_process_does_not_stall_pages(
    media_root: Path, tmp_path: Path, sources: dict[str, str]
) -> None:
    cache = SimpleCache()
    app = make_app(
        media_root,
        tmp_path,
        IMAGEKIT_CACHE_BACKEND=cache,
        IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=Simple(lock_wait=0.3),
    )
    ImageKit(app)
    with app.app_context():
        file = ImageCacheFile(Fill(source=sources["good"]))
        backend = file.cachefile_backend
        # A dead process's lock: nobody will release it for a minute.
        cache.add(backend.get_lock_key(file), "dead-process", timeout=60)
        start = time.monotonic()
        html = file.__html__()
        elapsed = time.monotonic() - start
    assert elapsed < 2
    assert 'src="data:image/svg+xml' in html  # pending


def test_a_long_generation_keeps_its_lock_alive(
    media_root: Path, tmp_path: Path, sources: dict[str, str]
) -> None:
    cache = SimpleCache()
    backend = Simple(lock_timeout=2)

    class Slow(ImageSpec):
        processors = [ResizeToFill(10, 10)]
        format = "JPEG"

        def generate(self) -> t.Any:
            time.sleep(3.5)
            return super().generate()

    app = make_app(
        media_root,
        tmp_path,
        IMAGEKIT_CACHE_BACKEND=cache,
        IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=backend,
    )
    ImageKit(app)
    holders: list[t.Any] = []
    with app.app_context():
        file = ImageCacheFile(Slow(source=sources["good"]))
        key = backend.get_lock_key(file)

        def generate() -> None:
            with app.app_context():
                file.generate()

        worker = threading.Thread(target=generate)
        worker.start()
        for _ in range(6):
            time.sleep(0.5)
            holders.append(cache.get(key))
        worker.join()
        assert cache.get(key) is None  # released at the end
    assert all(holders), holders  # still held after the 2 s TTL


class Unstarted(AsyncBackend):
    """An async backend whose worker has not picked the job up yet."""

    def schedule(self, payload: dict[str, t.Any]) -> None:
        pass


def test_pending_files_of_optimistic_async_specs_render(
    media_root: Path, tmp_path: Path, sources: dict[str, str]
) -> None:
    cache = SimpleCache()
    app = make_app(
        media_root,
        tmp_path,
        SECRET_KEY="test",
        IMAGEKIT_CACHE_BACKEND=cache,
        IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=Unstarted(),
        IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY="flask_imagekit.cachefiles.strategies.Optimistic",
    )
    ImageKit(app)
    with app.test_request_context():
        file = ImageCacheFile(Fill(source=sources["good"]))
        backend = file.cachefile_backend
        cache.add(backend.get_lock_key(file), "a-worker", timeout=60)
        html = render_template_string(
            "{% if th %}{{ th.width }}{% else %}pending{% endif %}|{{ th }}", th=file
        )
    assert html.startswith("pending|")


def test_markup_rendered_without_a_size_is_not_remembered(
    media_root: Path, tmp_path: Path, sources: dict[str, str]
) -> None:
    cache = SimpleCache()
    app = make_app(media_root, tmp_path, production=False, IMAGEKIT_CACHE_BACKEND=cache)
    ImageKit(app)
    register.generator("t:fill", Fill)
    with app.test_request_context():
        file = ImageCacheFile(Fill(source=sources["good"]))
        cache.add(file.cachefile_backend.get_lock_key(file), "a-worker", timeout=60)
        first = render_template_string(
            '{{ generateimage("t:fill", source=n) }}', n=sources["good"]
        )
        assert "width=" not in first
        cache.delete(file.cachefile_backend.get_lock_key(file))
        file.generate()
        second = render_template_string(
            '{{ generateimage("t:fill", source=n) }}', n=sources["good"]
        )
        assert 'width="40" height="30"' in second


@pytest.mark.parametrize(
    "name", ["my photo.png", "tab\there.png", "ünïcode.png", "a" * 240 + ".png"]
)
def test_state_keys_are_safe_for_every_cache(app: Flask, imagekit: ImageKit, name: str) -> None:
    with app.app_context():
        file = ImageCacheFile(Fill(source=name))
        for key in (
            file.cachefile_backend.get_key(file),
            file.cachefile_backend.get_lock_key(file),
        ):
            assert len(key.encode("utf-8")) <= 250
            assert all(33 <= ord(c) < 127 for c in key), key


def test_missing_cache_file_is_pending_not_an_error_in_production(
    media_root: Path, tmp_path: Path, sources: dict[str, str]
) -> None:
    app = make_app(
        media_root,
        tmp_path,
        IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY="flask_imagekit.cachefiles.strategies.Optimistic",
        IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=Simple(lock_wait=0.1),
    )
    ImageKit(app)
    with app.app_context():
        file = ImageCacheFile(Fill(source=sources["missing"]))
        assert file.__html__().startswith('<img src="data:image/svg+xml')
        assert (file.width, file.height) == (0, 0)  # no error on the page


# A broker that is down ------------------------------------------------------------------------


def test_rq_backend_with_its_redis_down_generates_inline(
    media_root: Path,
    tmp_path: Path,
    sources: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Nothing listens on port 1: the broker is unreachable, the state cache is local.
    backend = RQ(redis_url="redis://127.0.0.1:1/0")
    app = make_app(
        media_root,
        tmp_path,
        SECRET_KEY="test",
        IMAGEKIT_CACHE_BACKEND=SimpleCache(),
        IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=backend,
    )
    ImageKit(app)
    register.generator("t:fill", Fill)
    save_source(media_root, "photos/other.jpg")
    with caplog.at_level(logging.WARNING, logger="flask_imagekit"), app.test_request_context():
        html = render_template_string(
            '{{ generateimage("t:fill", source=a) }}{{ generateimage("t:fill", source=b) }}',
            a=sources["good"],
            b="photos/other.jpg",
        )
    assert html.count('width="40" height="30"') == 2  # made inline, with their size
    assert len(list((media_root / "CACHE/images/photos").rglob("*.jpg"))) == 2
    broker_warnings = [r for r in caplog.records if "broker" in r.getMessage()]
    assert len(broker_warnings) == 1  # one per outage window, not one per image
