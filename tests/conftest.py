"""Shared fixtures: a fresh app and extension per test, storages under tmp_path."""

from __future__ import annotations

import dataclasses
import io
import os
import socket
import typing as t
import uuid
from pathlib import Path

import pytest
from flask import Flask
from PIL import Image, ImageChops, ImageDraw, ImageStat

from flask_imagekit import ImageKit
from flask_imagekit.registry import default_registry

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
    generators = dict(default_registry._generators)
    groups = {k: list(v) for k, v in default_registry._source_groups.items()}
    yield
    default_registry._generators.clear()
    default_registry._generators.update(generators)
    default_registry._source_groups.clear()
    default_registry._source_groups.update(groups)


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
