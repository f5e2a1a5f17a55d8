"""The example app, through the Flask test client and CLI runner (no browser).

Importing ``example_app.models`` defines models with ``ImageSpecField``s, which
register their specs and source groups in flask_imagekit's process-wide
registry. This module never imports it at collection time (that would leak
them into every other test's ``flask imagekit generate``); the ``gallery_app``
fixture registers them for one test at a time instead.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import subprocess
import sys
import typing as t
import uuid
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from PIL import Image
from sqlalchemy import func, select
from werkzeug.test import TestResponse

import example_app
from example_app import INSTANCE_PATH_ENV, create_app
from example_app.drawing import draw
from example_app.specs import (
    AVATAR_SIZE,
    CARD_SIZE,
    CARD_WIDTHS,
    DISPLAY_BOX,
    FEATURED_SIZE,
    SQUARE_SIZE,
    UPLOAD_BOX,
    WEBP_BOX,
)
from flask_imagekit import register
from flask_imagekit.models import ImageSpecField
from flask_imagekit.registry import default_registry
from flask_imagekit.specs.sourcegroups import ImageFieldSourceGroup

from .conftest import IN_CI, encode, require_service
from .conftest import fetch_image as fetch

PROJECT_ROOT = Path(example_app.__file__).resolve().parents[1]
PHOTO_SPEC_IDS = [
    "example_app:photo:card",
    "example_app:photo:display",
    "example_app:photo:square",
    "example_app:photo:webp",
]
#: Made on commit (Optimistic); ``example_app:photo:card`` is OnRequest.
OPTIMISTIC_ATTRS = ("display", "square", "webp")
#: The files of one photo's card: its own JPEG, and AVIF, WebP and JPEG candidates
#: at the card's narrower widths plus AVIF and WebP at its own.
CARD_FILES_PER_PHOTO = 3 * (len(CARD_WIDTHS) + 1)


def _register_model_specs() -> None:
    """Register what the example app's ``ImageSpecField``s register when defined.

    The suite resets the process-wide registry after every test, but a module
    is defined only once; this puts the fields' specs and source groups back.
    """
    from example_app.models import Author, Photo

    for model in (Author, Photo):
        for field in vars(model).values():
            if not isinstance(field, ImageSpecField):
                continue
            assert field.spec_id is not None
            if field.spec_class is not None:
                default_registry.register_generator(field.spec_id, field.spec_class, replace=True)
            group = ImageFieldSourceGroup(model, field.source)
            if group not in default_registry.source_groups(field.spec_id):
                register.source_group(field.spec_id, group)


@pytest.fixture
def gallery_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> t.Iterator[Flask]:
    """The example app on SQLite and a media folder under ``tmp_path``, tables created."""
    monkeypatch.setenv(INSTANCE_PATH_ENV, str(tmp_path / "instance"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    _register_model_specs()
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "WTF_CSRF_ENABLED": False,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "IMAGEKIT_MEDIA_ROOT": str(tmp_path / "media"),
        }
    )
    from example_app.extensions import db

    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def runner(gallery_app: Flask) -> FlaskCliRunner:
    return gallery_app.test_cli_runner()


@pytest.fixture
def seeded(gallery_app: Flask, runner: FlaskCliRunner) -> Flask:
    """The app after ``flask seed --count 2``."""
    result = runner.invoke(args=["seed", "--count", "2"])
    assert result.exit_code == 0, result.output
    return gallery_app


# Helpers -------------------------------------------------------------------------------


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.pictures: list[Picture] = []
        self._figure: str | None = None
        self._sources: list[dict[str, str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if tag == "figure":
            self._figure = values.get("data-spec")
        elif tag == "picture":
            self._sources = []
        elif tag == "source" and self._sources is not None:
            self._sources.append(values)
        elif tag == "img":
            if self._figure:
                values.setdefault("data-spec", self._figure)
            self.images.append(values)
            if self._sources is not None:
                self.pictures.append(Picture(self._sources, values))

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self._figure = None
        elif tag == "picture":
            self._sources = None


@dataclasses.dataclass
class Picture:
    """A ``<picture>``: the attributes of its ``<source>`` tags and of its ``<img>``."""

    sources: list[dict[str, str]]
    img: dict[str, str]

    def candidates(self) -> list[tuple[str, str, int]]:
        """``(format, url, width)`` of every candidate it offers."""
        found = []
        formats = [(s["type"].split("/")[1].upper(), s["srcset"]) for s in self.sources]
        for fmt, value in [*formats, ("JPEG", self.img["srcset"])]:
            for entry in value.split(", "):
                url, descriptor = entry.rsplit(" ", 1)
                found.append((fmt, url, int(descriptor.removesuffix("w"))))
        return found


def images(html: str) -> list[dict[str, str]]:
    """The attributes of every ``<img>`` (plus ``data-spec`` of its figure)."""
    parser = _Images()
    parser.feed(html)
    return parser.images


def pictures(html: str) -> list[Picture]:
    """Every ``<picture>`` of the page."""
    parser = _Images()
    parser.feed(html)
    return parser.pictures


def status(app: Flask, url: str) -> int:
    """The status of a GET of ``url``."""
    with app.test_client() as client:
        response = client.get(url)
        response.close()
        return response.status_code


def served(app: Flask, tag: dict[str, str]) -> Image.Image:
    """The image an ``<img>`` tag shows; its width/height attributes must be its size."""
    img = fetch(app, tag["src"])
    assert img.size == (int(tag["width"]), int(tag["height"])), tag
    return img


def fits(size: tuple[int, int], box: tuple[int, int]) -> bool:
    """Whether ``size`` is a fit into ``box`` (touching it on one side)."""
    return size[0] <= box[0] and size[1] <= box[1] and (size[0] == box[0] or size[1] == box[1])


def upload(
    app: Flask,
    client: FlaskClient | None = None,
    *,
    image: tuple[bytes, str] | None,
    avatar: tuple[bytes, str] | None = None,
    **form: str,
) -> TestResponse:
    data: dict[str, t.Any] = {"title": "A test photo", "crop_anchor": "c", **form}
    if image is not None:
        data["image"] = (io.BytesIO(image[0]), image[1])
    if avatar is not None:
        data["avatar"] = (io.BytesIO(avatar[0]), avatar[1])
    response = (client or app.test_client()).post(
        "/upload", data=data, content_type="multipart/form-data"
    )
    response.get_data()  # buffered: readable after close
    response.close()
    return response


def cache_file_exists(app: Flask, name: str) -> bool:
    return (Path(app.config["IMAGEKIT_MEDIA_ROOT"]) / name).is_file()


def count_photos(app: Flask) -> int:
    from example_app.extensions import db
    from example_app.models import Photo

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Photo)) or 0


def stored_files(app: Flask, folder: str) -> list[str]:
    root = Path(app.config["IMAGEKIT_MEDIA_ROOT"]) / folder
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def png(size: tuple[int, int] = (1200, 900), style: str = "landscape") -> bytes:
    return encode(draw(style, size, seed=7), "PNG")


# The factory -------------------------------------------------------------------------


def test_factory_sets_up_every_extension(gallery_app: Flask) -> None:
    from example_app.extensions import cache, db, imagekit

    assert gallery_app.extensions["imagekit"] is imagekit
    assert gallery_app.extensions["sqlalchemy"] is db
    assert cache in gallery_app.extensions["cache"]
    assert {"seed", "init-db", "imagekit"} <= set(gallery_app.cli.list_commands(None))  # type: ignore[arg-type]
    endpoints = {rule.endpoint for rule in gallery_app.url_map.iter_rules()}
    assert {"gallery.index", "gallery.detail", "gallery.upload", "imagekit_media"} <= endpoints
    assert gallery_app.config["MAX_CONTENT_LENGTH"] == 8 * 1024 * 1024
    with gallery_app.app_context():
        registry = imagekit.state(gallery_app).registry
        assert set(PHOTO_SPEC_IDS) <= set(registry.source_group_ids())
        assert "example_app:featured" in registry.source_group_ids()
        assert registry.has_generator("example_app:upload")


def test_factory_makes_independent_apps(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(INSTANCE_PATH_ENV, str(tmp_path / "instance"))
    first = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "IMAGEKIT_MEDIA_ROOT": "/a"})
    second = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "IMAGEKIT_MEDIA_ROOT": "/b"})
    imagekit = first.extensions["imagekit"]
    assert imagekit is second.extensions["imagekit"]
    assert imagekit.state(first).media_root != imagekit.state(second).media_root
    assert first.config["SECRET_KEY"] != second.config["SECRET_KEY"]


def test_database_url_selects_postgresql(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(INSTANCE_PATH_ENV, str(tmp_path / "instance"))
    monkeypatch.setenv("DATABASE_URL", "postgres://me:secret@db.example:5432/gallery")
    app = create_app()
    assert app.config["SQLALCHEMY_DATABASE_URI"] == (
        "postgresql+psycopg://me:secret@db.example:5432/gallery"
    )
    assert not (tmp_path / "instance").exists()  # nothing written for a remote database


def test_sqlite_in_the_instance_folder_by_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    instance = tmp_path / "instance"
    monkeypatch.setenv(INSTANCE_PATH_ENV, str(instance))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    app = create_app()
    assert app.instance_path == str(instance)
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{instance / 'example.sqlite3'}"
    assert instance.is_dir()
    assert not (instance / "media").exists()  # nothing generated by the factory


@pytest.mark.postgres
def test_on_postgresql_through_database_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    require_service("PostgreSQL", 5432)
    import psycopg

    admin, user = None, ""
    for user in ("postgres", "root"):
        try:
            admin = psycopg.connect(
                host="127.0.0.1", port=5432, user=user, dbname="test", autocommit=True
            )
            break
        except psycopg.OperationalError:
            continue
    if admin is None:
        msg = "cannot log in to PostgreSQL as postgres or root"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    schema = f"example_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    monkeypatch.setenv(INSTANCE_PATH_ENV, str(tmp_path / "instance"))
    monkeypatch.setenv("DATABASE_URL", f"postgres://{user}@127.0.0.1:5432/test")
    _register_model_specs()
    app = create_app(
        {
            "TESTING": True,
            "IMAGEKIT_MEDIA_ROOT": str(tmp_path / "media"),
            "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"options": f"-csearch_path={schema}"}},
        }
    )
    from example_app.extensions import db

    try:
        assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")
        runner = app.test_cli_runner()
        for args in (["init-db"], ["seed", "--count", "1"], ["imagekit", "generate"]):
            result = runner.invoke(args=args)
            assert result.exit_code == 0, result.output
        assert "0 failed" in result.output
        with app.test_client() as client:
            html = client.get("/").get_data(as_text=True)
            (card,) = [tag for tag in images(html) if tag.get("class") == "thumb"]
            assert served(app, card).size == CARD_SIZE
            assert client.get("/photos/1").status_code == 200
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.close()


# The seed command ----------------------------------------------------------------------


def test_seed_draws_photos_and_generates_their_specs_on_commit(
    gallery_app: Flask, runner: FlaskCliRunner
) -> None:
    result = runner.invoke(args=["seed", "--count", "3"])
    assert result.exit_code == 0, result.output
    assert "[3/3]" in result.output
    assert "Seeded 3 photos by 3 authors" in result.output
    assert count_photos(gallery_app) == 3
    assert stored_files(gallery_app, "featured") == ["mountains.jpg", "skyline.jpg", "tide.jpg"]
    assert len(stored_files(gallery_app, "avatars")) == 3

    from example_app.extensions import db
    from example_app.models import Photo

    with gallery_app.app_context():
        for photo in db.session.scalars(select(Photo)):
            assert fits(photo.image.size, UPLOAD_BOX)
            # Optimistic: the commit generated them; nothing is generated on access.
            for attr in OPTIMISTIC_ATTRS:
                file = getattr(photo, attr)
                assert os.path.isfile(file.path), (photo, attr)
            # OnRequest: not made until a browser asks; sized all the same.
            assert photo.card.size == CARD_SIZE
            assert not cache_file_exists(gallery_app, photo.card.name)
            assert photo.square.size == SQUARE_SIZE
            assert fits(photo.display.size, DISPLAY_BOX)
            with photo.webp.open() as fp, Image.open(fp) as img:
                assert img.format == "WEBP"


def test_seed_skips_when_seeded_and_reset_starts_again(
    seeded: Flask, runner: FlaskCliRunner
) -> None:
    again = runner.invoke(args=["seed", "--count", "5"])
    assert again.exit_code == 0, again.output
    assert "Already seeded: 2 photos" in again.output
    assert count_photos(seeded) == 2

    reset = runner.invoke(args=["seed", "--count", "1", "--reset"])
    assert reset.exit_code == 0, reset.output
    assert count_photos(seeded) == 1
    assert stored_files(seeded, "photos") == ["alpine-dawn.jpg"]
    assert len(stored_files(seeded, "CACHE/images/photos")) == len(OPTIMISTIC_ATTRS)
    html = seeded.test_client().get("/").get_data(as_text=True)
    for tag in images(html):
        served(seeded, tag)


def test_init_db_command(gallery_app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["init-db", "--drop"])
    assert result.exit_code == 0, result.output
    assert "Database ready: sqlite:///" in result.output


# Pages ----------------------------------------------------------------------------------


def test_gallery_serves_images_of_the_specs_sizes(seeded: Flask) -> None:
    with seeded.test_client() as client:
        response = client.get("/")
        assert response.status_code == 200
        html = response.get_data(as_text=True)
    tags = images(html)
    avatars = [tag for tag in tags if tag.get("class") == "avatar"]
    banners = [tag for tag in tags if tag.get("class") == "banner"]
    cards = [picture for picture in pictures(html) if picture.img.get("class") == "thumb"]
    assert [card.img["alt"] for card in cards] == ["Evening swell", "Alpine dawn"]  # newest first
    assert len(avatars) == 2
    assert len(banners) == 3
    for tag in avatars:
        assert served(seeded, tag).size == (64, 64)
    for tag in banners:
        assert served(seeded, tag).size == FEATURED_SIZE
    for card in cards:
        assert card.img["src"].startswith("/media/CACHE/images/photos/")
        assert served(seeded, card.img).size == CARD_SIZE
        assert card.img["loading"] == "lazy"


def test_gallery_cards_are_pictures_made_when_first_asked_for(seeded: Flask) -> None:
    from example_app.views import CARD_SIZES

    made_on_commit = stored_files(seeded, "CACHE/images/photos")  # the Optimistic specs
    html = seeded.test_client().get("/").get_data(as_text=True)
    assert stored_files(seeded, "CACHE/images/photos") == made_on_commit  # none by the render
    cards = [picture for picture in pictures(html) if picture.img.get("class") == "thumb"]
    assert len(cards) == 2
    card = cards[0]
    assert [source["type"] for source in card.sources] == ["image/avif", "image/webp"]
    assert {source["sizes"] for source in card.sources} == {CARD_SIZES}
    assert card.img["sizes"] == CARD_SIZES
    assert (card.img["width"], card.img["height"]) == tuple(str(side) for side in CARD_SIZE)
    assert "style" not in card.img  # no preview known before a candidate is made
    offered = card.candidates()
    assert len(offered) == CARD_FILES_PER_PHOTO
    for fmt, url, width in offered:
        assert "?ik=" in url
        img = fetch(seeded, url)  # the first GET makes it
        assert (img.format, img.size) == (fmt, (width, width * 3 // 4)), url
    assert (
        len(stored_files(seeded, "CACHE/images/photos"))
        == len(made_on_commit) + CARD_FILES_PER_PHOTO
    )
    # Another card's file, asked for with this card's token or with none: refused.
    _, url, _ = offered[0]
    other = cards[1].candidates()[0][1].split("?", 1)[0]
    assert status(seeded, f"{other}?{url.split('?', 1)[1]}") == 404
    assert status(seeded, other) == 404
    assert len(stored_files(seeded, "CACHE/images/photos")) == (
        len(made_on_commit) + CARD_FILES_PER_PHOTO
    )

    # Rendered again: the blurred preview the candidates recorded is the card's background.
    html = seeded.test_client().get("/").get_data(as_text=True)
    card, other_card = [p for p in pictures(html) if p.img.get("class") == "thumb"]
    preview = re.fullmatch(
        r"background-size:cover;background-image:url\((data:image/[a-z]+;base64,\S+)\)",
        card.img["style"],
    )
    assert preview, card.img["style"]
    assert len(preview.group(1)) <= 1024
    assert "style" not in other_card.img  # none of its files was asked for yet
    assert (
        len(stored_files(seeded, "CACHE/images/photos"))
        == len(made_on_commit) + CARD_FILES_PER_PHOTO
    )


def test_empty_gallery_says_how_to_seed(gallery_app: Flask) -> None:
    html = gallery_app.test_client().get("/").get_data(as_text=True)
    assert "No photos yet" in html
    assert "flask --app example_app seed" in html
    assert images(html) == []


def test_detail_page_shows_every_spec(seeded: Flask) -> None:
    with seeded.test_client() as client:
        response = client.get("/photos/1")
        assert response.status_code == 200
        html = response.get_data(as_text=True)
    tags = images(html)
    by_spec = {tag["data-spec"]: tag for tag in tags if "data-spec" in tag}
    assert set(by_spec) == {
        "example_app:photo:card",
        "example_app:photo:webp",
        "example_app:photo:square",
    }
    assert served(seeded, by_spec["example_app:photo:card"]).size == CARD_SIZE
    assert served(seeded, by_spec["example_app:photo:square"]).size == SQUARE_SIZE
    webp = served(seeded, by_spec["example_app:photo:webp"])
    assert webp.format == "WEBP"
    assert fits(webp.size, WEBP_BOX)
    (display,) = [tag for tag in tags if tag.get("class") == "display"]
    assert fits(served(seeded, display).size, DISPLAY_BOX)
    (avatar,) = [tag for tag in tags if tag.get("class") == "avatar"]
    assert served(seeded, avatar).size == AVATAR_SIZE
    assert "<h1>Alpine dawn</h1>" in html
    # Every src is a real image, served with a long max-age.
    for tag in tags:
        with seeded.test_client() as client:
            response = client.get(tag["src"])
            assert response.status_code == 200
            if "/CACHE/" in tag["src"]:
                assert response.cache_control.max_age == 365 * 24 * 3600
            response.close()


def test_detail_page_of_a_missing_photo_is_404(gallery_app: Flask) -> None:
    assert gallery_app.test_client().get("/photos/42").status_code == 404


# Uploads --------------------------------------------------------------------------------


def test_upload_stores_the_photo_and_generates_its_specs(gallery_app: Flask) -> None:
    client = gallery_app.test_client()
    response = upload(
        gallery_app,
        client,
        image=(png((2000, 1500)), "My Holiday.png"),
        avatar=(png((300, 200), "shapes"), "me.png"),
        title="Holiday",
        crop_anchor="t",
        author="Jo",
    )
    assert response.status_code == 302
    location = response.headers["Location"]
    assert re.fullmatch(r"/photos/\d+", location)
    assert stored_files(gallery_app, "photos") == ["My_Holiday.jpg"]
    # Generated when the row was committed, before any page asked for them.
    generated = stored_files(gallery_app, "CACHE/images/photos")
    assert len(generated) == len(OPTIMISTIC_ATTRS)  # the card waits for a browser
    assert sum(name.endswith(".webp") for name in generated) == 1

    from example_app.extensions import db
    from example_app.models import Photo

    with gallery_app.app_context():
        photo = db.session.scalars(select(Photo)).one()
        assert photo.author is not None
        assert photo.author.avatar is not None
        assert (photo.title, photo.crop_anchor, photo.author.name) == ("Holiday", "t", "Jo")
        assert photo.image.size == (1600, 1200)
        assert photo.author.avatar.size == AVATAR_SIZE
    page = client.get(location)
    assert page.status_code == 200
    assert "“Holiday” was uploaded." in page.get_data(as_text=True)
    page.close()


def test_upload_form_page(gallery_app: Flask) -> None:
    html = gallery_app.test_client().get("/upload").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in html
    assert 'name="image"' in html
    assert "30,000,000 pixels" in html


def error_messages(html: str) -> list[str]:
    return re.findall(r'<p class="error" role="alert">([^<]*)</p>', html)


def assert_nothing_internal(app: Flask, html: str) -> None:
    """Visitors see neither the server's paths nor the names of settings."""
    assert app.config["IMAGEKIT_MEDIA_ROOT"] not in html
    assert app.instance_path not in html
    assert "IMAGEKIT_" not in html
    assert "Traceback" not in html


def logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        record.getMessage() + (str(record.exc_info[1]) if record.exc_info else "")
        for record in caplog.records
    )


@pytest.mark.parametrize(
    ("image", "message", "detail"),
    [
        pytest.param(
            (b"Dear diary: I uploaded a text file.", "notes.txt"),
            "This file is not an image we accept. Upload a JPEG, PNG, GIF, WebP",
            "IMAGEKIT_ALLOWED_SOURCE_FORMATS",
            id="text",
        ),
        pytest.param((b"", "empty.png"), "The file is empty.", "'empty.png' is empty", id="empty"),
        pytest.param(
            (png()[:2000], "cut.png"),
            "The file is truncated or damaged.",
            "cut.png",
            id="truncated",
        ),
        pytest.param(None, "Choose a photo to upload.", None, id="missing"),
    ],
)
def test_upload_errors_are_plain_words_and_the_detail_is_logged(
    gallery_app: Flask,
    caplog: pytest.LogCaptureFixture,
    image: tuple[bytes, str] | None,
    message: str,
    detail: str | None,
) -> None:
    caplog.set_level("WARNING")
    response = upload(gallery_app, image=image)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    errors = error_messages(html)
    assert any(message in error for error in errors), errors
    assert_nothing_internal(gallery_app, html)
    if detail is not None:
        assert detail in logged(caplog)
    assert count_photos(gallery_app) == 0
    assert stored_files(gallery_app, "photos") == []


