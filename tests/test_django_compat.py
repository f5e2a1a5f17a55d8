"""Source groups behave like django-imagekit's.

A registered ``ImageFieldSourceGroup`` watches its column even on a model with no
``ImageSpecField`` (the seed pages' use with template tags and Optimistic); a
group on an abstract base or a mixin covers every mapped concrete descendant;
and a row of a subclass sends one signal per group, once.
"""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_imagekit import ImageKit, ImageSpec, register
from flask_imagekit.exceptions import MissingSource
from flask_imagekit.models import ImageSpecField
from flask_imagekit.processors import ResizeToFill
from flask_imagekit.signals import source_changed, source_created, source_deleted
from flask_imagekit.specs.sourcegroups import ImageFieldSourceGroup

from .conftest import save_source


class Thumb(ImageSpec):
    processors = [ResizeToFill(20, 20)]
    format = "JPEG"


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, t.Any, str | None]] = []

    def __enter__(self) -> Recorder:
        for name, signal in self._signals():
            signal.connect(self._receiver(name))
        return self

    def __exit__(self, *exc: object) -> None:
        for _, signal in self._signals():
            for receiver in list(signal.receivers.values()):
                signal.disconnect(receiver)

    def _signals(self) -> list[tuple[str, t.Any]]:
        return [
            ("created", source_created),
            ("changed", source_changed),
            ("deleted", source_deleted),
        ]

    def _receiver(self, name: str) -> t.Callable[..., None]:
        def receive(sender: t.Any, source: t.Any = None, **extra: t.Any) -> None:
            self.events.append((name, sender, source.name if source else None))

        setattr(self, f"_keep_{name}", receive)  # blinker keeps weak references
        return receive


def make_app(tmp_path: Path, db: SQLAlchemy) -> Flask:
    media = tmp_path / "media"
    media.mkdir(exist_ok=True)
    app = Flask("compat", instance_path=str(tmp_path / "instance"))
    app.config.update(
        TESTING=True,
        IMAGEKIT_MEDIA_ROOT=str(media),
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    db.init_app(app)
    ImageKit(app, db=db)
    return app


def test_a_registered_group_on_a_model_without_spec_fields_sends_signals(tmp_path: Path) -> None:
    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)

    class Photo(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "compat_photo"
        id: Mapped[int] = mapped_column(primary_key=True)
        original_image: Mapped[str | None] = mapped_column(String(255))

    app = make_app(tmp_path, db)
    group = ImageFieldSourceGroup(Photo, "original_image")
    register.generator("compat:thumb", Thumb)
    register.source_group("compat:thumb", group)
    save_source(tmp_path / "media", "photos/a.jpg")
    save_source(tmp_path / "media", "photos/b.jpg")
    with app.app_context(), Recorder() as recorder:
        db.create_all()
        photo = Photo(original_image="photos/a.jpg")
        db.session.add(photo)
        db.session.commit()
        photo.original_image = "photos/b.jpg"
        db.session.commit()
        db.session.delete(photo)
        db.session.commit()
        db.session.remove()
    assert recorder.events == [
        ("created", group, "photos/a.jpg"),
        ("changed", group, "photos/b.jpg"),
        ("deleted", group, "photos/a.jpg"),
        ("deleted", group, "photos/b.jpg"),
    ]


def test_optimistic_with_a_registered_group_generates_on_save(tmp_path: Path) -> None:
    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)

    class Photo(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "compat_photo2"
        id: Mapped[int] = mapped_column(primary_key=True)
        original_image: Mapped[str | None] = mapped_column(String(255))

    class OptimisticThumb(Thumb):
        cachefile_strategy = "flask_imagekit.cachefiles.strategies.Optimistic"

    app = make_app(tmp_path, db)
    register.generator("compat:opt", OptimisticThumb)
    register.source_group("compat:opt", ImageFieldSourceGroup(Photo, "original_image"))
    save_source(tmp_path / "media", "photos/a.jpg")
    with app.app_context():
        db.create_all()
        db.session.add(Photo(original_image="photos/a.jpg"))
        db.session.commit()
        db.session.remove()
    assert list((tmp_path / "media/CACHE/images/photos/a").iterdir())


def define_hierarchy() -> tuple[SQLAlchemy, type, type, type, type]:
    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)

    class ImageMixin:
        image: Mapped[str | None] = mapped_column(String(255))
        thumb = ImageSpecField(source="image", processors=[ResizeToFill(10, 10)], format="JPEG")

    class AbstractItem(db.Model):  # type: ignore[name-defined,misc]
        __abstract__ = True
        id: Mapped[int] = mapped_column(primary_key=True)
        picture: Mapped[str | None] = mapped_column(String(255))

    class Item(ImageMixin, AbstractItem):
        __tablename__ = "compat_item"
        kind: Mapped[str] = mapped_column(String(20), default="item")
        __mapper_args__: t.ClassVar[dict[str, t.Any]] = {
            "polymorphic_on": "kind",
            "polymorphic_identity": "item",
        }

    class SpecialItem(Item):
        __mapper_args__: t.ClassVar[dict[str, t.Any]] = {"polymorphic_identity": "special"}

    class Other(AbstractItem):
        __tablename__ = "compat_other"

    return db, ImageMixin, AbstractItem, Item, SpecialItem


