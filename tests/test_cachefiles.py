"""Tests for flask_imagekit.cachefiles: ImageCacheFile, namers, output formats, strategies."""

from __future__ import annotations

import collections
import io
import os
import pickle
import re
import sys
import tempfile
import types
import typing as t
from pathlib import Path
from types import SimpleNamespace

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from PIL import Image
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.datastructures import FileStorage

from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.cachefiles import (
    ImageCacheFile,
    LazyGeneratedImageFile,
    LazyImageCacheFile,
    namers,
)
from flask_imagekit.cachefiles.backends import Simple
from flask_imagekit.cachefiles.strategies import JustInTime, Optimistic, call_strategy
from flask_imagekit.exceptions import (
    ImageKitError,
    ImproperlyConfigured,
    MissingSource,
    NotRegistered,
)
from flask_imagekit.globals import current_state
from flask_imagekit.models import ImageSpecField
from flask_imagekit.processors import ResizeToFill
from flask_imagekit.signals import (
    content_required,
    existence_required,
    source_changed,
    source_created,
)
from flask_imagekit.sources import SourceFile
from flask_imagekit.specs import format_for_name
from flask_imagekit.storage import FileSystemStorage, clean_name
from flask_imagekit.templating import thumbnail
from flask_imagekit.utils import get_field_info

from .conftest import encode, photo, save_source

HEX32 = re.compile(r"[0-9a-f]{32}")
# Unicode category Cc: C0 controls, DEL and C1 controls.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
SOURCE = "photos/bulldog.jpg"


# Module level, so that files built on them pickle by reference.
class Thumb(ImageSpec):
    processors = [ResizeToFill(100, 50)]
    format = "JPEG"
    options = {"quality": 80}


class PngThumb(ImageSpec):
    processors = [ResizeToFill(100, 50)]
    format = "PNG"


class OptimisticThumb(Thumb):
    cachefile_strategy = "flask_imagekit.cachefiles.strategies.Optimistic"


class OptimisticClassThumb(Thumb):
    cachefile_strategy = Optimistic


class FakeGenerator:
    """A generator that is not a spec: no source, a fixed hash, a PNG output."""

    format = "PNG"

    def __init__(self, digest: str = "f" * 32) -> None:
        self.digest = digest

    def get_hash(self) -> str:
        return self.digest

    def generate(self) -> io.BytesIO:
        return io.BytesIO(encode(photo((30, 20)), "PNG"))


class CountingStorage:
    """Wraps a storage and counts the calls of each of its methods."""

    def __init__(self, inner: FileSystemStorage) -> None:
        self.inner = inner
        self.calls: collections.Counter[str] = collections.Counter()

    def __getattr__(self, name: str) -> t.Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def counted(*args: t.Any, **kwargs: t.Any) -> t.Any:
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return counted

    def io_calls(self) -> dict[str, int]:
        """Every call except url(), which is pure string work."""
        return {k: v for k, v in self.calls.items() if k != "url" and v}


@pytest.fixture
def source(media_root: Path) -> str:
    return save_source(media_root, SOURCE, photo((160, 120)))


@pytest.fixture
def counting(app: Flask, media_root: Path) -> CountingStorage:
    storage = CountingStorage(FileSystemStorage(media_root, "/media/"))
    app.config["IMAGEKIT_DEFAULT_FILE_STORAGE"] = storage
    return storage


def make_app(tmp_path: Path, name: str = "other", **config: t.Any) -> Flask:
    media = tmp_path / f"{name}-media"
    media.mkdir(exist_ok=True)
    app = Flask(name, instance_path=str(tmp_path / f"{name}-instance"))
    app.config.update(TESTING=True, IMAGEKIT_MEDIA_ROOT=str(media), **config)
    return app


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


# Namers -----------------------------------------------------------------------------


def test_namers_follow_django_imagekit_layout(ctx: Flask) -> None:
    spec = Thumb(source=SOURCE)
    digest = spec.get_hash()
    assert HEX32.fullmatch(digest)
    assert namers.source_name_as_path(spec) == f"CACHE/images/photos/bulldog/{digest}.jpg"
    assert namers.source_name_dot_hash(spec) == f"CACHE/images/photos/bulldog.{digest[:12]}.jpg"
    assert namers.hash(spec) == f"CACHE/images/{digest}.jpg"


def test_spec_files_are_named_by_source_name_as_path_by_default(ctx: Flask) -> None:
    spec = Thumb(source=SOURCE)
    assert ImageCacheFile(spec).name == namers.source_name_as_path(spec)


