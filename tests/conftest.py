"""Shared fixtures: a fresh app and extension per test, storages under tmp_path."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import typing as t
import uuid
from pathlib import Path

import itsdangerous
import pytest
from cachelib import BaseCache
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from PIL import Image, ImageChops, ImageDraw, ImageStat
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.cachefiles.backends import AsyncBackend
from flask_imagekit.models import ImageSpecField
from flask_imagekit.processors import ResizeToFill
from flask_imagekit.registry import default_registry
from flask_imagekit.utils import get_field_info

CORPUS = Path(__file__).resolve().parent / "corpus" / "pillow"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _service_up(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def require_service(name: str, port: int) -> None:
    """Skip the test when a local service is down; under CI=true, fail instead."""
    if _service_up(port):
        return
    msg = f"{name} is not reachable on 127.0.0.1:{port}"
    if IN_CI:
        pytest.fail(f"{msg}, and CI=true requires it (start it with .ci/services)")
    pytest.skip(f"{msg}; start it to run this test")


@pytest.fixture
def redis_url() -> t.Iterator[str]:
    """URL of the local Redis server (database 15, flushed around the test)."""
    require_service("Redis", 6379)
    import redis

    url = "redis://127.0.0.1:6379/15"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(autouse=True)
def _clean_default_registry() -> t.Iterator[None]:
    """Tests may register into the process-wide registry; undo it afterwards."""
    snapshot = default_registry.snapshot()
    yield
    default_registry.restore(snapshot)


@pytest.fixture
def media_root(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    return root


@pytest.fixture
def app(media_root: Path, tmp_path: Path) -> Flask:
    app = Flask("testapp", instance_path=str(tmp_path / "instance"))
    app.config.update(TESTING=True, IMAGEKIT_MEDIA_ROOT=str(media_root))
    return app


@pytest.fixture
def imagekit(app: Flask) -> ImageKit:
    return ImageKit(app)


@pytest.fixture
def ctx(app: Flask, imagekit: ImageKit) -> t.Iterator[Flask]:
    with app.app_context():
        yield app


def photo(size: tuple[int, int] = (640, 480), mode: str = "RGB") -> Image.Image:
    """A photo-like test image: gradients plus shapes, so crops and anchors show."""
    w, h = size
    gradient = Image.linear_gradient("L").resize((w, h))
    other = gradient.transpose(Image.Transpose.ROTATE_90).resize((w, h))
    img = Image.merge("RGB", (gradient, other, ImageChops.invert(gradient)))
    draw = ImageDraw.Draw(img)
    draw.ellipse((w // 4, h // 4, w // 2, h // 2), fill=(250, 200, 0))
    draw.rectangle((0, 0, w // 8, h // 8), fill=(0, 0, 0))
    return img.convert(mode) if mode != "RGB" else img


def encode(img: Image.Image, format: str = "JPEG", **options: t.Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format, **options)
    return buf.getvalue()


def save_source(root: Path, name: str, img: Image.Image | None = None, **kw: t.Any) -> str:
    """Write a source image under ``root`` and return its storage name."""
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = kw.pop("format", None) or Image.registered_extensions()[path.suffix.lower()]
    path.write_bytes(encode(img or photo(), fmt, **kw))
    return name


def fetch_image(app: Flask, url: str) -> Image.Image:
    """GET ``url`` through the app and decode the image it serves."""
    with app.test_client() as client:
        response = client.get(url)
        try:
            assert response.status_code == 200, (url, response.status_code)
            data = response.get_data()
        finally:
            response.close()
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def psnr(a: Image.Image, b: Image.Image) -> float:
    """Peak signal-to-noise ratio between two same-size images, in dB."""
    import math

    assert a.size == b.size, (a.size, b.size)
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    mse = sum(v * v for v in ImageStat.Stat(diff).rms) / 3
    return float("inf") if mse == 0 else 20 * math.log10(255 / math.sqrt(mse))


# Databases: SQLite, and PostgreSQL in a schema of its own per test ------------------------

PG_URL = "postgresql+psycopg://{user}@127.0.0.1:5432/test"


@dataclasses.dataclass
class Database:
    kind: str
    uri: str
    engine_options: dict[str, t.Any]


def _pg_admin() -> tuple[t.Any, str]:
    import psycopg

    errors = []
    for user in ("postgres", "root"):
        try:
            conn = psycopg.connect(
                host="127.0.0.1", port=5432, user=user, dbname="test", autocommit=True
            )
        except psycopg.OperationalError as exc:
            errors.append(f"{user}: {exc}")
            continue
        return conn, user
    msg = f"cannot log in to PostgreSQL as postgres or root: {errors}"
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> t.Iterator[Database]:
    if request.param == "sqlite":
        yield Database("sqlite", f"sqlite:///{tmp_path / 'db.sqlite3'}", {})
        return
    require_service("PostgreSQL", 5432)
    conn, user = _pg_admin()
    schema = f"ik_{uuid.uuid4().hex[:16]}"
    try:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        yield Database(
            "postgresql",
            PG_URL.format(user=user),
            {"connect_args": {"options": f"-csearch_path={schema}"}},
        )
    finally:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.close()


# Caches with a clock of their own, call counting, an app with a database -------------------


class PreciseCache(BaseCache):
    """A cachelib cache that honours sub-second (float) timeouts; 0 means forever.

    ``clock`` is injectable so TTLs can be tested without sleeping.
    """

    def __init__(self, clock: t.Callable[[], float] = time.monotonic) -> None:
        super().__init__(default_timeout=0)
        self.clock = clock
        self._data: dict[str, tuple[float | None, t.Any]] = {}
        self._lock = threading.Lock()

    def _expiry(self, timeout: float | None) -> float | None:
        timeout = self.default_timeout if timeout is None else timeout
        return None if not timeout else self.clock() + timeout

    def _live(self, key: str) -> tuple[float | None, t.Any] | None:
        item = self._data.get(key)
        if item is not None and item[0] is not None and item[0] <= self.clock():
            del self._data[key]
            return None
        return item

    def get(self, key: str) -> t.Any:
        with self._lock:
            item = self._live(key)
            return None if item is None else item[1]

    def has(self, key: str) -> bool:
        with self._lock:
            return self._live(key) is not None

    def set(self, key: str, value: t.Any, timeout: t.Any = None) -> bool:
        with self._lock:
            self._data[key] = (self._expiry(timeout), value)
            return True

    def add(self, key: str, value: t.Any, timeout: t.Any = None) -> bool:
        with self._lock:
            if self._live(key) is not None:
                return False
            self._data[key] = (self._expiry(timeout), value)
            return True

    def delete(self, key: str) -> bool:
        with self._lock:
            return self._data.pop(key, None) is not None

    def clear(self) -> bool:
        with self._lock:
            self._data.clear()
            return True


class FakeClock:
    """A clock that only moves when told to (for :class:`PreciseCache`)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def count_calls(
    monkeypatch: pytest.MonkeyPatch, obj: t.Any, *methods: str
) -> collections.Counter[str]:
    """Count calls of ``methods`` on the instance ``obj`` (they still do their work)."""
    calls: collections.Counter[str] = collections.Counter()
    for method in methods:
        original = getattr(obj, method)

        def counted(*args: t.Any, _m: str = method, _o: t.Any = original, **kw: t.Any) -> t.Any:
            calls[_m] += 1
            return _o(*args, **kw)

        monkeypatch.setattr(obj, method, counted)
    return calls