def test_a_subclass_row_sends_one_signal_per_group(tmp_path: Path) -> None:
    db, _mixin, _abstract, Item, SpecialItem = define_hierarchy()
    app = make_app(tmp_path, db)
    save_source(tmp_path / "media", "items/a.jpg")
    with app.app_context(), Recorder() as recorder:
        db.create_all()
        db.session.add(SpecialItem(image="items/a.jpg"))
        db.session.commit()
        db.session.remove()
        spec_id = Item.thumb.spec_id
        groups = app.extensions["imagekit"].registry.source_groups(spec_id)
        assert len(groups) == 1
        assert sum(1 for _ in groups[0].files()) == 1
    assert [e[0] for e in recorder.events] == ["created"]


def test_cli_counts_a_subclass_row_once(tmp_path: Path) -> None:
    db, _mixin, _abstract, Item, SpecialItem = define_hierarchy()
    app = make_app(tmp_path, db)
    save_source(tmp_path / "media", "items/a.jpg")
    with app.app_context():
        db.create_all()
        db.session.add(SpecialItem(image="items/a.jpg"))
        db.session.commit()
        db.session.remove()
    result = app.test_cli_runner().invoke(args=["imagekit", "list"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if Item.thumb.spec_id in line]
    assert len(lines) == 1, result.output
    assert lines[0].endswith("  1 sources"), result.output


def test_a_group_on_an_abstract_base_walks_every_concrete_model(tmp_path: Path) -> None:
    db, _mixin, AbstractItem, Item, SpecialItem = define_hierarchy()
    Other = next(c for c in AbstractItem.__subclasses__() if c.__name__ == "Other")
    app = make_app(tmp_path, db)
    group = ImageFieldSourceGroup(AbstractItem, "picture")
    register.generator("compat:abstract", Thumb)
    register.source_group("compat:abstract", group)
    with app.app_context(), Recorder() as recorder:
        db.create_all()
        db.session.add_all(
            [
                Item(picture="p/1.jpg"),
                SpecialItem(picture="p/2.jpg"),
                Other(picture="p/3.jpg"),
                Other(),
            ]
        )
        db.session.commit()
        names = sorted(source.name for source in group.files())
        assert names == ["p/1.jpg", "p/2.jpg", "p/3.jpg"]
        assert group.count() == 3
        db.session.remove()
    created = sorted(name for kind, sender, name in recorder.events if sender == group)
    assert created == ["p/1.jpg", "p/2.jpg", "p/3.jpg"]


def test_a_group_on_a_mixin_walks_every_model_using_it(tmp_path: Path) -> None:
    db, ImageMixin, _abstract, Item, SpecialItem = define_hierarchy()
    app = make_app(tmp_path, db)
    group = ImageFieldSourceGroup(ImageMixin, "image")
    with app.app_context():
        db.create_all()
        db.session.add_all([Item(image="i/1.jpg"), SpecialItem(image="i/2.jpg")])
        db.session.commit()
        assert sorted(s.name for s in group.files()) == ["i/1.jpg", "i/2.jpg"]
        assert group.count() == 2
        db.session.remove()


def test_imagespec_missingsource_is_the_exception() -> None:
    assert ImageSpec.MissingSource is MissingSource
    with pytest.raises(ImageSpec.MissingSource):
        Thumb().generate()


def test_processed_image_field_takes_processors_first(tmp_path: Path) -> None:
    import io

    from PIL import Image
    from werkzeug.datastructures import FileStorage

    from flask_imagekit.models import ProcessedImageField
    from flask_imagekit.processors import SmartCrop

    from .conftest import encode, photo

    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)
    register.generator("compat:registered", Thumb)

    class Card(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "compat_card"
        id: Mapped[int] = mapped_column(primary_key=True)
        face: Mapped[str | None] = ProcessedImageField(
            [SmartCrop(50, 40)], format="JPEG", upload_to="p"
        )
        back: Mapped[str | None] = ProcessedImageField(spec_id="compat:registered", upload_to="b")

    app = make_app(tmp_path, db)
    with app.app_context():
        db.create_all()
        data = encode(photo((200, 100)), "PNG")
        card = Card(
            face=FileStorage(io.BytesIO(data), filename="f.png"),
            back=FileStorage(io.BytesIO(data), filename="b.png"),
        )
        db.session.add(card)
        db.session.commit()
        assert card.face == "p/f.jpg"
        assert (card.face.width, card.face.height) == (50, 40)
        assert card.back == "b/b.jpg"
        with Image.open(tmp_path / "media" / card.back) as img:
            assert img.size == (20, 20)
        db.session.remove()


def test_processed_image_field_refuses_spec_id_with_processors() -> None:
    from flask_imagekit.exceptions import ImproperlyConfigured
    from flask_imagekit.models import ProcessedImageField

    with pytest.raises(ImproperlyConfigured, match="spec_id"):
        ProcessedImageField([ResizeToFill(5, 5)], spec_id="x:y")