@pytest.mark.parametrize(
    ("key", "namer"),
    [
        ("IMAGEKIT_SPEC_CACHEFILE_NAMER", "flask_imagekit.cachefiles.namers.source_name_dot_hash"),
        ("IMAGEKIT_SPEC_CACHEFILE_NAMER", namers.hash),
    ],
)
def test_spec_namer_setting_is_used(app: Flask, key: str, namer: t.Any) -> None:
    app.config[key] = namer
    ImageKit(app)
    with app.app_context():
        spec = Thumb(source=SOURCE)
        expected = namers.source_name_dot_hash(spec) if isinstance(namer, str) else namer(spec)
        assert ImageCacheFile(spec).name == expected


def test_generators_use_the_cachefile_namer_setting(app: Flask, media_root: Path) -> None:
    ImageKit(app)
    with app.app_context():
        file = ImageCacheFile(FakeGenerator("a" * 32))
        assert file.name == "CACHE/images/" + "a" * 32 + ".png"
        file.generate()
        with Image.open(media_root / file.name) as img:
            assert img.size == (30, 20)

    def custom(generator: t.Any) -> str:
        return f"custom/{generator.get_hash()}.img"

    other = make_app(media_root.parent, IMAGEKIT_CACHEFILE_NAMER=custom)
    ImageKit(other)
    with other.app_context():
        assert ImageCacheFile(FakeGenerator("b" * 32)).name == "custom/" + "b" * 32 + ".img"


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


@pytest.mark.parametrize(
    ("source_name", "spec", "ext"),
    [
        ("photos/bulldog.jpeg", Thumb, ".jpeg"),
        ("photos/bulldog.JPG", Thumb, ".JPG"),
        ("photos/bulldog.jpg", Thumb, ".jpg"),
        ("photos/bulldog.png", Thumb, ".jpg"),
        ("photos/bulldog.jpg", PngThumb, ".png"),
        ("photos/bulldog.jpeg", PngThumb, ".png"),
        ("photos/bulldog", PngThumb, ".png"),
    ],
)
def test_extension_follows_the_output_format(
    ctx: Flask, source_name: str, spec: type[ImageSpec], ext: str
) -> None:
    gen = spec(source=source_name)
    stem = source_name.rsplit(".", 1)[0] if "." in source_name else source_name
    digest = gen.get_hash()
    assert namers.source_name_as_path(gen) == f"CACHE/images/{stem}/{digest}{ext}"
    assert namers.source_name_dot_hash(gen) == f"CACHE/images/{stem}.{digest[:12]}{ext}"
    # hash ignores the source's extension: it only knows the format.
    assert namers.hash(gen) == f"CACHE/images/{digest}{'.png' if spec is PngThumb else '.jpg'}"


def test_jpeg_source_keeps_jpeg_extension_end_to_end(ctx: Flask, media_root: Path) -> None:
    save_source(media_root, "photos/pug.jpeg")
    file = ImageCacheFile(Thumb(source="photos/pug.jpeg"))
    assert file.name.startswith("CACHE/images/photos/pug/")
    assert file.name.endswith(".jpeg")
    file.generate()
    with Image.open(media_root / file.name) as img:
        assert img.format == "JPEG"


def test_png_output_from_jpg_source_is_a_png_file(
    ctx: Flask, source: str, media_root: Path
) -> None:
    file = ImageCacheFile(PngThumb(source=source))
    assert file.name.endswith(".png")
    file.generate()
    with Image.open(media_root / file.name) as img:
        assert img.format == "PNG"
        assert img.size == (100, 50)


def test_cachefile_dir_setting_is_respected(app: Flask, media_root: Path, source: str) -> None:
    app.config["IMAGEKIT_CACHEFILE_DIR"] = "generated/thumbs"
    ImageKit(app)
    with app.app_context():
        spec = Thumb(source=source)
        digest = spec.get_hash()
        assert namers.source_name_as_path(spec) == f"generated/thumbs/photos/bulldog/{digest}.jpg"
        assert namers.source_name_dot_hash(spec) == (
            f"generated/thumbs/photos/bulldog.{digest[:12]}.jpg"
        )
        assert namers.hash(spec) == f"generated/thumbs/{digest}.jpg"
        file = ImageCacheFile(spec)
        file.generate()
    assert (media_root / "generated/thumbs/photos/bulldog" / f"{digest}.jpg").is_file()
    assert not (media_root / "CACHE").exists()


