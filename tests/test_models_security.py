"""What the upload columns and fields take from visitors, and what they tell them.

* ProcessedImageField names must fit their column, on SQLite and PostgreSQL.
  SQLite stores a string of any length in a ``VARCHAR(n)``; PostgreSQL refuses
  it at commit. The column checks the stored name when the upload is assigned,
  so a name that cannot fit fails the same way on both, before anything is
  committed, and leaves no stored file behind.
* The WTForms field tells a visitor why an upload was refused in plain words:
  no paths, file names or names of settings; the detail goes to the log.
"""

from __future__ import annotations

import dataclasses
import io
import typing as t
from pathlib import Path

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from PIL import Image
from sqlalchemy import Integer, select
from sqlalchemy.orm import DeclarativeBase, mapped_column
from werkzeug.datastructures import FileStorage, MultiDict

from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.exceptions import GenerationError, ImageKitError, SourceError, StorageError
from flask_imagekit.forms import ProcessedImageField as ProcessedImageFormField
from flask_imagekit.forms import visitor_message
from flask_imagekit.models import ProcessedImageField, StoredImage
from flask_imagekit.processors import ResizeToFill

from .conftest import Database, encode, photo


@dataclasses.dataclass
class Env:
    db: SQLAlchemy
    Card: t.Any
    media: Path

    @property
    def session(self) -> t.Any:
        return self.db.session

    def files(self) -> list[str]:
        return sorted(
            p.relative_to(self.media).as_posix() for p in self.media.rglob("*") if p.is_file()
        )

    def raw_names(self) -> list[str]:
        return list(self.session.scalars(select(self.Card.__table__.c.picture)))


@pytest.fixture
def make_env(database: Database, tmp_path: Path) -> t.Iterator[t.Callable[..., Env]]:
    """``make_env(upload_to, **field_kwargs)``: a ``Card`` model with one processed column."""
    cleanups: list[t.Callable[[], None]] = []

    def factory(upload_to: t.Any = "photos", **field_kwargs: t.Any) -> Env:
        class Base(DeclarativeBase):
            pass

        db = SQLAlchemy(model_class=Base)

        class Card(db.Model):  # type: ignore[name-defined,misc]
            __tablename__ = "card"
            id = mapped_column(Integer, primary_key=True)
            picture = ProcessedImageField(
                upload_to=upload_to,
                processors=[ResizeToFill(8, 8)],
                format="JPEG",
                **field_kwargs,
            )

        media = tmp_path / "media"
        media.mkdir(exist_ok=True)
        app = Flask(__name__, instance_path=str(tmp_path / "instance"))
        app.config.update(
            TESTING=True,
            IMAGEKIT_MEDIA_ROOT=str(media),
            SQLALCHEMY_DATABASE_URI=database.uri,
            SQLALCHEMY_ENGINE_OPTIONS=database.engine_options,
        )
        db.init_app(app)
        ImageKit(app, db=db)
        ctx = app.app_context()
        ctx.push()

        def cleanup() -> None:
            try:
                db.session.remove()
                for engine in db.engines.values():
                    engine.dispose()
            finally:
                ctx.pop()

        cleanups.append(cleanup)
        db.create_all()
        return Env(db, Card, media)

    yield factory
    for cleanup in reversed(cleanups):
        cleanup()


def upload(filename: str) -> FileStorage:
    return FileStorage(io.BytesIO(encode(photo((40, 30)), "PNG")), filename=filename)


LONG_STEM = "a-very-long-holiday-photo-name-" * 5  # 155 characters


def test_long_upload_name_is_shortened_to_fit_the_column(make_env: t.Callable[..., Env]) -> None:
    env = make_env("photos", length=40)
    card = env.Card(picture=upload(f"{LONG_STEM}.png"))
    name = card.picture.name
    assert len(name) <= 40
    assert name.startswith("photos/a-very-long-holiday")
    assert name.endswith(".jpg")
    env.session.add(card)
    env.session.commit()  # PostgreSQL refuses a VARCHAR(40) overflow here
    env.session.expire_all()
    assert card.picture == name
    assert env.raw_names() == [name]
    assert env.files() == [name]


