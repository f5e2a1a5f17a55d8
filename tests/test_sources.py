"""Tests for flask_imagekit.sources: anything a user has, as one source-file type.

A source is a name in the source storage, a path, an open binary file, a file in
text mode (reopened in binary by name), a werkzeug ``FileStorage`` or the value of
a model column (DESIGN §6). A closed source is reopened for generation and closed
again; an open one is left open. A source's identity names its cache files: two
different images never share one, the same stored image always does.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import sys
import types
import typing as t
from pathlib import Path

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from PIL import Image
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.datastructures import FileStorage

from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.cachefiles import ImageCacheFile
from flask_imagekit.exceptions import MissingSource, SourceError
from flask_imagekit.globals import current_state
from flask_imagekit.models import ImageSpecField, ProcessedImageField
from flask_imagekit.processors import ResizeToFill
from flask_imagekit.sources import SourceFile, as_source, storage_token
from flask_imagekit.storage import FileSystemStorage, FsspecStorage
from flask_imagekit.templating import thumbnail
from flask_imagekit.utils import get_field_info

from .conftest import encode, photo, save_source

JPEG = encode(photo((64, 48)))


class Fill(ImageSpec):
    processors = [ResizeToFill(100, 50)]
    format = "JPEG"
    options = {"quality": 60}


class Small(ImageSpec):
    processors = [ResizeToFill(8, 6)]
    format = "PNG"


class Unseekable(io.BytesIO):
    """A stream that can only be read forwards (a pipe, a socket)."""

    def seekable(self) -> bool:
        return False


class Failing(io.BytesIO):
    """A stream whose reads fail (a dropped connection)."""

    def read(self, size: int | None = -1) -> bytes:
        msg = "connection reset"
        raise OSError(msg)


@pytest.fixture
def jpeg_path(tmp_path: Path) -> Path:
    path = tmp_path / "files" / "dog.jpg"
    path.parent.mkdir()
    path.write_bytes(JPEG)
    return path


def upload(data: bytes, filename: str) -> FileStorage:
    return FileStorage(stream=io.BytesIO(data), filename=filename, content_type="image/png")


def fetch(app: Flask, url: str) -> tuple[int, str, bytes]:
    """GET ``url`` through the test client; the response is closed afterwards."""
    with app.test_client().get(url) as response:
        return response.status_code, response.mimetype, response.get_data()


def pixel(data: bytes) -> tuple[int, ...]:
    with Image.open(io.BytesIO(data)) as img:
        return t.cast(tuple[int, ...], img.convert("RGB").getpixel((5, 5)))


def read(source: SourceFile) -> bytes:
    with source.open() as fp:
        return fp.read()


# as_source: what a user may pass ------------------------------------------------------------


@pytest.mark.parametrize("value", [None, ""])
def test_nothing_is_no_source(value: str | None) -> None:
    assert as_source(value) is None


def test_a_source_file_is_kept_as_is() -> None:
    source = SourceFile("a.jpg")
    assert as_source(source) is source


def test_a_name_is_a_stored_source(ctx: Flask, media_root: Path) -> None:
    save_source(media_root, "photos/a.jpg")
    source = as_source("photos/a.jpg")
    assert isinstance(source, SourceFile)
    assert source.name == "photos/a.jpg"
    assert source.is_stored
    assert source.storage is None  # the app's source storage, found when opened
    assert source.reference == "photos/a.jpg"
    assert read(source) == (media_root / "photos/a.jpg").read_bytes()


def test_a_name_may_come_with_its_storage(tmp_path: Path) -> None:
    other = FileSystemStorage(tmp_path / "other", "/other/")
    save_source(tmp_path / "other", "a.jpg")
    source = as_source("a.jpg", storage=other)
    assert source is not None
    assert source.storage is other
    assert read(source) == (tmp_path / "other" / "a.jpg").read_bytes()  # no app needed


def test_a_path_is_read_from_disk(jpeg_path: Path) -> None:
    source = as_source(jpeg_path)
    assert source is not None
    assert source.name == str(jpeg_path)
    assert not source.is_stored
    assert source.reference == str(jpeg_path)
    assert read(source) == JPEG


def test_an_open_binary_file_is_read_as_given(jpeg_path: Path) -> None:
    with open(jpeg_path, "rb") as fp:
        source = as_source(fp)
        assert source is not None
        assert source.name == str(jpeg_path)
        assert not source.is_stored  # its bytes are the source, not a stored file's
        with source.open() as opened:
            assert opened is fp
            assert opened.read() == JPEG
        assert not fp.closed


def test_a_stream_without_a_name(tmp_path: Path) -> None:
    source = as_source(io.BytesIO(JPEG))
    assert source is not None
    assert source.name is None
    assert bool(source)
    assert read(source) == JPEG


def test_a_text_mode_file_is_reopened_in_binary_by_name(jpeg_path: Path) -> None:
    with open(jpeg_path, encoding="latin-1") as text:
        source = as_source(text)
        assert source is not None
        assert source.name == str(jpeg_path)
        assert read(source) == JPEG
        assert not text.closed  # the user's file is the user's to close


def test_a_text_stream_without_a_name_is_refused() -> None:
    with pytest.raises(SourceError, match="binary mode"):
        as_source(io.StringIO("not an image"))


def test_a_closed_file_is_reopened_by_name(jpeg_path: Path) -> None:
    fp = open(jpeg_path, "rb")  # noqa: SIM115 - closed on the next line on purpose
    fp.close()
    source = as_source(fp)
    assert source is not None
    assert source.name == str(jpeg_path)
    assert read(source) == JPEG
    assert fp.closed


def test_a_closed_stream_without_a_name_is_refused() -> None:
    stream = io.BytesIO(JPEG)
    stream.close()
    with pytest.raises(SourceError, match="closed"):
        as_source(stream)


def test_an_upload_is_read_from_its_stream() -> None:
    source = as_source(upload(JPEG, "me.jpg"))
    assert source is not None
    assert source.name == "me.jpg"
    assert not source.is_stored
    assert read(source) == JPEG


def test_an_upload_without_a_filename_has_no_name() -> None:
    source = as_source(FileStorage(stream=io.BytesIO(JPEG), filename=""))
    assert source is not None
    assert source.name is None
    assert read(source) == JPEG


@pytest.mark.parametrize("value", [42, 1.5, object(), b"photos/a.jpg", ["a.jpg"]], ids=repr)
def test_anything_else_is_refused_with_what_to_pass(value: object) -> None:
    with pytest.raises(SourceError, match="Cannot use .* as a source image"):
        as_source(value)


# Opening and closing -------------------------------------------------------------------------


def test_an_open_file_is_read_from_its_start_and_left_where_it_was(jpeg_path: Path) -> None:
    with open(jpeg_path, "rb") as fp:
        fp.seek(10)
        source = as_source(fp)
        assert source is not None
        assert read(source) == JPEG
        assert read(source) == JPEG  # again and again
        assert fp.tell() == 10
        assert not fp.closed


def test_what_open_opened_is_closed_again(ctx: Flask, media_root: Path, jpeg_path: Path) -> None:
    save_source(media_root, "a.jpg")
    for source in (SourceFile("a.jpg"), as_source(jpeg_path)):
        assert source is not None
        with source.open() as fp:
            assert fp.read(2) == b"\xff\xd8"
        assert fp.closed


def test_generation_leaves_an_open_file_open(ctx: Flask, jpeg_path: Path) -> None:
    with open(jpeg_path, "rb") as fp:
        fp.seek(7)
        file = ImageCacheFile(Small(source=fp))
        file.generate()
        assert (file.width, file.height) == (8, 6)
        assert not fp.closed
        assert fp.tell() == 7


def test_generation_reopens_a_closed_file_and_closes_it(ctx: Flask, jpeg_path: Path) -> None:
    fp = open(jpeg_path, "rb")  # noqa: SIM115 - closed on the next line on purpose
    fp.close()
    file = ImageCacheFile(Small(source=fp))
    file.generate()  # an unclosed file would be a ResourceWarning, an error here
    assert (file.width, file.height) == (8, 6)
    assert fp.closed


def test_a_stream_that_cannot_seek_is_read_once(tmp_path: Path) -> None:
    stream = Unseekable(JPEG)
    source = as_source(stream)
    assert source is not None
    assert source.content_digest() == hashlib.sha256(JPEG).hexdigest()
    assert read(source) == JPEG
    assert read(source) == JPEG


def test_a_stream_closed_since_is_not_replaced_by_a_stored_file(
    ctx: Flask, media_root: Path
) -> None:
    save_source(media_root, "photos/a.jpg")
    given = upload(JPEG, "photos/a.jpg")
    source = as_source(given)
    assert source is not None
    given.stream.close()
    # Never somebody else's image of the same name: the upload is gone.
    with pytest.raises(SourceError, match="no longer open"), source.open():
        pass


def test_a_text_stream_given_as_a_file_is_refused_when_opened() -> None:
    source = SourceFile("a.jpg", file=io.StringIO("text"))
    with pytest.raises(SourceError, match="no longer open"), source.open():
        pass


def test_a_source_without_name_or_file_is_missing() -> None:
    with pytest.raises(MissingSource, match="no name and no file"), SourceFile(None).open():
        pass


def test_a_path_that_does_not_exist_is_missing(tmp_path: Path) -> None:
    source = as_source(tmp_path / "nope.jpg")
    assert source is not None
    with pytest.raises(MissingSource, match="does not exist"), source.open():
        pass


def test_a_path_that_cannot_be_opened_is_a_source_error(tmp_path: Path) -> None:
    source = as_source(tmp_path)  # a directory
    assert source is not None
    with pytest.raises(SourceError, match="Could not open") as info, source.open():
        pass
    assert not isinstance(info.value, MissingSource)


def test_a_stored_name_that_does_not_exist_is_missing(ctx: Flask) -> None:
    with (
        pytest.raises(MissingSource, match="photos/gone.jpg"),
        SourceFile("photos/gone.jpg").open(),
    ):
        pass


@pytest.mark.parametrize("name", ["../secret.jpg", "/etc/passwd", "a/../../b.jpg"])
def test_a_stored_name_outside_the_storage_is_a_source_error(ctx: Flask, name: str) -> None:
    with pytest.raises(SourceError), SourceFile(name).open():
        pass


# Identity and digests -------------------------------------------------------------------------


def test_identity_of_each_kind(ctx: Flask, tmp_path: Path, jpeg_path: Path) -> None:
    other = FileSystemStorage(tmp_path / "other", "/other/")
    assert SourceFile("a.jpg").identity() == "a.jpg"
    assert SourceFile("a.jpg", storage=current_state().source_storage).identity() == "a.jpg"
    assert SourceFile("a.jpg", storage=other).identity() == (
        "a.jpg",
        "storage",
        storage_token(other),
    )
    assert as_source(jpeg_path).identity() == str(jpeg_path)  # type: ignore[union-attr]
    digest = hashlib.sha256(JPEG).hexdigest()
    assert SourceFile("a.jpg", file=io.BytesIO(JPEG)).identity() == ("sha256", digest)
    assert SourceFile(None, file=io.BytesIO(JPEG)).identity() == ("sha256", digest)
    assert SourceFile(None).identity() is None


def test_identity_outside_an_app_is_the_name(tmp_path: Path) -> None:
    other = FileSystemStorage(tmp_path / "other", "/other/")
    assert SourceFile("a.jpg").identity() == "a.jpg"
    assert SourceFile("a.jpg", storage=other).identity() == (
        "a.jpg",
        "storage",
        storage_token(other),
    )


def test_content_digest_is_the_sha256_of_the_bytes(ctx: Flask, media_root: Path) -> None:
    save_source(media_root, "a.jpg")
    expected = hashlib.sha256((media_root / "a.jpg").read_bytes()).hexdigest()
    assert SourceFile("a.jpg").content_digest() == expected
    assert as_source(upload(JPEG, "x.png")).content_digest() == (  # type: ignore[union-attr]
        hashlib.sha256(JPEG).hexdigest()
    )


def test_content_digest_is_read_once(tmp_path: Path) -> None:
    stream = io.BytesIO(JPEG)
    source = SourceFile("a.jpg", file=stream)
    first = source.content_digest()
    stream.seek(0)
    stream.write(b"changed")
    assert source.content_digest() == first


def test_a_failing_read_while_digesting_is_a_source_error() -> None:
    source = SourceFile("up.png", file=Failing(JPEG))
    with pytest.raises(SourceError, match="Upload it again"):
        source.content_digest()


def test_storage_tokens_name_the_class_and_the_location(tmp_path: Path) -> None:
    one = FileSystemStorage(tmp_path / "one", "/one/")
    assert storage_token(one) == storage_token(FileSystemStorage(tmp_path / "one", "/one/"))
    assert storage_token(one) != storage_token(FileSystemStorage(tmp_path / "two", "/one/"))
    assert storage_token(one) != storage_token(FileSystemStorage(tmp_path / "one", "/x/"))
    assert "FileSystemStorage" in storage_token(one)
    assert str(tmp_path / "one") in storage_token(one)
    memory = FsspecStorage("memory://tokens", "/m/")
    assert "memory" in storage_token(memory)
    assert storage_token(memory) != storage_token(one)


# Cache file names follow the source's identity ------------------------------------------------


def test_names_of_stored_sources_in_the_default_storage_do_not_change(
    app: Flask, imagekit: ImageKit
) -> None:
    # Pinned: caches written by earlier releases stay valid.
    with app.app_context():
        assert ImageCacheFile(Fill(source="photos/bulldog.jpg")).name == (
            "CACHE/images/photos/bulldog/a4da6f03ab1698a532866a0c8ff470dd.jpg"
        )
        assert thumbnail("100x50", "photos/bulldog.jpg").name == (
            "CACHE/images/photos/bulldog/730cd2bc3d019185864de5438e8ff426.jpg"
        )
        assert thumbnail("100x50", "photos/bulldog.jpeg").name == (
            "CACHE/images/photos/bulldog/7a9eee599ea73646babf53572e693940.jpeg"
        )


def test_two_uploads_with_one_filename_get_their_own_files(app: Flask, imagekit: ImageKit) -> None:
    red = encode(Image.new("RGB", (64, 64), (255, 0, 0)), "PNG")
    blue = encode(Image.new("RGB", (64, 64), (0, 0, 255)), "PNG")
    with app.app_context():
        first = thumbnail("20x20", upload(red, "me.png"))
        first.generate()
        second = thumbnail("20x20", upload(blue, "me.png"))
        second.generate()
        assert first.name != second.name
        urls = first.url, second.url
    assert pixel(fetch(app, urls[0])[2])[0] > 200
    assert pixel(fetch(app, urls[1])[2])[2] > 200


def test_the_same_upload_twice_shares_one_file(app: Flask, imagekit: ImageKit) -> None:
    data = encode(photo(), "PNG")
    with app.app_context():
        first = thumbnail("20x20", upload(data, "me.png"))
        second = thumbnail("20x20", upload(data, "other-name.png"))
        assert first.name.rsplit("/", 1)[1] == second.name.rsplit("/", 1)[1]
        assert first.name == thumbnail("20x20", upload(data, "me.png")).name


def test_an_upload_named_like_a_stored_file_does_not_touch_its_thumbnail(
    app: Flask, imagekit: ImageKit, media_root: Path
) -> None:
    save_source(media_root, "private/ceo.png", Image.new("RGB", (64, 64), (0, 255, 0)))
    attacker = encode(Image.new("RGB", (64, 64), (255, 0, 0)), "PNG")
    with app.app_context():
        stored = thumbnail("20x20", "private/ceo.png")
        forged = thumbnail("20x20", upload(attacker, "private/ceo.png"))
        assert stored.name != forged.name
        forged.generate()  # first: it must not poison the stored file's thumbnail
        stored.generate()
        urls = stored.url, forged.url
    assert pixel(fetch(app, urls[0])[2])[1] > 200  # the CEO's green
    assert pixel(fetch(app, urls[1])[2])[0] > 200  # the attacker's red


def test_an_open_file_is_told_apart_by_its_bytes(app: Flask, imagekit: ImageKit) -> None:
    with app.app_context():
        a = ImageCacheFile(Fill(source=SourceFile("a.jpg", file=io.BytesIO(b"one"))))
        b = ImageCacheFile(Fill(source=SourceFile("a.jpg", file=io.BytesIO(b"two"))))
        assert a.name != b.name


def test_the_same_name_in_two_storages_gets_two_files(
    app: Flask, imagekit: ImageKit, tmp_path: Path
) -> None:
    one = FileSystemStorage(tmp_path / "one", "/one/")
    two = FileSystemStorage(tmp_path / "two", "/two/")
    save_source(tmp_path / "one", "photos/a.jpg", Image.new("RGB", (64, 64), (255, 0, 0)))
    save_source(tmp_path / "two", "photos/a.jpg", Image.new("RGB", (64, 64), (0, 0, 255)))
    with app.app_context():
        default = ImageCacheFile(Fill(source="photos/a.jpg"))
        first = ImageCacheFile(Fill(source=SourceFile("photos/a.jpg", storage=one)))
        second = ImageCacheFile(Fill(source=SourceFile("photos/a.jpg", storage=two)))
        assert len({default.name, first.name, second.name}) == 3
        first.generate()
        second.generate()
        with first.open() as fp:
            assert pixel(fp.read())[0] > 200
        with second.open() as fp:
            assert pixel(fp.read())[2] > 200
        # The same storage configured again is the same identity.
        again = FileSystemStorage(tmp_path / "one", "/one/")
        assert ImageCacheFile(Fill(source=SourceFile("photos/a.jpg", storage=again))).name == (
            first.name
        )


def test_the_source_storage_itself_is_the_default_identity(
    app: Flask, imagekit: ImageKit, media_root: Path
) -> None:
    with app.app_context():
        explicit = FileSystemStorage(media_root, "/media/")
        assert ImageCacheFile(Fill(source=SourceFile("photos/a.jpg", storage=explicit))).name == (
            ImageCacheFile(Fill(source="photos/a.jpg")).name
        )


# Values of model columns ---------------------------------------------------------------------


def test_a_model_column_source_knows_its_row(
    db_app: tuple[Flask, SQLAlchemy], media_root: Path
) -> None:
    app, db = db_app

    class Pet(db.Model):  # type: ignore[name-defined,misc]
        id: Mapped[int] = mapped_column(primary_key=True)
        picture: Mapped[str | None] = mapped_column(String(255))
        thumb = ImageSpecField(source="picture", processors=[ResizeToFill(4, 4)], format="JPEG")

    ImageKit(app, db=db)
    save_source(media_root, "pets/rex.jpg")
    with app.app_context():
        db.create_all()
        pet = Pet(picture="pets/rex.jpg")
        db.session.add(pet)
        db.session.commit()
        source = pet.thumb.generator.source
        assert isinstance(source, SourceFile)
        assert source.name == "pets/rex.jpg"
        assert source.is_stored
        assert get_field_info(source) == (pet, "picture")
        assert as_source(source) is source


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


# Pickling ------------------------------------------------------------------------------------


def test_a_stored_source_pickles(ctx: Flask, media_root: Path, tmp_path: Path) -> None:
    save_source(media_root, "a.jpg")
    other = FileSystemStorage(tmp_path / "other", "/other/")
    for source in (SourceFile("a.jpg"), SourceFile("a.jpg", storage=other)):
        again = pickle.loads(pickle.dumps(source))
        assert again == source
        assert again.storage == source.storage
        assert again.identity() == source.identity()
        assert again.is_stored
    assert read(pickle.loads(pickle.dumps(SourceFile("a.jpg")))) == read(SourceFile("a.jpg"))


def test_a_path_source_pickles(jpeg_path: Path) -> None:
    source = as_source(jpeg_path)
    again = pickle.loads(pickle.dumps(source))
    assert again == source
    assert again.reference == str(jpeg_path)
    assert read(again) == JPEG


def test_a_stream_pickles_its_identity_but_not_its_bytes() -> None:
    source = SourceFile("up.png", file=io.BytesIO(JPEG))
    identity = source.identity()
    again = pickle.loads(pickle.dumps(source))
    assert again.identity() == identity  # the same cache file name in another process
    assert not again.is_stored
    with pytest.raises(SourceError, match="no longer open"), again.open():
        pass


def test_a_stream_pickled_before_its_digest_cannot_name_itself() -> None:
    again = pickle.loads(pickle.dumps(SourceFile("up.png", file=io.BytesIO(JPEG))))
    with pytest.raises(SourceError, match="Store it first"):
        again.identity()


PETS_MODULE = """
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