def test_absolute_source_names_go_flat_under_the_cache_dir(
    ctx: Flask, tmp_path: Path, media_root: Path
) -> None:
    outside = tmp_path / "elsewhere" / "photos" / "bulldog.jpg"
    outside.parent.mkdir(parents=True)
    outside.write_bytes(encode(photo((160, 120))))
    spec = Thumb(source=outside)  # a path: its name is absolute
    assert spec.source is not None
    assert spec.source.name is not None
    assert os.path.isabs(spec.source.name)
    digest = spec.get_hash()
    assert namers.source_name_as_path(spec) == f"CACHE/images/{digest}.jpg"
    assert namers.source_name_dot_hash(spec) == f"CACHE/images/bulldog.{digest[:12]}.jpg"
    file = ImageCacheFile(spec)
    file.generate()
    assert (media_root / "CACHE/images" / f"{digest}.jpg").is_file()


def test_namers_work_outside_an_app_context() -> None:
    spec = Thumb(source=SOURCE)
    digest = spec.get_hash()
    assert namers.source_name_as_path(spec) == f"CACHE/images/photos/bulldog/{digest}.jpg"
    assert namers.hash(spec) == f"CACHE/images/{digest}.jpg"


# Output format and extension --------------------------------------------------------
#
# A spec without ``format`` names its file after the format it writes, chosen from
# the source name (never the name's own extension when that is not an image the
# web shows), so an upload called ``x.html`` cannot become an HTML page on the site.

SCRIPT = b"<script>alert(document.domain)</script>"


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


# Hostile source names ---------------------------------------------------------------

HOSTILE_NAMES = [
    "../../etc/passwd.jpg",
    "../../../../../escape.jpg",
    "/etc/passwd",
    "a/../../b.jpg",
    "a/./../.././b.jpg",
    "....//....//x.jpg",
    "a\x00b.jpg",
    "..\\..\\x.jpg",
    "..\\..\\..\\..\\..\\x.jpg",
    "C:\\Windows\\x.jpg",
    "C:x.jpg",
    "\\\\server\\share\\x.jpg",
    "CON.jpg",
    "aux/nul.jpg",
    "COM1/LPT9.png",
    "x" * 996 + ".jpg",  # 1000 bytes
    "photos/" + "\u00e9" * 500 + ".jpg",  # 1000-byte component in UTF-8
    "d/" + "\u6f22" * 200 + "/x.jpg",  # 3-byte characters, cut mid-character
    "\U0001f600" * 100 + ".jpg",  # 4-byte characters
    "\u05e9\u05dc\u05d5\u05dd/\u202egpj.exe\u202c.jpg",  # RTL text and overrides
    "e\u0301\u0301\u0301/a\u0308\u20dd.jpg",  # combining characters
    "a\x01b\x1f/c\x7fd\x1b.jpg",
    "line\nbreak\r.jpg",
    "tab\there.jpg",
    "..",
    ".",
    "",
    "/",
    "a//b///c.jpg",
]

# C1 controls (U+0080..U+009F) are control characters too; the storage refuses them.
C1_NAMES = ["a\x85b.jpg", "dir\x9b/x.jpg", "\x80.jpg"]
# A lone surrogate: what os.listdir() gives for a file name that is not valid UTF-8.
SURROGATE_NAMES = ["\udcff.jpg", "photos/caf\udce9.jpg"]

NAMERS = [namers.hash, namers.source_name_as_path, namers.source_name_dot_hash]


def stub_generator(source_name: str, format: str | None = "JPEG") -> SimpleNamespace:
    return SimpleNamespace(
        source=SimpleNamespace(name=source_name),
        format=format,
        get_hash=lambda: "0123456789abcdef0123456789abcdef",
    )


def assert_safe_name(name: str, cache_dir: str, storage: t.Any) -> None:
    assert name.startswith(cache_dir + "/"), name
    for part in name.split("/"):
        assert part not in ("", ".", ".."), name
        assert not CONTROL.search(part), name
        assert len(part.encode("utf-8")) <= 255, (name, len(part.encode("utf-8")))
    assert "\\" not in name
    assert clean_name(name) == name  # every storage accepts it unchanged
    path = os.path.realpath(storage.path(name))
    root = os.path.realpath(storage.location)
    assert os.path.commonpath([root, path]) == root
    assert path.startswith(os.path.join(root, *cache_dir.split("/")) + os.sep)


@pytest.mark.parametrize("namer", NAMERS, ids=lambda n: n.__name__)
@pytest.mark.parametrize("hostile", HOSTILE_NAMES, ids=repr)
@pytest.mark.parametrize("format", ["JPEG", None])
def test_namers_keep_hostile_names_inside_the_cache_dir(
    ctx: Flask, media_root: Path, namer: t.Any, hostile: str, format: str | None
) -> None:
    storage = current_state().storage
    assert_safe_name(namer(stub_generator(hostile, format)), "CACHE/images", storage)