def test_default_column_with_a_long_upload_to(make_env: t.Callable[..., Env]) -> None:
    folder = "archive/" + "f" * 200
    env = make_env(folder)
    card = env.Card(picture=upload(f"{LONG_STEM}.png"))
    assert len(card.picture.name) <= 255
    assert card.picture.name.startswith(f"{folder}/a-very-long")
    assert card.picture.name.endswith(".jpg")
    env.session.add(card)
    env.session.commit()
    env.session.expire_all()
    assert env.raw_names() == [card.picture.name]


def test_name_from_a_callable_upload_to_is_shortened(make_env: t.Callable[..., Env]) -> None:
    def upload_to(instance: t.Any, filename: str) -> str:
        return f"users/7/{filename}"

    env = make_env(upload_to, length=40)
    card = env.Card(picture=upload(f"{LONG_STEM}.png"))
    assert len(card.picture.name) <= 40
    assert card.picture.name.startswith("users/7/a-very")
    assert card.picture.name.endswith(".jpg")
    env.session.add(card)
    env.session.commit()
    env.session.expire_all()
    assert env.raw_names() == [card.picture.name]


def test_same_long_upload_twice_both_fit(make_env: t.Callable[..., Env]) -> None:
    env = make_env("photos", length=40)
    first = env.Card(picture=upload(f"{LONG_STEM}.png"))
    second = env.Card(picture=upload(f"{LONG_STEM}.png"))  # taken: a suffix is added
    names = [first.picture.name, second.picture.name]
    assert names[0] != names[1]
    assert all(len(name) <= 40 for name in names), names
    env.session.add_all([first, second])
    env.session.commit()
    env.session.expire_all()
    assert sorted(env.raw_names()) == sorted(names)
    assert env.files() == sorted(names)


def test_upload_to_longer_than_the_column_is_refused_before_storing(
    make_env: t.Callable[..., Env],
) -> None:
    env = make_env("uploads/" + "d" * 40, length=40)
    card = env.Card()
    with pytest.raises(StorageError, match=r"too long for the column Card\.picture.*upload_to"):
        card.picture = upload("me.png")
    assert card.picture is None
    assert env.files() == []
    env.session.add(card)
    env.session.commit()  # the row itself is still fine
    env.session.expire_all()
    assert env.raw_names() == [None]


def test_callable_upload_to_that_ignores_the_filename_is_refused(
    make_env: t.Callable[..., Env],
) -> None:
    def upload_to(instance: t.Any, filename: str) -> str:
        return "fixed/" + "n" * 50 + ".jpg"

    env = make_env(upload_to, length=40)
    with pytest.raises(StorageError, match="length="):
        env.Card(picture=upload("me.png"))
    assert env.files() == []


def test_taken_name_without_room_for_a_suffix_is_refused_and_removed(
    make_env: t.Callable[..., Env],
) -> None:
    env = make_env("photos", length=15)
    first = env.Card(picture=upload("a.png"))
    assert first.picture.name == "photos/a.jpg"
    with pytest.raises(StorageError, match="too long for the column"):
        env.Card(picture=upload("a.png"))  # taken: "photos/a_XXXXXXX.jpg" is 20 long
    assert env.files() == ["photos/a.jpg"]
    env.session.add(first)
    env.session.commit()
    env.session.expire_all()
    assert env.raw_names() == ["photos/a.jpg"]


def test_plain_name_longer_than_the_column_is_refused(make_env: t.Callable[..., Env]) -> None:
    env = make_env("photos", length=40)
    card = env.Card()
    with pytest.raises(StorageError, match="too long for the column"):
        card.picture = "photos/" + "x" * 60 + ".jpg"
    assert card.picture is None
    card.picture = "photos/short.jpg"  # a name that fits is kept as is
    assert isinstance(card.picture, str)
    env.session.add(card)
    env.session.commit()
    env.session.expire_all()
    assert card.picture == "photos/short.jpg"
    assert isinstance(card.picture, StoredImage)


# Messages shown to visitors ----------------------------------------------------------------


class Square(ImageSpec):
    processors = [ResizeToFill(8, 8)]
    format = "JPEG"


def refusal(data: bytes, filename: str) -> ImageKitError:
    """The error the library raises for an upload of ``data``."""
    with pytest.raises(ImageKitError) as caught:
        Square(source=FileStorage(io.BytesIO(data), filename=filename)).generate()
    return caught.value


