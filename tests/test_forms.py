"""The WTForms field that processes uploads on validation, and its use with a model."""

from __future__ import annotations

import io
import typing as t
from pathlib import Path

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import FlaskForm
from PIL import Image
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from werkzeug.datastructures import FileStorage, MultiDict

from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.exceptions import ImproperlyConfigured, UnknownFormat
from flask_imagekit.formats import sniff_format
from flask_imagekit.forms import ProcessedImageField, ProcessedUpload
from flask_imagekit.models import ProcessedImageField as ProcessedImageColumn
from flask_imagekit.processors import ResizeToFill

from .conftest import encode, photo


class Avatar(ImageSpec):
    processors = [ResizeToFill(50, 50)]
    format = "JPEG"


@pytest.fixture
def form_app(app: Flask) -> Flask:
    app.config.update(WTF_CSRF_ENABLED=False, SECRET_KEY="test", IMAGEKIT_MAX_SOURCE_PIXELS=10**6)
    imagekit = ImageKit(app)
    imagekit.register.generator("tests:avatar", Avatar)
    return app


def make_form(**field_kwargs: t.Any) -> type[FlaskForm]:
    class AvatarForm(FlaskForm):  # type: ignore[misc]
        avatar = ProcessedImageField("Avatar", **field_kwargs)

    return AvatarForm


def upload(data: bytes, filename: str) -> MultiDict[str, FileStorage]:
    return MultiDict({"avatar": FileStorage(io.BytesIO(data), filename=filename)})


@pytest.mark.parametrize(
    "field_kwargs",
    [{"spec_id": "tests:avatar"}, {"processors": [ResizeToFill(50, 50)], "format": "JPEG"}],
)
def test_upload_is_processed_on_validation(
    form_app: Flask, field_kwargs: dict[str, t.Any]
) -> None:
    with form_app.test_request_context(method="POST"):
        form = make_form(**field_kwargs)(formdata=upload(encode(photo(), "PNG"), "me.png"))
        assert form.validate(), form.errors
        data = form.avatar.data
        assert isinstance(data, ProcessedUpload)
        assert data.filename == "me.jpg"
        assert data.content_type == "image/jpeg"
        with Image.open(data.stream) as img:
            assert img.format == "JPEG"
            assert img.size == (50, 50)


@pytest.mark.parametrize(
    ("data", "filename", "message"),
    [
        (b"hello, I am text", "notes.txt", "not an image"),
        (b"", "empty.png", "empty"),
        (encode(Image.new("L", (2000, 1000)), "PNG"), "huge.png", "too large"),
        (encode(photo(), "JPEG")[:400], "cut.jpg", "truncated"),
    ],
)
def test_bad_uploads_are_validation_errors(
    form_app: Flask, data: bytes, filename: str, message: str
) -> None:
    with form_app.test_request_context(method="POST"):
        form = make_form(spec_id="tests:avatar")(formdata=upload(data, filename))
        assert not form.validate()
        assert message in " ".join(form.avatar.errors)
        assert not isinstance(form.avatar.data, ProcessedUpload)


@pytest.fixture
def generated(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The class names of the specs that generate an image, in order."""
    names: list[str] = []
    original = ImageSpec.generate

    def counting(self: ImageSpec) -> io.BytesIO:
        names.append(type(self).__name__)
        return original(self)

    monkeypatch.setattr(ImageSpec, "generate", counting)
    return names


def test_processed_upload_is_stored_once_by_the_model_column(
    form_app: Flask, tmp_path: Path, media_root: Path, generated: list[str]
) -> None:
    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)

    class Person(db.Model):  # type: ignore[name-defined,misc]
        id: Mapped[int] = mapped_column(primary_key=True)
        avatar: Mapped[str | None] = ProcessedImageColumn(
            upload_to="avatars", processors=[ResizeToFill(20, 20)], format="JPEG"
        )

    form_app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    db.init_app(form_app)
    with form_app.test_request_context(method="POST"):
        db.create_all()
        form = make_form(spec_id="tests:avatar")(formdata=upload(encode(photo(), "PNG"), "me.png"))
        assert form.validate()
        person = Person(avatar=form.avatar.data)
        db.session.add(person)
        db.session.commit()
        # The form's spec is not the column's: the column's own spec runs on the
        # original upload (a 50x50 form output must not land in a 20x20 column).
        assert generated == ["Avatar", "ProcessedImageFieldSpec"]
        assert person.avatar == "avatars/me.jpg"
        assert (person.avatar.width, person.avatar.height) == (20, 20)
        assert (media_root / "avatars" / "me.jpg").is_file()
        db.session.remove()
        with db.engine.connect():
            pass
        db.engine.dispose()


def test_form_output_of_the_columns_own_spec_is_stored_as_is(
    form_app: Flask, media_root: Path, tmp_path: Path, generated: list[str]
) -> None:
    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)

    class Member(db.Model):  # type: ignore[name-defined,misc]
        id: Mapped[int] = mapped_column(primary_key=True)
        avatar: Mapped[str | None] = ProcessedImageColumn(upload_to="m", spec_id="tests:avatar")

    form_app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    db.init_app(form_app)
    with form_app.test_request_context(method="POST"):
        db.create_all()
        form = make_form(spec_id="tests:avatar")(formdata=upload(encode(photo(), "PNG"), "me.png"))
        assert form.validate()
        member = Member(avatar=form.avatar.data)
        db.session.add(member)
        db.session.commit()
        assert generated == ["Avatar"]  # processed once, by the form
        assert (member.avatar.width, member.avatar.height) == (50, 50)
        db.session.remove()
        db.engine.dispose()


def test_spec_id_with_processors_registers_the_spec(form_app: Flask) -> None:
    from flask_imagekit.processors import ResizeToFit

    Form = make_form(spec_id="tests:form-defined", processors=[ResizeToFit(30, 30)], format="PNG")
    with form_app.test_request_context(method="POST"):
        form = Form(formdata=upload(encode(photo(), "JPEG"), "a.jpg"))
        assert form.validate()
        assert form.avatar.data.filename == "a.png"
        # Registered under its id, as django-imagekit's form field does.
        registry = form_app.extensions["imagekit"].registry
        spec = registry.get_generator("tests:form-defined", source=None)
        assert spec.format == "PNG"
        assert spec.processors == [ResizeToFit(30, 30)]


def test_processors_that_are_not_a_list_are_refused(form_app: Flask) -> None:
    Form = make_form(processors=ResizeToFill(50, 50), format="JPEG")  # no brackets
    with form_app.test_request_context(method="POST"):
        with pytest.raises(ImproperlyConfigured, match="processors must be a list"):
            Form(formdata=upload(encode(photo(), "PNG"), "me.png"))


def test_one_spec_class_per_settings(form_app: Flask) -> None:
    Form = make_form(processors=[ResizeToFill(20, 20)], format="PNG")
    with form_app.test_request_context(method="POST"):
        first, second = Form(), Form()
        assert first.avatar.spec_class is second.avatar.spec_class
        assert first.avatar.spec_class.__name__ == "ProcessedImageFieldSpec"


def test_sniff_format_reads_bytes_and_streams() -> None:
    data = encode(photo(), "PNG")
    assert sniff_format(data) == "PNG"
    stream = io.BytesIO(data)
    stream.seek(5)
    assert sniff_format(stream) == "PNG"
    assert stream.tell() == 5  # left where it was
    with pytest.raises(UnknownFormat, match="not an image"):
        sniff_format(b"hello, I am text")
