"""The extension: config defaults and validation, per-app state, the media route."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from cachelib import NullCache, SimpleCache
from flask import Flask
from flask_caching import Cache

from flask_imagekit import ImageKit, ImageSpec, register
from flask_imagekit.cachefiles import ImageCacheFile
from flask_imagekit.cachefiles.backends import Simple
from flask_imagekit.cachefiles.strategies import JustInTime, Optimistic
from flask_imagekit.config import DEFAULTS
from flask_imagekit.exceptions import ImproperlyConfigured
from flask_imagekit.processors import ResizeToFill
from flask_imagekit.storage import FileSystemStorage

from .conftest import save_source


class Thumb(ImageSpec):
    processors = [ResizeToFill(40, 30)]
    format = "JPEG"


def make_app(tmp_path: Path, name: str = "app", **config: t.Any) -> Flask:
    app = Flask(name, instance_path=str(tmp_path / f"{name}-instance"))
    app.config.update(TESTING=True, **config)
    return app


def test_init_app_registers_extension_and_defaults(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    imagekit = ImageKit()
    imagekit.init_app(app)
    assert app.extensions["imagekit"] is imagekit
    for key in DEFAULTS:
        assert key in app.config
    state = imagekit.state(app)
    assert state.media_root == str(tmp_path / "app-instance" / "media")
    assert state.media_url == "/media/"
    assert state.cachefile_dir == "CACHE/images"
    assert isinstance(state.cachefile_backend, Simple)
    assert isinstance(state.cachefile_strategy, JustInTime)
    assert isinstance(state.storage, FileSystemStorage)
    assert state.source_storage is state.storage
    assert state.max_source_pixels == 50_000_000
    assert "JPEG" in state.allowed_source_formats
    assert "EPS" not in state.allowed_source_formats


def test_constructor_with_app(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    imagekit = ImageKit(app)
    assert app.extensions["imagekit"] is imagekit


def test_second_init_on_same_app_raises(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    ImageKit(app)
    with pytest.raises(ImproperlyConfigured, match="already registered"):
        ImageKit(app)


def test_user_config_is_kept(tmp_path: Path) -> None:
    app = make_app(
        tmp_path,
        IMAGEKIT_MEDIA_URL="/files",
        IMAGEKIT_CACHEFILE_DIR="thumbs/cache",
        IMAGEKIT_CACHE_PREFIX="x:",
        IMAGEKIT_CACHE_TIMEOUT=3600,
        IMAGEKIT_MAX_SOURCE_PIXELS=1000,
        IMAGEKIT_ALLOWED_SOURCE_FORMATS=["jpeg", "png"],
    )
    state = ImageKit(app).state(app)
    assert state.media_url == "/files/"
    assert state.cachefile_dir == "thumbs/cache"
    assert state.cache_prefix == "x:"
    assert state.cache_timeout == 3600
    assert state.max_source_pixels == 1000
    assert state.allowed_source_formats == ("JPEG", "PNG")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("IMAGEKIT_MEDIA_URL", 5),
        ("IMAGEKIT_MEDIA_URL", ""),
        ("IMAGEKIT_MEDIA_ROOT", 12),
        ("IMAGEKIT_SERVE_MEDIA", "yes"),
        ("IMAGEKIT_CACHE_TIMEOUT", -1),
        ("IMAGEKIT_CACHE_TIMEOUT", "long"),
        ("IMAGEKIT_MAX_SOURCE_PIXELS", 0),
        ("IMAGEKIT_MAX_SOURCE_PIXELS", 1.5),
        ("IMAGEKIT_ALLOWED_SOURCE_FORMATS", ["NOPE"]),
        ("IMAGEKIT_ALLOWED_SOURCE_FORMATS", "JPEG"),
        ("IMAGEKIT_ALLOWED_SOURCE_FORMATS", []),
        ("IMAGEKIT_DEFAULT_CACHEFILE_BACKEND", "no.such.module.Backend"),
        ("IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY", "flask_imagekit.cachefiles.strategies.Nope"),
        ("IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY", {"on_nothing": print}),
        ("IMAGEKIT_CACHEFILE_NAMER", 42),
        ("IMAGEKIT_SPEC_CACHEFILE_NAMER", "flask_imagekit.cachefiles.namers.nope"),
        ("IMAGEKIT_DEFAULT_FILE_STORAGE", object()),
        ("IMAGEKIT_SOURCE_STORAGE", "builtins.object"),
        ("IMAGEKIT_CACHEFILE_DIR", "../outside"),
        ("IMAGEKIT_CACHEFILE_DIR", "/abs"),
        ("IMAGEKIT_CACHE_BACKEND", 42),
        ("IMAGEKIT_CACHE_PREFIX", None),
    ],
)
def test_bad_config_fails_at_init(tmp_path: Path, key: str, value: object) -> None:
    app = make_app(tmp_path, **{key: value})
    with pytest.raises(ImproperlyConfigured, match=key):
        ImageKit(app)
    assert "imagekit" not in app.extensions


@pytest.mark.parametrize(
    "value",
    [
        "flask_imagekit.cachefiles.strategies.Optimistic",
        Optimistic,
        Optimistic(),
    ],
)
def test_strategy_setting_accepts_path_class_or_object(tmp_path: Path, value: object) -> None:
    app = make_app(tmp_path, IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=value)
    state = ImageKit(app).state(app)
    assert isinstance(state.cachefile_strategy, Optimistic)


def test_storage_setting_accepts_object(tmp_path: Path) -> None:
    storage = FileSystemStorage(tmp_path / "elsewhere", "https://cdn.example/")
    sources = FileSystemStorage(tmp_path / "sources", "/src/")
    app = make_app(
        tmp_path, IMAGEKIT_DEFAULT_FILE_STORAGE=storage, IMAGEKIT_SOURCE_STORAGE=sources
    )
    state = ImageKit(app).state(app)
    assert state.storage is storage
    assert state.source_storage is sources


def test_state_cache_defaults(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    assert isinstance(ImageKit(app).state(app).state_cache, SimpleCache)

    debug_app = make_app(tmp_path, "debug")
    debug_app.debug = True
    assert isinstance(ImageKit(debug_app).state(debug_app).state_cache, NullCache)

    explicit = SimpleCache()
    debug_explicit = make_app(tmp_path, "debug2", IMAGEKIT_CACHE_BACKEND=explicit)
    debug_explicit.debug = True
    assert ImageKit(debug_explicit).state(debug_explicit).state_cache is explicit


def test_state_cache_from_flask_caching(tmp_path: Path) -> None:
    app = make_app(tmp_path, CACHE_TYPE="SimpleCache")
    cache = Cache()
    imagekit = ImageKit()
    imagekit.init_app(app, cache=cache)
    cache.init_app(app)  # any order: the backend is looked up on first use
    assert imagekit.state(app).state_cache is app.extensions["cache"][cache]

    dict_app = make_app(tmp_path, "dict", IMAGEKIT_CACHE_BACKEND={"CACHE_TYPE": "SimpleCache"})
    state = ImageKit(dict_app).state(dict_app)
    assert isinstance(state.state_cache, SimpleCache)


def test_flask_caching_cache_not_initialised_is_reported(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    imagekit = ImageKit(app, cache=Cache())
    with pytest.raises(ImproperlyConfigured, match="cache.init_app"):
        _ = imagekit.state(app).state_cache


def test_two_apps_keep_separate_registries_and_storages(tmp_path: Path) -> None:
    app1, app2 = make_app(tmp_path, "one"), make_app(tmp_path, "two")
    ik1, ik2 = ImageKit(app1), ImageKit(app2)
    assert ik1.state(app1).storage != ik2.state(app2).storage

    class Other(Thumb):
        format = "PNG"

    ik1.register.generator("app:thumb", Thumb)
    ik2.register.generator("app:thumb", Other)
    register.generator("shared:thumb", Thumb)
    with app1.app_context():
        assert ik1.registry.generator_factory("app:thumb") is Thumb
        assert ik1.registry.has_generator("shared:thumb")
    with app2.app_context():
        assert ik2.registry.generator_factory("app:thumb") is Other
        assert ik2.registry.has_generator("shared:thumb")

    for app in (app1, app2):
        media = Path(app.extensions["imagekit"].state(app).media_root)
        save_source(media, "p.jpg")
        with app.app_context():
            file = ImageCacheFile(Thumb(source="p.jpg"))
            file.generate()
            assert Path(file.path).is_relative_to(media)


def test_extension_registry_wins_over_default(tmp_path: Path) -> None:
    class Other(Thumb):
        format = "PNG"

    register.generator("app:thumb", Thumb)
    app = make_app(tmp_path)
    imagekit = ImageKit(app)
    imagekit.register.generator("app:thumb", Other)
    assert imagekit.registry.get_generator("app:thumb", source="x.jpg").format == "PNG"


def test_outside_app_context_error_is_clear() -> None:
    with pytest.raises(ImproperlyConfigured, match="application context"):
        ImageCacheFile(Thumb(source="x.jpg")).url  # noqa: B018


# The media route ------------------------------------------------------------------


@pytest.fixture
def served(app: Flask, imagekit: ImageKit, media_root: Path, tmp_path: Path) -> Flask:
    (tmp_path / "secret.txt").write_text("top secret")
    (media_root / "photos").mkdir()
    (media_root / "photos" / "a.txt").write_text("source file")
    cache_dir = media_root / "CACHE" / "images"
    cache_dir.mkdir(parents=True)
    (cache_dir / "x.jpg").write_bytes(b"cached")
    return app


def get(app: Flask, path: str, **kwargs: t.Any) -> t.Any:
    response = app.test_client().get(path, **kwargs)
    response.get_data()
    response.close()
    return response


def test_media_route_serves_files_with_conditional_get(served: Flask) -> None:
    response = get(served, "/media/CACHE/images/x.jpg")
    assert response.status_code == 200
    assert response.data == b"cached"
    assert response.cache_control.max_age == 365 * 24 * 3600
    assert response.cache_control.public
    etag = response.headers["ETag"]
    again = get(served, "/media/CACHE/images/x.jpg", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    since = get(
        served,
        "/media/CACHE/images/x.jpg",
        headers={"If-Modified-Since": response.headers["Last-Modified"]},
    )
    assert since.status_code == 304


def test_media_route_sources_are_not_cached_for_long(served: Flask) -> None:
    response = get(served, "/media/photos/a.txt")
    assert response.status_code == 200
    assert response.data == b"source file"
    assert response.cache_control.max_age != 365 * 24 * 3600


@pytest.mark.parametrize(
    "path",
    [
        "/media/../secret.txt",
        "/media/%2e%2e/secret.txt",
        "/media/%2E%2E/secret.txt",
        "/media/..%2fsecret.txt",
        "/media/%2e%2e%2fsecret.txt",
        "/media/photos/../../secret.txt",
        "/media/photos/%2e%2e/%2e%2e/secret.txt",
        "/media/..%5csecret.txt",
        "/media/%5c..%5csecret.txt",
        "/media//etc/passwd",
        "/media/%2fetc%2fpasswd",
        "/media/photos/a.txt%00.jpg",
        "/media/%00",
        "/media/photos/%c0%ae%c0%ae/secret.txt",
        "/media/" + "..%2f" * 10 + "etc/passwd",
    ],
)
def test_media_route_refuses_traversal(served: Flask, path: str) -> None:
    response = get(served, path)
    if response.status_code == 308:  # werkzeug merges slashes, staying under /media/
        assert response.headers["Location"].startswith("http://localhost/media/")
        response = get(served, response.headers["Location"])
    assert response.status_code in (400, 404), response.status_code
    assert b"top secret" not in response.data
    assert b"root:" not in response.data


def test_media_route_missing_file_is_404(served: Flask) -> None:
    assert get(served, "/media/nope.jpg").status_code == 404


@pytest.mark.parametrize(
    "config",
    [
        {"IMAGEKIT_SERVE_MEDIA": False},
        {"IMAGEKIT_SERVE_MEDIA": False, "IMAGEKIT_MEDIA_URL": "https://cdn.example.com/media/"},
    ],
)
def test_media_route_can_be_left_out(tmp_path: Path, config: dict[str, t.Any]) -> None:
    app = make_app(tmp_path, **config)
    ImageKit(app)
    assert "imagekit_media" not in app.view_functions