@pytest.mark.parametrize("namer", NAMERS, ids=lambda n: n.__name__)
def test_namers_keep_hostile_names_inside_a_custom_cache_dir(app: Flask, namer: t.Any) -> None:
    app.config["IMAGEKIT_CACHEFILE_DIR"] = "a/b"
    ImageKit(app)
    with app.app_context():
        storage = current_state().storage
        for hostile in HOSTILE_NAMES:
            assert_safe_name(namer(stub_generator(hostile)), "a/b", storage)


@pytest.mark.parametrize("namer", NAMERS[1:], ids=lambda n: n.__name__)
def test_long_names_are_cut_but_stay_distinct(ctx: Flask, namer: t.Any) -> None:
    # Two long names that share their first 255 bytes still get distinct files,
    # because the hash covers the full source name.
    a = Thumb(source="x" * 300 + "a.jpg")
    b = Thumb(source="x" * 300 + "b.jpg")
    assert namer(a) != namer(b)


@pytest.mark.parametrize("namer", NAMERS[1:], ids=lambda n: n.__name__)
@pytest.mark.parametrize("hostile", C1_NAMES, ids=repr)
def test_namers_replace_c1_control_characters(ctx: Flask, namer: t.Any, hostile: str) -> None:
    assert_safe_name(namer(stub_generator(hostile)), "CACHE/images", current_state().storage)


@pytest.mark.parametrize("namer", NAMERS[1:], ids=lambda n: n.__name__)
@pytest.mark.parametrize("hostile", SURROGATE_NAMES, ids=repr)
def test_namers_handle_lone_surrogates(ctx: Flask, namer: t.Any, hostile: str) -> None:
    assert_safe_name(namer(stub_generator(hostile)), "CACHE/images", current_state().storage)


@pytest.fixture
def deep_app(tmp_path: Path) -> t.Iterator[tuple[Flask, Path]]:
    # A deep media root, so that a name escaping it would still land under tmp_path.
    media = tmp_path / "l1" / "l2" / "l3" / "media"
    media.mkdir(parents=True)
    app = Flask("deep", instance_path=str(tmp_path / "deep-instance"))
    app.config.update(TESTING=True, IMAGEKIT_MEDIA_ROOT=str(media))
    ImageKit(app)
    with app.app_context():
        yield app, media


SMALL_JPEG = encode(photo((24, 18)))


@pytest.mark.parametrize("namer", NAMERS, ids=lambda n: n.__name__)
def test_generating_from_hostile_names_writes_only_inside_the_cache_dir(
    deep_app: tuple[Flask, Path], tmp_path: Path, namer: t.Any
) -> None:
    _, media = deep_app

    class Small(ImageSpec):
        processors = [ResizeToFill(8, 6)]
        format = "JPEG"
        cachefile_namer = namer

    before = files_under(tmp_path)
    names = set()
    for hostile in HOSTILE_NAMES:
        source = SourceFile(hostile, file=io.BytesIO(SMALL_JPEG))
        file = ImageCacheFile(Small(source=source))
        file.generate()
        names.add(file.name)
        assert (media / file.name).is_file()
        assert file.path == str(media / file.name)
    new = files_under(tmp_path) - before
    cache_dir = media / "CACHE" / "images"
    assert new, "nothing was generated"
    for path in new:
        assert path.resolve().is_relative_to(cache_dir.resolve()), path
        assert not path.name.startswith(".tmp-")
    assert {str(p.relative_to(media)) for p in new} == names


# ImageCacheFile ---------------------------------------------------------------------


def test_cache_file_attributes(ctx: Flask, source: str, media_root: Path) -> None:
    file = ImageCacheFile(Thumb(source=source))
    name = file.name
    assert name == namers.source_name_as_path(Thumb(source=source))
    assert not (media_root / name).exists()
    assert file.url == "/media/" + name
    assert (media_root / name).is_file()  # JustInTime generated it for the URL
    assert file.path == str(media_root / name)
    assert (file.width, file.height) == (100, 50)
    assert file.size == (100, 50)
    assert bool(file) is True
    data = file.read()
    assert data == (media_root / name).read_bytes()
    assert data.startswith(b"\xff\xd8")
    with file.open() as fp:
        assert fp.read() == data
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "JPEG"
        assert img.size == (100, 50)
    assert str(file) == file.url


