"""What one render of an image costs: app-state lookups, storage checks, state-cache operations.

A cold ``generateimage``/``thumbnail`` render resolves the app's state once, asks
the storage once whether the file is there (under the lock, before generating)
and uses the state cache three times: read the state, take the lock, record
EXISTS and release the lock in one step. A warm render of a new page reads the
state once and touches no storage.
"""

from __future__ import annotations

import collections
import io
import typing as t
from pathlib import Path

import pytest
from flask import Flask, render_template_string
from PIL import Image

from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.globals import STATE_KEY
from flask_imagekit.processors import ResizeToFill
from flask_imagekit.statecache import StateCache
from flask_imagekit.storage import FileSystemStorage

from .conftest import require_service

STATE_OPERATIONS = ("get", "set", "delete", "complete", "acquire", "release", "lock_holder")


class CountingExtensions(dict[str, t.Any]):
    """``app.extensions``, counting the lookups of flask_imagekit's app state."""

    def __init__(self, *args: t.Any) -> None:
        super().__init__(*args)
        self.state_lookups = 0

    def get(self, key: str, default: t.Any = None) -> t.Any:  # type: ignore[override]
        if key == STATE_KEY:
            self.state_lookups += 1
        return super().get(key, default)

    def __getitem__(self, key: str) -> t.Any:
        if key == STATE_KEY:
            self.state_lookups += 1
        return super().__getitem__(key)


class CountingStorage(FileSystemStorage):
    """A local storage counting its ``exists`` calls."""

    def __init__(self, location: Path) -> None:
        super().__init__(str(location), "/media/")
        self.exists_calls = 0

    def exists(self, name: str) -> bool:
        self.exists_calls += 1
        return super().exists(name)


class Thumb(ImageSpec):
    processors = [ResizeToFill(40, 30)]  # noqa: RUF012
    format = "JPEG"


def count_state_operations(states: StateCache) -> collections.Counter[str]:
    """Count every operation backends run on ``states`` from now on."""
    counts: collections.Counter[str] = collections.Counter()
    for name in STATE_OPERATIONS:
        method = getattr(states, name)

        def counted(
            *args: t.Any, _name: str = name, _method: t.Any = method, **kw: t.Any
        ) -> t.Any:
            counts[_name] += 1
            return _method(*args, **kw)

        setattr(states, name, counted)
    return counts


@pytest.fixture(params=["simple", "redis"])
def page(request: pytest.FixtureRequest, tmp_path: Path) -> t.Iterator[tuple[Flask, t.Any]]:
    """An app whose state lookups, storage checks and state-cache operations are counted."""
    app = Flask(__name__, instance_path=str(tmp_path / "instance"))
    app.config["TESTING"] = True
    storage = CountingStorage(tmp_path / "media")
    app.config["IMAGEKIT_DEFAULT_FILE_STORAGE"] = storage
    if request.param == "redis":
        require_service("Redis", 6379)
        import redis

        client = redis.Redis.from_url("redis://127.0.0.1:6379/13")
        client.flushdb()
        app.config["IMAGEKIT_CACHE_BACKEND"] = {
            "CACHE_TYPE": "RedisCache",
            "CACHE_REDIS_URL": "redis://127.0.0.1:6379/13",
        }
    imagekit = ImageKit(app)
    imagekit.register.generator("cost:thumb", Thumb)
    (tmp_path / "media" / "photos").mkdir(parents=True)
    for index in range(3):
        buffer = io.BytesIO()
        Image.new("RGB", (160, 120), (index * 60, 90, 30)).save(buffer, "JPEG")
        (tmp_path / "media" / "photos" / f"p{index}.jpg").write_bytes(buffer.getvalue())
    extensions = CountingExtensions(app.extensions)
    app.extensions = extensions
    with app.app_context():
        counts = count_state_operations(extensions[STATE_KEY].states)
    yield app, (extensions, storage, counts)
    if request.param == "redis":
        client.flushdb()
        client.close()


def reset(counters: t.Any) -> None:
    extensions, storage, counts = counters
    extensions.state_lookups = 0
    storage.exists_calls = 0
    counts.clear()


@pytest.mark.parametrize(
    "template",
    [
        '{{ generateimage("cost:thumb", source=name) }}',
        '{{ thumbnail("40x30", name) }}',
    ],
)
def test_a_cold_render_costs_one_lookup_one_check_and_three_state_operations(
    page: tuple[Flask, t.Any], template: str
) -> None:
    app, counters = page
    extensions, storage, counts = counters
    with app.app_context():
        for name in ("photos/p0.jpg", "photos/p1.jpg"):
            reset(counters)
            html = render_template_string(template, name=name)
            assert 'width="40" height="30"' in html
            assert extensions.state_lookups == 1
            assert storage.exists_calls == 1
            assert sum(counts.values()) == 3, counts
            assert counts == {"get": 1, "acquire": 1, "complete": 1}


def test_a_warm_render_reads_the_state_once_and_no_storage(page: tuple[Flask, t.Any]) -> None:
    app, counters = page
    extensions, storage, counts = counters
    template = '{{ generateimage("cost:thumb", source="photos/p2.jpg") }}'
    with app.app_context():
        render_template_string(template)
    for _ in range(2):
        with app.app_context():
            reset(counters)
            html = render_template_string(template)
            assert 'width="40" height="30"' in html
            assert extensions.state_lookups == 1
            assert storage.exists_calls == 0
            assert counts == {"get": 1}


def test_a_page_of_images_costs_one_lookup_per_image(page: tuple[Flask, t.Any]) -> None:
    app, counters = page
    extensions, storage, counts = counters
    template = '{% for name in names %}{{ generateimage("cost:thumb", source=name) }}{% endfor %}'
    names = [f"photos/p{index}.jpg" for index in range(3)]
    with app.app_context():
        reset(counters)
        html = render_template_string(template, names=names)
    assert html.count("<img ") == 3
    assert extensions.state_lookups == 3
    assert storage.exists_calls == 3
    assert sum(counts.values()) == 9
