"""Cache file names follow the output format and the source's identity.

A spec without ``format`` names its file after the format it writes, chosen from
the source name (never the name's own extension when that is not an image the
web shows), so an upload called ``x.html`` cannot become an HTML page on the
site. Two different images never share a cache file: uploads are told apart by
their bytes and stored files in other storages by their storage, while names of
files in the default storage stay django-imagekit's.
"""

from __future__ import annotations

import io
import typing as t
from pathlib import Path

import pytest
from flask import Flask
from PIL import Image
from werkzeug.datastructures import FileStorage

from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.cachefiles import ImageCacheFile
from flask_imagekit.exceptions import ImproperlyConfigured
from flask_imagekit.processors import ResizeToFill
from flask_imagekit.sources import SourceFile
from flask_imagekit.specs import format_for_name
from flask_imagekit.storage import FileSystemStorage
from flask_imagekit.templating import thumbnail

from .conftest import encode, photo, save_source

SCRIPT = b"<script>alert(document.domain)</script>"


class Fill(ImageSpec):
    processors = [ResizeToFill(100, 50)]
    format = "JPEG"
    options = {"quality": 60}


class FormatLess(ImageSpec):
    processors = [ResizeToFill(20, 10)]


def script_bmp() -> bytes:
    """A valid BMP whose pixel bytes spell a script tag."""
    width = len(SCRIPT) // 3
    img = Image.frombytes("RGB", (width, 1), SCRIPT[: width * 3])
    return encode(img, "BMP")


def upload(data: bytes, filename: str) -> FileStorage:
    return FileStorage(stream=io.BytesIO(data), filename=filename, content_type="image/png")


def fetch(app: Flask, url: str) -> tuple[int, str, bytes]:
    """GET ``url`` through the test client; the response is closed afterwards."""
    with app.test_client().get(url) as response:
        return response.status_code, response.mimetype, response.get_data()


def pixel(data: bytes) -> tuple[int, ...]:
    with Image.open(io.BytesIO(data)) as img:
        return t.cast(tuple[int, ...], img.convert("RGB").getpixel((5, 5)))


# Output format and extension ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("photos/a.jpg", "JPEG"),
        ("photos/a.JPEG", "JPEG"),
        ("photos/a.png", "PNG"),
        ("photos/a.gif", "GIF"),
        ("photos/a.webp", "WEBP"),
        ("photos/a.bmp", "PNG"),
        ("photos/a.tif", "PNG"),
        ("photos/a.html", "PNG"),
        ("photos/a.svg", "PNG"),
        ("photos/a.js", "PNG"),
        ("photos/a.xhtml", "PNG"),
        ("photos/noextension", "PNG"),
        ("photos/a.unknownext", "PNG"),
    ],
)
def test_format_for_name(name: str, expected: str) -> None:
    assert format_for_name(name) == expected


@pytest.mark.parametrize(
    ("sniffed", "expected"), [("JPEG", "JPEG"), ("MPO", "JPEG"), ("BMP", "PNG"), (None, "PNG")]
)
def test_format_for_a_nameless_source_follows_its_sniffed_format(
    sniffed: str | None, expected: str
) -> None:
    assert format_for_name(None, sniffed) == expected


@pytest.mark.parametrize("ext", [".html", ".svg", ".js", ".xhtml", ".htm"])
def test_formatless_thumbnail_of_a_script_named_source_is_a_png(
    app: Flask, imagekit: ImageKit, media_root: Path, ext: str
) -> None:
    (media_root / f"holiday{ext}").write_bytes(script_bmp())
    with app.app_context():
        file = thumbnail("20x10", f"holiday{ext}", upscale=True)
        file.generate()
        assert file.name.endswith(".png"), file.name
        url = file.url
    status, mimetype, body = fetch(app, url)
    assert (status, mimetype) == (200, "image/png")
    assert SCRIPT not in body
    with Image.open(io.BytesIO(body)) as img:
        assert img.format == "PNG"


@pytest.mark.parametrize("filename", ["x.html", "x.svg", "x.js"])
def test_formatless_spec_of_an_upload_named_like_a_page_is_a_png(
    app: Flask, imagekit: ImageKit, filename: str
) -> None:
    with app.app_context():
        file = ImageCacheFile(FormatLess(source=upload(script_bmp(), filename)))
        file.generate()
        assert file.name.endswith(".png"), file.name
        with file.open() as fp:
            assert Image.open(fp).format == "PNG"


@pytest.mark.parametrize(
    ("name", "ext", "fmt"),
    [
        ("photos/a.jpeg", ".jpeg", "JPEG"),
        ("photos/a.jpg", ".jpg", "JPEG"),
        ("photos/a.webp", ".webp", "WEBP"),
        ("photos/a.gif", ".gif", "GIF"),
        ("photos/a.bmp", ".png", "PNG"),
        ("photos/a.tiff", ".png", "PNG"),
    ],
)
def test_extension_and_bytes_agree(
    app: Flask, imagekit: ImageKit, media_root: Path, name: str, ext: str, fmt: str
) -> None:
    save_source(media_root, name)
    with app.app_context():
        file = ImageCacheFile(FormatLess(source=name))
        file.generate()
        assert file.name.endswith(ext)
        with file.open() as fp:
            assert Image.open(fp).format == fmt


def test_a_stream_without_name_follows_its_sniffed_format(app: Flask, imagekit: ImageKit) -> None:
    with app.app_context():
        jpeg = ImageCacheFile(FormatLess(source=io.BytesIO(encode(photo(), "JPEG"))))
        bmp = ImageCacheFile(FormatLess(source=io.BytesIO(encode(photo(), "BMP"))))
        assert jpeg.name.endswith(".jpg")
        assert bmp.name.endswith(".png")
        bmp.generate()
        with bmp.open() as fp:
            assert Image.open(fp).format == "PNG"


def test_thumbnail_takes_a_format(app: Flask, imagekit: ImageKit, media_root: Path) -> None:
    save_source(media_root, "photos/a.jpg")
    with app.app_context():
        file = thumbnail("100x50", "photos/a.jpg", format="WEBP")
        file.generate()
        assert file.name.endswith(".webp")
        with file.open() as fp:
            assert Image.open(fp).format == "WEBP"
        assert thumbnail("100x50", "photos/a.jpg").name != file.name


# Source identity ----------------------------------------------------------------------------


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


def test_thumbnail_sizes_allow_list(app: Flask, media_root: Path) -> None:
    app.config["IMAGEKIT_THUMBNAIL_SIZES"] = ["100x100", "300x"]
    ImageKit(app)
    save_source(media_root, "photos/a.jpg")
    with app.app_context():
        assert thumbnail("100x100", "photos/a.jpg").name
        assert thumbnail(" 300x", "photos/a.jpg").name
        with pytest.raises(ImproperlyConfigured, match="IMAGEKIT_THUMBNAIL_SIZES"):
            thumbnail("12000x12000", "photos/a.jpg", upscale=True)
        with pytest.raises(ImproperlyConfigured, match="IMAGEKIT_THUMBNAIL_SIZES"):
            thumbnail("101x100", "photos/a.jpg")


@pytest.mark.parametrize("value", ["100x100", ["100by100"], [100], ["x"], 5])
def test_thumbnail_sizes_are_validated_at_init(app: Flask, value: object) -> None:
    app.config["IMAGEKIT_THUMBNAIL_SIZES"] = value
    with pytest.raises(ImproperlyConfigured, match="IMAGEKIT_THUMBNAIL_SIZES"):
        ImageKit(app)