@pytest.fixture
def db_app(app: Flask, tmp_path: Path) -> t.Iterator[tuple[Flask, SQLAlchemy]]:
    """``app`` with Flask-SQLAlchemy on a SQLite file; ImageKit is left to the test."""

    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    db.init_app(app)
    yield app, db
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


# Async jobs and the processes that race ---------------------------------------------------


class Recorder(AsyncBackend):
    """An async backend that keeps the jobs it is given instead of sending them."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, t.Any]] = []

    def schedule(self, payload: dict[str, t.Any]) -> None:
        self.sent.append(payload)


def sign_job(body: dict[str, t.Any], secret: str) -> dict[str, t.Any]:
    """Sign ``body`` the way the jobs module documents it (detached, canonical JSON)."""
    body = {key: value for key, value in body.items() if key != "signature"}
    signer = itsdangerous.Signer(
        secret, salt="flask_imagekit.job", key_derivation="hmac", digest_method=hashlib.sha256
    )
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return {**body, "signature": signer.get_signature(canonical).decode("ascii")}


class RowSized(ImageSpec):
    """A dynamic spec: its size comes from the row holding the source."""

    format = "PNG"

    @property
    def processors(self) -> list[t.Any]:  # type: ignore[override]
        instance, _ = get_field_info(self.source)
        return [ResizeToFill(instance.size, instance.size)]


def card_model(db: SQLAlchemy) -> t.Any:
    """A ``Card`` model of ``db`` whose ``thumb`` is as wide as the row's ``size``."""

    class Card(db.Model):  # type: ignore[name-defined,misc]
        id: Mapped[int] = mapped_column(primary_key=True)
        size: Mapped[int]
        picture: Mapped[str | None] = mapped_column(String(255))
        thumb = ImageSpecField(source="picture", spec=RowSized)

    return Card


def run_together(tmp_path: Path, script: str, args: list[str], last: str) -> list[str]:
    """Run two copies of the Python ``script`` and let them go at the same moment.

    Each child is called with ``*args, ready_path, go_path, last``: it creates its
    ready path once set up, then waits for the go path. Returns the children's
    standard outputs; a child that fails fails the test with its standard error.
    """
    path = tmp_path / "child.py"
    path.write_text(script)
    go = tmp_path / "go"
    ready = [tmp_path / f"ready{i}" for i in range(2)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(path), *args, str(each), str(go), last],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env=env,
        )
        for each in ready
    ]
    try:
        deadline = time.monotonic() + 30
        while not all(each.exists() for each in ready):
            assert time.monotonic() < deadline, "children did not start"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.01)
        go.touch()
        outputs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    return [out for out, _ in outputs]