def test_url_uses_media_url_and_quotes_the_name(app: Flask, media_root: Path) -> None:
    app.config["IMAGEKIT_MEDIA_URL"] = "https://cdn.example.com/m/"
    ImageKit(app)
    save_source(media_root, "my photos/caf\u00e9 #1.jpg")
    with app.app_context():
        file = ImageCacheFile(Thumb(source="my photos/caf\u00e9 #1.jpg"))
        url = file.url
    assert url.startswith("https://cdn.example.com/m/CACHE/images/my%20photos/caf%C3%A9%20%231/")
    assert (media_root / file.name).is_file()


def test_generate_and_force(ctx: Flask, source: str, media_root: Path) -> None:
    file = ImageCacheFile(Thumb(source=source))
    file.generate()
    path = media_root / file.name
    good = path.read_bytes()
    path.write_bytes(b"stale")
    file.generate()  # the state says it exists: left alone
    assert path.read_bytes() == b"stale"
    file.generate(force=True)
    assert path.read_bytes() == good


def test_explicit_name_and_storage(ctx: Flask, source: str, tmp_path: Path) -> None:
    other = FileSystemStorage(tmp_path / "other", "/other/")
    file = ImageCacheFile(Thumb(source=source), name="custom/thumb.jpg", storage=other)
    assert file.url == "/other/custom/thumb.jpg"
    assert (tmp_path / "other/custom/thumb.jpg").is_file()
    assert file.storage is other


def test_spec_cachefile_storage_attribute(ctx: Flask, source: str, tmp_path: Path) -> None:
    other = FileSystemStorage(tmp_path / "spec-storage", "/s/")

    class Stored(Thumb):
        cachefile_storage = other

    file = ImageCacheFile(Stored(source=source))
    assert file.url.startswith("/s/CACHE/images/")
    assert (tmp_path / "spec-storage" / file.name).is_file()


def test_repr_does_no_io_and_sends_no_signal(
    app: Flask, counting: CountingStorage, source: str
) -> None:
    ImageKit(app)
    received: list[str] = []

    def on_existence(sender: t.Any, **kw: t.Any) -> None:
        received.append("existence")

    def on_content(sender: t.Any, **kw: t.Any) -> None:
        received.append("content")

    generated: list[int] = []

    class Spied(Thumb):
        def generate(self) -> io.BytesIO:
            generated.append(1)
            return super().generate()

    with (
        existence_required.connected_to(on_existence),
        content_required.connected_to(on_content),
        app.app_context(),
    ):
        file = ImageCacheFile(Spied(source=source))
        lazy = LazyImageCacheFile("tests:thumb", source=source)
        text = repr(file) + repr(lazy)
        _ = file.name  # names are computed without I/O too
        text += repr(file)
        assert file.name in text
        assert "tests:thumb" in text
        assert counting.calls == {}
        assert received == []
        assert generated == []
    # repr works without any app context.
    assert "Thumb" in repr(ImageCacheFile(Thumb(source=source)))
    assert "tests:thumb" in repr(LazyImageCacheFile("tests:thumb", source=source))


def test_pickle_round_trip_before_use(app: Flask, source: str, media_root: Path) -> None:
    ImageKit(app)
    file = ImageCacheFile(Thumb(source=source))
    clone = pickle.loads(pickle.dumps(file))
    with app.app_context():
        name = file.name
        assert clone.name == name
        assert clone.url == "/media/" + name
        assert (clone.width, clone.height) == (100, 50)
    assert (media_root / name).is_file()


def test_pickle_round_trip_after_use(ctx: Flask, source: str) -> None:
    file = ImageCacheFile(Thumb(source=source))
    url = file.url
    _ = file.width
    clone = pickle.loads(pickle.dumps(file))
    assert clone.url == url
    assert clone.read() == file.read()
    assert clone == file


def test_lazy_file_pickles_and_resolves_in_the_app(
    app: Flask, imagekit: ImageKit, source: str, media_root: Path
) -> None:
    imagekit.register.generator("tests:thumb", Thumb)
    lazy = LazyImageCacheFile("tests:thumb", source=source)  # no app context needed
    clone = pickle.loads(pickle.dumps(lazy))
    assert clone.generator_id == "tests:thumb"
    with app.app_context():
        assert isinstance(clone.generator, Thumb)
        assert clone.name == namers.source_name_as_path(Thumb(source=source))
        assert clone.url.endswith(clone.name)
        assert (clone.width, clone.height) == (100, 50)
        again = pickle.loads(pickle.dumps(clone))
        assert again.url == clone.url
    assert (media_root / clone.name).is_file()


