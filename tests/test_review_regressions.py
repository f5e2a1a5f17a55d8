"""Regressions found in review: UUID rows on workers, stored uploads as sources,
pickling shorthand specs, custom namers, and jobs for vanished sources."""

from __future__ import annotations

import io
import json
import pickle
import sys
import types
import typing as t
import uuid
from pathlib import Path

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from werkzeug.datastructures import FileStorage

from flask_imagekit import ImageKit
from flask_imagekit.cachefiles import LazyGeneratedImageFile
from flask_imagekit.cachefiles.backends import AsyncBackend, CacheFileState
from flask_imagekit.jobs import job_payload, run_job
from flask_imagekit.models import ImageSpecField, ProcessedImageField
from flask_imagekit.processors import ResizeToFill
from flask_imagekit.storage import FileSystemStorage
from flask_imagekit.utils import get_field_info

from .conftest import encode, photo, save_source


class Recorder(AsyncBackend):
    """An async backend that keeps the jobs it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, t.Any]] = []

    def schedule(self, payload: dict[str, t.Any]) -> None:
        self.sent.append(payload)


@pytest.fixture
def db_app(app: Flask, tmp_path: Path) -> t.Iterator[tuple[Flask, SQLAlchemy]]:
    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    db.init_app(app)
    yield app, db
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


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


def test_stored_upload_in_its_own_storage_is_a_source(
    db_app: tuple[Flask, SQLAlchemy], tmp_path: Path
) -> None:
    app, db = db_app
    other = FileSystemStorage(tmp_path / "other", "/other/")

    class Profile(db.Model):  # type: ignore[name-defined,misc]
        id: Mapped[int] = mapped_column(primary_key=True)
        photo: Mapped[str | None] = ProcessedImageField(
            upload_to="photos", processors=[ResizeToFill(50, 50)], format="PNG", storage=other
        )
        photo_thumb = ImageSpecField(
            source="photo", processors=[ResizeToFill(5, 5)], format="JPEG"
        )

    ImageKit(app, db=db)
    with app.test_request_context():
        db.create_all()
        profile = Profile(photo=FileStorage(io.BytesIO(encode(photo(), "PNG")), filename="me.png"))
        db.session.add(profile)
        db.session.commit()
        assert (tmp_path / "other" / "photos" / "me.png").is_file()
        assert (profile.photo_thumb.width, profile.photo_thumb.height) == (5, 5)
        html = app.jinja_env.from_string('{{ thumbnail("8x8", p.photo) }}').render(p=profile)
        assert 'width="8" height="8"' in html


CARD_MODULE = """
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column
from flask_imagekit.models import ImageSpecField
from flask_imagekit.processors import ResizeToFill

class Card(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    picture: Mapped[str | None] = mapped_column(String(255))
    thumb = ImageSpecField(source="picture", processors=[ResizeToFill(9, 9)], format="JPEG")
"""


def test_cache_files_of_shorthand_specs_pickle(
    db_app: tuple[Flask, SQLAlchemy], media_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, db = db_app
    # Pickle finds classes by module and name: define the model in a real module.
    module = types.ModuleType("cards_models")
    module.__dict__["db"] = db
    monkeypatch.setitem(sys.modules, "cards_models", module)
    exec(compile(CARD_MODULE, "cards_models.py", "exec"), module.__dict__)  # noqa: S102
    ImageKit(app, db=db)
    save_source(media_root, "b.jpg")
    with app.app_context():
        file = module.Card(picture="b.jpg").thumb
        name = file.name
        again = pickle.loads(pickle.dumps(file))
        assert again.name == name
        assert (again.width, again.height) == (9, 9)


def row_namer(generator: t.Any) -> str:
    instance, _ = get_field_info(generator.source)
    return f"CACHE/rows/{instance.id}/{generator.get_hash()}.jpg"


def test_custom_namers_are_asked_every_time(
    db_app: tuple[Flask, SQLAlchemy], media_root: Path
) -> None:
    app, db = db_app
    app.config["IMAGEKIT_SPEC_CACHEFILE_NAMER"] = row_namer

    class Row(db.Model):  # type: ignore[name-defined,misc]
        id: Mapped[int] = mapped_column(primary_key=True)
        picture: Mapped[str | None] = mapped_column(String(255))
        thumb = ImageSpecField(source="picture", processors=[ResizeToFill(4, 4)], format="JPEG")

    ImageKit(app, db=db)
    with app.app_context():
        db.create_all()
        rows = [Row(picture="same.jpg"), Row(picture="same.jpg")]
        db.session.add_all(rows)
        db.session.commit()
        assert [row.thumb.name.split("/")[2] for row in rows] == ["1", "2"]


def test_job_for_a_vanished_source_is_not_enqueued_again_at_once(
    app: Flask, media_root: Path
) -> None:
    from .test_extension import Thumb

    backend = Recorder()
    app.config.update(SECRET_KEY="test", IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=backend)
    imagekit = ImageKit(app)
    imagekit.register.generator("review:thumb", Thumb)
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