def test_upload_over_the_pixel_limit(gallery_app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING")
    gallery_app.config["IMAGEKIT_MAX_SOURCE_PIXELS"] = 30_000_000
    # 8000 x 4000 = 32 MP, but only a few kB as a PNG: refused from its header.
    big = encode(Image.new("L", (8000, 4000), 128), "PNG")
    assert len(big) < gallery_app.config["MAX_CONTENT_LENGTH"]
    response = upload(gallery_app, image=(big, "huge.png"))
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert any("This image is too large." in error for error in error_messages(html))
    assert_nothing_internal(gallery_app, html)
    assert "over the limit of 30,000,000 (IMAGEKIT_MAX_SOURCE_PIXELS)" in logged(caplog)
    assert count_photos(gallery_app) == 0


def test_upload_over_max_content_length(gallery_app: Flask) -> None:
    gallery_app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    response = upload(gallery_app, image=(b"\x89PNG" + os.urandom(100_000), "big.png"))
    assert response.status_code == 413
    assert "The upload is larger than 0.0625 MB" in response.get_data(as_text=True)
    assert count_photos(gallery_app) == 0


def test_bad_avatar_keeps_nothing(gallery_app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING")
    response = upload(
        gallery_app, image=(png(), "ok.png"), avatar=(b"not a picture", "me.gif"), author="Jo"
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert any("This file is not an image we accept." in e for e in error_messages(html)), html
    assert_nothing_internal(gallery_app, html)
    assert "IMAGEKIT_ALLOWED_SOURCE_FORMATS" in logged(caplog)
    assert count_photos(gallery_app) == 0
    assert stored_files(gallery_app, "photos") == []
    assert stored_files(gallery_app, "avatars") == []


@pytest.mark.parametrize("folder", ["photos", "avatars"])
def test_storage_error_shows_plain_words_and_logs_the_detail(
    gallery_app: Flask, caplog: pytest.LogCaptureFixture, folder: str
) -> None:
    caplog.set_level("WARNING")
    media = Path(gallery_app.config["IMAGEKIT_MEDIA_ROOT"])
    media.mkdir(parents=True, exist_ok=True)
    (media / folder).write_text("a file where the folder should be")
    response = upload(
        gallery_app, image=(png(), "ok.png"), avatar=(png((300, 200)), "me.png"), author="Jo"
    )
    assert response.status_code == 500
    html = response.get_data(as_text=True)
    assert "could not be saved" in html
    assert_nothing_internal(gallery_app, html)
    assert str(media) in logged(caplog)  # the detail is for the logs
    assert count_photos(gallery_app) == 0
    from example_app.extensions import db
    from example_app.models import Author

    with gallery_app.app_context():
        assert db.session.scalars(select(Author)).all() == []
    for other in {"photos", "avatars"} - {folder}:
        assert not (media / other).exists() or stored_files(gallery_app, other) == []


# Who may change an author ------------------------------------------------------------------


def author_avatar(app: Flask, name: str) -> tuple[str | None, bytes | None]:
    """The stored name of ``name``'s avatar and its bytes."""
    from example_app.extensions import db
    from example_app.models import Author

    with app.app_context():
        author = db.session.scalars(select(Author).where(Author.name == name)).one()
        if author.avatar is None:
            return None, None
        with author.avatar.open() as fp:
            return author.avatar.name, fp.read()


def test_only_the_session_that_created_an_author_can_change_it(gallery_app: Flask) -> None:
    mine, theirs = gallery_app.test_client(), gallery_app.test_client()
    first = upload(
        gallery_app, mine, image=(png(), "a.png"), avatar=(png((300, 200)), "me.png"), author="Jo"
    )
    assert first.status_code == 302
    before = author_avatar(gallery_app, "Jo")
    assert before[0] is not None

    for avatar in [(png((200, 300), "shapes"), "not-jo.png"), None]:
        refused = upload(gallery_app, theirs, image=(png(), "b.png"), avatar=avatar, author=" Jo ")
        assert refused.status_code == 400
        html = refused.get_data(as_text=True)
        assert any("The name “Jo” is taken" in e for e in error_messages(html)), html
        assert author_avatar(gallery_app, "Jo") == before
        assert count_photos(gallery_app) == 1
        assert stored_files(gallery_app, "avatars") == [before[0].split("/", 1)[1]]
        assert stored_files(gallery_app, "photos") == ["a.jpg"]

    again = upload(
        gallery_app,
        mine,
        image=(png(), "c.png"),
        avatar=(png((99, 99), "waves"), "new.png"),
        author="Jo",
    )
    assert again.status_code == 302
    after = author_avatar(gallery_app, "Jo")
    assert after[0] != before[0]
    assert after[1] != before[1]
    assert count_photos(gallery_app) == 2


def test_seeded_authors_belong_to_no_visitor(seeded: Flask) -> None:
    before = author_avatar(seeded, "Ada Lovelace")
    response = upload(
        seeded, image=(png(), "b.png"), avatar=(png((300, 200)), "x.png"), author="Ada Lovelace"
    )
    assert response.status_code == 400
    assert "is taken" in response.get_data(as_text=True)
    assert author_avatar(seeded, "Ada Lovelace") == before
    assert count_photos(seeded) == 2


def session_cookie(app: Flask, data: dict[str, t.Any], secret_key: str | None = None) -> str:
    """A session cookie holding ``data``, signed with ``secret_key`` (the app's by default)."""
    signer = Flask("signer")
    signer.secret_key = secret_key or app.secret_key
    serializer = signer.session_interface.get_signing_serializer(signer)  # type: ignore[attr-defined]
    return str(serializer.dumps(data))


@pytest.mark.parametrize(
    ("owned", "secret_key"),
    [
        pytest.param([[1, "Jo"]], "not the app's key", id="signed-with-another-key"),
        pytest.param([[1, "Someone before a reset"]], None, id="same-id-other-name"),
    ],
)
def test_a_session_that_did_not_create_the_author_owns_nothing(
    gallery_app: Flask, owned: list[t.Any], secret_key: str | None
) -> None:
    from example_app.views import OWNED_AUTHORS

    mine = gallery_app.test_client()
    assert upload(gallery_app, mine, image=(png(), "a.png"), author="Jo").status_code == 302
    theirs = gallery_app.test_client()
    theirs.set_cookie("session", session_cookie(gallery_app, {OWNED_AUTHORS: owned}, secret_key))
    response = upload(
        gallery_app, theirs, image=(png(), "b.png"), avatar=(png((300, 200)), "x.png"), author="Jo"
    )
    assert response.status_code == 400
    assert "is taken" in response.get_data(as_text=True)
    assert author_avatar(gallery_app, "Jo") == (None, None)
    assert count_photos(gallery_app) == 1


# flask imagekit generate, and the demo ---------------------------------------------------


def test_generate_over_the_seeded_app(seeded: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["imagekit", "generate"])
    assert result.exit_code == 0, result.output
    summary = result.output.strip().splitlines()[-1]
    assert re.fullmatch(r"Generated \d+ files?, \d+ already there, 0 failed\.", summary), summary
    assert "featured/mountains.jpg" in result.output
    listing = runner.invoke(args=["imagekit", "list"])
    assert listing.exit_code == 0, listing.output
    assert "example_app:featured  JpegsInADirectory('featured')  3 sources" in listing.output
    for spec_id in PHOTO_SPEC_IDS:
        assert f"{spec_id}  ImageFieldSourceGroup(Photo, 'image')  2 sources" in listing.output
    assert (
        "example_app:photo:card  ImageFieldSourceGroup(Photo, 'image')  2 sources, "
        "each with candidates at 320, 480 px in AVIF, WEBP and its own format"
    ) in listing.output


def run_checked(
    args: list[str], env: dict[str, str], timeout: float, cwd: Path | None = None
) -> str:
    """Run ``args``; fail the test with its output unless it exits 0; return its stdout."""
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_generate_in_another_process_warms_the_cards(seeded: Flask) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "FLASK_SQLALCHEMY_DATABASE_URI": seeded.config["SQLALCHEMY_DATABASE_URI"],
        "FLASK_IMAGEKIT_MEDIA_ROOT": seeded.config["IMAGEKIT_MEDIA_ROOT"],
        INSTANCE_PATH_ENV: seeded.instance_path,
    }

    def generate() -> str:
        return run_checked(
            [sys.executable, "-m", "flask", "--app", "example_app", "imagekit", "generate"]
            + ["example_app:photo"],
            env=env,
            timeout=60,
        )

    # The files of the Optimistic specs were made on commit; the cards' are made now.
    cards, made_on_commit = 2 * CARD_FILES_PER_PHOTO, 2 * len(OPTIMISTIC_ATTRS)
    out = generate()
    assert f"Generated {cards} files, {made_on_commit} already there, 0 failed." in out
    out = generate()
    assert f"Generated 0 files, {cards + made_on_commit} already there, 0 failed." in out
    # What the gallery offers is what was made: its first visit makes nothing.
    made = stored_files(seeded, "CACHE/images/photos")
    html = seeded.test_client().get("/").get_data(as_text=True)
    for card in pictures(html):
        for _, url, _ in card.candidates():
            assert status(seeded, url) == 200
    assert stored_files(seeded, "CACHE/images/photos") == made


@pytest.mark.parametrize("warm", [False, True], ids=["cards-on-request", "warm"])
def test_demo_without_serving(tmp_path: Path, warm: bool) -> None:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    env.pop("DATABASE_URL", None)
    instance = tmp_path / "instance"
    out = run_checked(
        [sys.executable, "-m", "example_app.demo", "--instance", str(instance)]
        + ["--count", "2", "--no-serve"]
        + (["--warm"] if warm else []),
        env=env,
        timeout=90,
        cwd=tmp_path,
    )
    generate = "imagekit generate" if warm else "imagekit generate example_app:featured"
    for step in ("init-db", "seed --count 2", generate):
        assert f"$ flask --app example_app {step}\n" in out
    assert "Seeded 2 photos" in out
    assert re.search(r"Generated \d+ files, \d+ already there, 0 failed\.", out), out
    assert (instance / "example.sqlite3").is_file()
    media = instance / "media"
    assert sorted(os.listdir(media / "photos")) == ["alpine-dawn.jpg", "evening-swell.jpg"]
    assert len(list((media / "CACHE" / "images" / "featured").rglob("*.jpg"))) == 3
    # The cards' AVIF and WebP files: made now only when warming, else by browsers.
    made = [p for p in (media / "CACHE").rglob("*") if p.suffix in (".avif", ".webp")]
    webp_copies = 2  # Photo.webp, made on commit
    cards = 2 * 2 * (len(CARD_WIDTHS) + 1)  # 2 photos, AVIF and WebP, 3 widths
    assert len(made) == webp_copies + (cards if warm else 0)
    assert "Serving" not in out