class Pet(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    picture: Mapped[str | None] = mapped_column(String(255))
"""


def test_a_model_column_source_pickles_a_reference_to_its_row(
    db_app: tuple[Flask, SQLAlchemy], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, db = db_app
    # Pickle finds classes by module and name: define the model in a real module.
    module = types.ModuleType("pets_models")
    module.__dict__["db"] = db
    monkeypatch.setitem(sys.modules, "pets_models", module)
    exec(compile(PETS_MODULE, "pets_models.py", "exec"), module.__dict__)  # noqa: S102
    ImageKit(app, db=db)
    with app.app_context():
        db.create_all()
        pet = module.Pet(picture="pets/rex.jpg")
        db.session.add(pet)
        db.session.commit()
        data = pickle.dumps(SourceFile("pets/rex.jpg", instance=pet, attname="picture"))
        pet_id = pet.id
        db.session.remove()
    with app.app_context():
        again = pickle.loads(data)
        instance, attname = get_field_info(again)  # loaded again by primary key
        assert (type(instance), instance.id, attname) == (module.Pet, pet_id, "picture")
        db.session.remove()


# Truth, equality, repr ------------------------------------------------------------------------


def test_truth() -> None:
    assert SourceFile("a.jpg")
    assert SourceFile(None, file=io.BytesIO(b""))
    assert not SourceFile(None)
    assert not SourceFile("")


def test_equality_and_hash(tmp_path: Path) -> None:
    assert SourceFile("a.jpg") == SourceFile("a.jpg")
    assert hash(SourceFile("a.jpg")) == hash(SourceFile("a.jpg"))
    assert SourceFile("a.jpg") != SourceFile("b.jpg")
    assert SourceFile("a.jpg") != SourceFile("a.jpg", path=str(tmp_path / "a.jpg"))
    stream = io.BytesIO(JPEG)
    assert SourceFile("a.jpg", file=stream) == SourceFile("a.jpg", file=stream)
    assert SourceFile("a.jpg", file=stream) != SourceFile("a.jpg", file=io.BytesIO(JPEG))
    assert SourceFile("a.jpg") != "a.jpg"
    assert len({SourceFile("a.jpg"), SourceFile("a.jpg"), SourceFile("b.jpg")}) == 2


def test_repr_shows_the_name_and_reads_nothing() -> None:
    source = SourceFile("a.jpg", file=Failing(JPEG))
    assert repr(source) == "<SourceFile 'a.jpg'>"