BAD_UPLOADS = [
    pytest.param(
        b"plain text", "/srv/app/notes.txt", "This file is not an image we accept.", id="text"
    ),
    pytest.param(b"%PDF-1.7 ...", "report.pdf", "This file is not an image we accept.", id="pdf"),
    pytest.param(b"", "empty.png", "The file is empty.", id="empty"),
    pytest.param(
        encode(photo((200, 150)), "PNG")[:300], "cut.png", "The file is truncated", id="truncated"
    ),
    pytest.param(
        encode(Image.new("L", (2000, 1000)), "PNG"),
        "huge.png",
        "This image is too large.",
        id="huge",
    ),
    # The file's name is no evidence: this one is text, not a damaged image.
    pytest.param(
        b"plain text", "corrupt truncated empty.png", "not an image we accept", id="name"
    ),
]


@pytest.fixture
def form_app(app: Flask) -> Flask:
    app.config.update(WTF_CSRF_ENABLED=False, SECRET_KEY="test", IMAGEKIT_MAX_SOURCE_PIXELS=10**6)
    ImageKit(app)
    return app


@pytest.mark.parametrize(("data", "filename", "message"), BAD_UPLOADS)
def test_form_field_shows_plain_words_and_logs_the_detail(
    form_app: Flask,
    caplog: pytest.LogCaptureFixture,
    data: bytes,
    filename: str,
    message: str,
) -> None:
    from flask_wtf import FlaskForm

    class Form(FlaskForm):  # type: ignore[misc]
        picture = ProcessedImageFormField(
            "Picture", processors=[ResizeToFill(8, 8)], format="JPEG"
        )

    caplog.set_level("WARNING", logger="flask_imagekit.forms")
    with form_app.test_request_context(method="POST"):
        formdata = MultiDict({"picture": FileStorage(io.BytesIO(data), filename=filename)})
        form = Form(formdata=formdata)
        assert not form.validate()
        (shown,) = form.picture.errors
        assert message in shown
        for internal in ("IMAGEKIT_", "/", "'", filename, "Pillow", "MiB"):
            assert internal not in shown
        error = form.picture.imagekit_error
        assert isinstance(error, SourceError)
        assert str(error) in caplog.text  # the detail, for the site's owner
        assert filename in caplog.text


def test_form_field_forgets_the_error_of_an_earlier_upload(form_app: Flask) -> None:
    from flask_wtf import FlaskForm

    class Form(FlaskForm):  # type: ignore[misc]
        picture = ProcessedImageFormField(
            "Picture", processors=[ResizeToFill(8, 8)], format="JPEG"
        )

    with form_app.test_request_context(method="POST"):
        form = Form(formdata=MultiDict({"picture": FileStorage(io.BytesIO(b"x"), filename="x")}))
        assert not form.validate()
        assert form.picture.imagekit_error is not None
        good = FileStorage(io.BytesIO(encode(photo(), "PNG")), filename="ok.png")
        form.picture.process(MultiDict({"picture": good}))
        assert form.picture.validate(form)
        assert form.picture.imagekit_error is None


@pytest.mark.parametrize(("data", "filename", "message"), BAD_UPLOADS)
def test_visitor_message_of_each_refusal(
    form_app: Flask, data: bytes, filename: str, message: str
) -> None:
    with form_app.app_context():
        shown = visitor_message(refusal(data, filename))
    assert message in shown
    assert "IMAGEKIT_" not in shown
    assert filename not in shown


def test_visitor_message_lists_the_accepted_formats(form_app: Flask) -> None:
    form_app.extensions["imagekit.state"] = dataclasses.replace(
        form_app.extensions["imagekit.state"], allowed_source_formats=("WEBP", "AVIF")
    )
    with form_app.app_context():
        shown = visitor_message(refusal(b"text", "a.txt"))
    assert shown == "This file is not an image we accept. Upload a WebP or AVIF image."


@pytest.mark.parametrize(
    "error",
    [
        StorageError("Could not save 'photos/a.jpg' in the storage at '/srv/media': Disk full."),
        GenerationError("The processor Boom() of Square failed on '/srv/media/a.png': boom."),
    ],
)
def test_visitor_message_of_a_server_side_failure(error: ImageKitError) -> None:
    shown = visitor_message(error)
    assert shown == "Your image could not be saved right now. Please try again later."
