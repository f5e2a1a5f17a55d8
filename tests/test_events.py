"""``flask_imagekit.events``: source signals reach the strategies of their cache files.

On the commit path the specs of one column share one decode of the source, as
``flask imagekit generate`` does, and a strategy that generates nothing decodes
nothing.
"""

from __future__ import annotations

import io
import logging
import typing as t
from pathlib import Path

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from PIL import Image
from sqlalchemy import Integer, String
from sqlalchemy.orm import DeclarativeBase, mapped_column

from flask_imagekit import ImageKit
from flask_imagekit.events import dispatch_source_event
from flask_imagekit.globals import current_state
from flask_imagekit.models import ImageSpecField
from flask_imagekit.processors import ResizeToFill, ResizeToFit
from flask_imagekit.storage import FileSystemStorage

OPTIMISTIC = "flask_imagekit.cachefiles.strategies.Optimistic"
SOURCE = "photos/one.jpg"


class CountingStorage(FileSystemStorage):
    """A local storage counting how often each name is opened."""

    def __init__(self, location: Path) -> None:
        super().__init__(str(location), "/media/")
        self.opened: list[str] = []

    def open(self, name: str, mode: str = "rb") -> t.IO[bytes]:
        self.opened.append(name)
        return super().open(name, mode)


def make_app(tmp_path: Path, strategy: str) -> tuple[Flask, SQLAlchemy, t.Any, CountingStorage]:
    """An app with a model whose column feeds three specs, and a counting storage."""

    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)

    class Photo(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "photo"
        id = mapped_column(Integer, primary_key=True)
        image = mapped_column(String(255))
        small = ImageSpecField(source="image", processors=[ResizeToFill(40, 30)], format="JPEG")
        wide = ImageSpecField(source="image", processors=[ResizeToFill(120, 40)], format="PNG")
        fit = ImageSpecField(source="image", processors=[ResizeToFit(80, 80)], format="WEBP")

    storage = CountingStorage(tmp_path / "media")
    app = Flask("events", instance_path=str(tmp_path / "instance"))
    app.config.update(
        TESTING=True,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        IMAGEKIT_DEFAULT_FILE_STORAGE=storage,
        IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=strategy,
    )
    db.init_app(app)
    ImageKit(app, db=db)
    (tmp_path / "media" / "photos").mkdir(parents=True)
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 80, 40)).save(buffer, "JPEG")
    (tmp_path / "media" / SOURCE).write_bytes(buffer.getvalue())
    with app.app_context():
        db.create_all()
    return app, db, Photo, storage


def test_the_specs_of_a_column_decode_the_source_once_on_commit(tmp_path: Path) -> None:
    app, db, photo_model, storage = make_app(tmp_path, OPTIMISTIC)
    with app.app_context():
        photo = photo_model(image=SOURCE)
        db.session.add(photo)
        db.session.commit()
        assert storage.opened.count(SOURCE) == 1
        for attr, size in (("small", (40, 30)), ("wide", (120, 40)), ("fit", (80, 60))):
            file = getattr(photo, attr)
            assert (tmp_path / "media" / file.name).is_file()
            with Image.open(tmp_path / "media" / file.name) as img:
                assert img.size == size
        db.session.remove()


def test_a_strategy_that_generates_nothing_decodes_nothing(tmp_path: Path) -> None:
    app, db, photo_model, storage = make_app(
        tmp_path, "flask_imagekit.cachefiles.strategies.JustInTime"
    )
    with app.app_context():
        db.session.add(photo_model(image=SOURCE))
        db.session.commit()
        assert SOURCE not in storage.opened
        assert not (tmp_path / "media" / "CACHE").exists()
        db.session.remove()


def test_a_group_reaches_every_id_it_is_registered_with(tmp_path: Path) -> None:
    app, db, photo_model, storage = make_app(tmp_path, OPTIMISTIC)
    with app.app_context():
        registry = current_state().registry
        ids = [photo_model.small.spec_id, photo_model.wide.spec_id, photo_model.fit.spec_id]
        group = registry.source_groups(ids[0])[0]
        assert sorted(registry.generator_ids_for_source_group(group)) == sorted(ids)
        db.session.remove()


def test_a_failing_spec_does_not_stop_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app, db, photo_model, storage = make_app(tmp_path, OPTIMISTIC)
    with app.app_context():
        state = current_state()
        group = state.registry.source_groups(photo_model.small.spec_id)[0]

        def broken(**kwargs: t.Any) -> t.Any:
            msg = "this spec cannot be built"
            raise RuntimeError(msg)

        state.registry.register_generator("ev:broken", broken)
        state.registry.register_source_group("ev:broken", group)
        with caplog.at_level(logging.ERROR, logger="flask_imagekit"):
            dispatch_source_event(state, group, SOURCE, "created")
        assert "ev:broken" in caplog.text
        assert storage.opened.count(SOURCE) == 1
        assert len(list((tmp_path / "media" / "CACHE").rglob("*.*"))) == 3
        db.session.remove()


def test_only_the_specs_that_generate_on_commit_are_encoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, db, photo_model, storage = make_app(tmp_path, OPTIMISTIC)
    # One spec of the column waits for a page (JustInTime): its output is not made now.
    monkeypatch.setattr(
        photo_model.wide.spec_class,
        "cachefile_strategy",
        "flask_imagekit.cachefiles.strategies.JustInTime",
    )
    saved: list[str | None] = []
    original = Image.Image.save

    def counting_save(
        self: Image.Image, fp: t.Any, format: str | None = None, **kw: t.Any
    ) -> None:
        saved.append(format)
        original(self, fp, format, **kw)

    monkeypatch.setattr(Image.Image, "save", counting_save)
    with app.app_context():
        photo = photo_model(image=SOURCE)
        db.session.add(photo)
        db.session.commit()
        assert storage.opened.count(SOURCE) == 1
        assert sorted(str(fmt) for fmt in saved) == ["JPEG", "WEBP"]
        db.session.remove()