CARD_MODULE = """
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column
from flask_imagekit.models import ImageSpecField
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


def strategy_callback(file: ImageCacheFile) -> None:
    file.generate()


def test_pickle_after_use_does_not_carry_app_settings(tmp_path: Path) -> None:
    first = make_app(
        tmp_path,
        "first",
        IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY={"on_existence_required": lambda f: f.generate()},
    )
    ImageKit(first)
    save_source(tmp_path / "first-media", SOURCE)
    second = make_app(tmp_path, "second")
    ImageKit(second)
    save_source(tmp_path / "second-media", SOURCE)
    with first.app_context():
        file = ImageCacheFile(Thumb(source=SOURCE))
        _ = file.url
        data = pickle.dumps(file)
    with second.app_context():
        clone = pickle.loads(data)
        _ = clone.url
        assert clone.storage is current_state().storage
    assert (tmp_path / "second-media" / clone.name).is_file()


@pytest.mark.parametrize("empty", [None, ""])
def test_file_without_source(ctx: Flask, empty: str | None, media_root: Path) -> None:
    file = ImageCacheFile(Thumb(source=empty))
    assert bool(file) is False
    with pytest.raises(MissingSource):
        _ = file.url
    with pytest.raises(MissingSource):
        _ = file.name
    with pytest.raises(MissingSource):
        file.generate()
    assert "Thumb" in repr(file)
    lazy = LazyImageCacheFile("tests:none", source=empty)
    current_state().registry.register_generator("tests:none", Thumb)
    assert bool(lazy) is False
    with pytest.raises(MissingSource):
        _ = lazy.url
    assert files_under(media_root) == set()


def test_missing_source_file_raises_missing_source(ctx: Flask, media_root: Path) -> None:
    file = ImageCacheFile(Thumb(source="photos/not-there.jpg"))
    with pytest.raises(MissingSource, match="not-there"):
        _ = file.url
    assert files_under(media_root) == set()


def test_lazy_generated_image_file_is_the_same_class() -> None:
    assert LazyGeneratedImageFile is LazyImageCacheFile
    assert issubclass(LazyImageCacheFile, ImageCacheFile)


def test_lazy_generated_image_file_seed_example(
    app: Flask, imagekit: ImageKit, source: str, media_root: Path
) -> None:
    # advanced usage docs: file = LazyGeneratedImageFile(id, source=source_file); file.generate()
    imagekit.register.generator("myapp:profile:avatar_thumbnail", Thumb)
    with app.app_context():
        file = LazyGeneratedImageFile("myapp:profile:avatar_thumbnail", source=source)
        file.generate()
        assert (media_root / file.name).is_file()
        assert file.name.startswith("CACHE/images/photos/bulldog/")


def test_lazy_file_with_unknown_id(ctx: Flask, source: str) -> None:
    file = LazyImageCacheFile("nope:not:registered", source=source)
    with pytest.raises(NotRegistered, match="nope:not:registered"):
        _ = file.url
    with pytest.raises(NotRegistered, match="nope:not:registered"):
        file.generate()
    assert issubclass(NotRegistered, ImageKitError)


def test_lazy_file_outside_app_context_explains_itself(source: str) -> None:
    file = LazyImageCacheFile("tests:thumb", source=source)
    with pytest.raises(ImproperlyConfigured, match="application context"):
        _ = file.url


def test_equality_and_hash_are_consistent(ctx: Flask, source: str) -> None:
    a = ImageCacheFile(Thumb(source=source))
    b = ImageCacheFile(Thumb(source=source))
    seen = {a}
    _ = a.name
    assert a == b
    assert hash(a) == hash(b)
    assert a in seen
    empty = ImageCacheFile(Thumb(source=None))
    assert empty == empty


def test_generator_returning_an_unrewound_file(ctx: Flask, media_root: Path) -> None:
    returned: list[t.IO[bytes]] = []

    class TempFileGenerator(FakeGenerator):
        def generate(self) -> t.IO[bytes]:  # type: ignore[override]
            fp = tempfile.TemporaryFile()
            fp.write(encode(photo((30, 20)), "PNG"))
            returned.append(fp)
            return fp

    try:
        file = ImageCacheFile(TempFileGenerator("c" * 32))
        file.generate()
        assert (file.width, file.height) == (30, 20)
    finally:
        for fp in returned:
            fp.close()


# Strategies -------------------------------------------------------------------------


ACCESSES: dict[str, t.Callable[[ImageCacheFile], t.Any]] = {
    "url": lambda f: f.url,
    "bool": bool,
    "width": lambda f: f.width,
    "read": lambda f: f.read(),
    "path": lambda f: f.path,
    "img_tag": lambda f: f.img_tag(),
}


@pytest.mark.parametrize("access", ACCESSES)
def test_just_in_time_generates_on_access(
    ctx: Flask, source: str, media_root: Path, access: str
) -> None:
    assert isinstance(current_state().cachefile_strategy, JustInTime)
    file = ImageCacheFile(Thumb(source=source))
    assert not (media_root / file.name).exists()
    ACCESSES[access](file)
    assert (media_root / file.name).is_file()


def test_just_in_time_does_not_generate_on_source_saved(ctx: Flask, source: str) -> None:
    file = ImageCacheFile(Thumb(source=source))
    call_strategy(file.cachefile_strategy, "on_source_saved", file)
    assert not file.storage.exists(file.name)


def spied_backend(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    calls: collections.Counter[str] = collections.Counter()
    for method in ("get_state", "exists", "generate", "dimensions"):
        original = getattr(Simple, method)

        def spy(
            self: t.Any, *args: t.Any, _m: str = method, _o: t.Any = original, **kw: t.Any
        ) -> t.Any:
            calls[_m] += 1
            return _o(self, *args, **kw)

        monkeypatch.setattr(Simple, method, spy)
    return calls


@pytest.mark.parametrize(
    "how",
    ["setting-string", "setting-class", "setting-object", "spec-string", "spec-class"],
)
def test_optimistic_does_no_storage_calls_for_url_and_bool(
    app: Flask,
    counting: CountingStorage,
    source: str,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    spec: type[ImageSpec] = Thumb
    if how == "setting-string":
        app.config["IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY"] = (
            "flask_imagekit.cachefiles.strategies.Optimistic"
        )
    elif how == "setting-class":
        app.config["IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY"] = Optimistic
    elif how == "setting-object":
        app.config["IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY"] = Optimistic()
    elif how == "spec-string":
        spec = OptimisticThumb
    else:
        spec = OptimisticClassThumb
    ImageKit(app)
    backend_calls = spied_backend(monkeypatch)
    with app.app_context():
        file = ImageCacheFile(spec(source=source))
        assert isinstance(file.cachefile_strategy, Optimistic)
        for _ in range(3):
            assert file.url == "/media/" + file.name
            assert bool(file) is True
        assert counting.io_calls() == {}
        assert backend_calls == {}
        assert not os.path.exists(os.path.join(app.config["IMAGEKIT_MEDIA_ROOT"], file.name))
        # Generating explicitly still works.
        file.generate()
        assert counting.inner.exists(file.name)


class Sources:
    """A minimal source group."""

    def __init__(self, *names: str) -> None:
        self.names = names

    def files(self) -> t.Iterator[SourceFile]:
        for name in self.names:
            yield SourceFile(name)


@pytest.mark.parametrize("signal", [source_created, source_changed], ids=lambda s: s.name)
def test_optimistic_generates_on_source_saved(
    app: Flask, media_root: Path, source: str, signal: t.Any
) -> None:
    app.config["IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY"] = (
        "flask_imagekit.cachefiles.strategies.Optimistic"
    )
    imagekit = ImageKit(app)
    group = Sources(source)
    imagekit.register.generator("tests:optimistic", Thumb)
    imagekit.register.source_group("tests:optimistic", group)
    with app.app_context():
        expected = ImageCacheFile(Thumb(source=source)).name
        assert not (media_root / expected).exists()
        signal.send(group, source=SourceFile(source))
    assert (media_root / expected).is_file()


def test_just_in_time_ignores_source_signals(
    ctx: Flask, imagekit: ImageKit, media_root: Path, source: str
) -> None:
    group = Sources(source)
    imagekit.register.generator("tests:jit", Thumb)
    imagekit.register.source_group("tests:jit", group)
    source_created.send(group, source=SourceFile(source))
    assert not (media_root / "CACHE").exists()


def test_optimistic_on_source_saved_directly(ctx: Flask, source: str, media_root: Path) -> None:
    file = ImageCacheFile(Thumb(source=source), cachefile_strategy=Optimistic())
    call_strategy(file.cachefile_strategy, "on_source_saved", file)
    assert (media_root / file.name).is_file()


def test_dict_strategy_from_setting(app: Flask, source: str, media_root: Path) -> None:
    calls: list[tuple[str, ImageCacheFile]] = []

    def on_existence(file: ImageCacheFile) -> None:
        calls.append(("existence", file))
        file.generate()

    def on_content(file: ImageCacheFile) -> None:
        calls.append(("content", file))
        file.generate()

    app.config["IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY"] = {
        "on_existence_required": on_existence,
        "on_content_required": on_content,
    }
    ImageKit(app)
    with app.app_context():
        file = ImageCacheFile(Thumb(source=source))
        _ = file.url
        assert calls == [("existence", file)]
        assert (media_root / file.name).is_file()
        _ = file.read()
        assert calls[-1] == ("content", file)


def test_dict_strategy_as_spec_attribute(ctx: Flask, source: str, media_root: Path) -> None:
    seen: list[ImageCacheFile] = []

    class DictSpec(Thumb):
        cachefile_strategy = {"on_existence_required": seen.append}  # noqa: RUF012

    file = ImageCacheFile(DictSpec(source=source))
    _ = file.url
    assert seen == [file]
    assert not (media_root / file.name).exists()  # the callback did not generate


def make_optimistic() -> Optimistic:
    return Optimistic()


def make_dict_strategy() -> dict[str, t.Any]:
    return {"on_source_saved": strategy_callback}


def test_callable_strategies(app: Flask, source: str, media_root: Path) -> None:
    app.config["IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY"] = make_optimistic
    ImageKit(app)
    with app.app_context():
        assert isinstance(current_state().cachefile_strategy, Optimistic)
    other = make_app(media_root.parent, IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=make_dict_strategy)
    ImageKit(other)
    save_source(media_root.parent / "other-media", SOURCE)
    with other.app_context():
        strategy = current_state().cachefile_strategy
        file = ImageCacheFile(Thumb(source=SOURCE))
        call_strategy(strategy, "on_source_saved", file)
        assert file.storage.exists(file.name)
        assert getattr(strategy, "on_existence_required", None) is None


@pytest.mark.parametrize("kind", ["dict", "class", "string"])
def test_strategy_argument_is_resolved(
    ctx: Flask, source: str, media_root: Path, kind: str
) -> None:
    seen: list[ImageCacheFile] = []
    value: t.Any = {
        "dict": {"on_existence_required": seen.append},
        "class": Optimistic,
        "string": "flask_imagekit.cachefiles.strategies.Optimistic",
    }[kind]
    file = ImageCacheFile(Thumb(source=source), cachefile_strategy=value)
    if kind == "dict":
        assert bool(file) is False  # the callback generates nothing; existence is checked
        assert seen == [file]
    else:
        assert bool(file) is True
        assert isinstance(file.cachefile_strategy, Optimistic)
        assert not (media_root / file.name).exists()


def test_existence_and_content_signals(ctx: Flask, source: str) -> None:
    events: list[tuple[str, t.Any, t.Any]] = []

    def on_existence(sender: t.Any, **kw: t.Any) -> None:
        events.append(("existence", sender, kw.get("file")))

    def on_content(sender: t.Any, **kw: t.Any) -> None:
        events.append(("content", sender, kw.get("file")))

    file = ImageCacheFile(Thumb(source=source))
    with (
        existence_required.connected_to(on_existence),
        content_required.connected_to(on_content),
    ):
        _ = file.url
        assert events == [("existence", file, file)]
        assert bool(file)
        assert events[-1] == ("existence", file, file)
        _ = file.read()
        assert events[-1] == ("content", file, file)
        fresh = ImageCacheFile(Thumb(source=source))
        _ = fresh.width
        assert events[-1] == ("content", fresh, fresh)
    assert [e[0] for e in events] == ["existence", "existence", "content", "content"]


def test_signal_receiver_can_generate(app: Flask, source: str, media_root: Path) -> None:
    # A "do nothing" strategy plus an existence_required receiver that generates.
    app.config["IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY"] = {"on_source_saved": strategy_callback}
    ImageKit(app)

    def receiver(sender: t.Any, file: ImageCacheFile, **kw: t.Any) -> None:
        file.generate()

    with app.app_context(), existence_required.connected_to(receiver):
        file = ImageCacheFile(Thumb(source=source))
        assert bool(file) is True
    assert (media_root / file.name).is_file()


# Backends named by specs ---------------------------------------------------------------


class CustomBackend(Simple):
    pass


def test_spec_cachefile_backend_attribute(ctx: Flask, source: str) -> None:
    class WithBackend(Thumb):
        cachefile_backend = f"{__name__}.CustomBackend"

    file = ImageCacheFile(WithBackend(source=source))
    assert isinstance(file.cachefile_backend, CustomBackend)
    assert bool(file)
