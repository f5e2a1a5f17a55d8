"""The ``IMAGEKIT_*`` settings: defaults, validation at ``init_app``, resolved values.

A bad value fails at start-up with an ``ImproperlyConfigured`` naming the key, never
at the first request. Keys that name a class or function take the object, a class
or a dotted path, resolved once at ``init_app``. Resolved settings are looked at
through ``app.extensions["imagekit.state"]`` and ``current_state()``.
"""

from __future__ import annotations

import logging
import typing as t
from pathlib import Path

import pytest
from cachelib import FileSystemCache, NullCache, SimpleCache
from flask import Flask
from flask_caching import Cache
from PIL import Image, features

from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.cachefiles import ImageCacheFile, namers
from flask_imagekit.cachefiles.backends import Simple
from flask_imagekit.cachefiles.strategies import JustInTime, Optimistic
from flask_imagekit.config import DEFAULTS
from flask_imagekit.exceptions import ImageKitError, ImproperlyConfigured, MissingSource
from flask_imagekit.globals import current_state, current_state_or_none
from flask_imagekit.processors import ResizeToFill
from flask_imagekit.storage import FileSystemStorage, FsspecStorage

from .conftest import count_calls, photo, save_source

SOURCE = "photos/bulldog.jpg"
STATE_KEY = "imagekit.state"


class Thumb(ImageSpec):
    processors = [ResizeToFill(100, 50)]
    format = "JPEG"


class Fill(ImageSpec):
    processors = [ResizeToFill(40, 30)]
    format = "JPEG"


class CustomBackend(Simple):
    pass


class MemoryStorage(FsspecStorage):
    """A storage built without arguments, so a dotted path can name its class."""

    def __init__(self) -> None:
        super().__init__("memory://config-tests", "/memory/")


class Exploding:
    def __init__(self) -> None:
        msg = "cannot build me"
        raise RuntimeError(msg)


class Opaque:
    """Something no setting accepts."""

    def __repr__(self) -> str:
        return "Opaque()"


def needs_an_argument(x: t.Any) -> t.Any:
    return x


def strategy_callback(file: ImageCacheFile) -> None:
    file.generate()


def other_namer(generator: t.Any) -> str:
    return f"other/{generator.get_hash()}.jpg"


@pytest.fixture
def source(media_root: Path) -> str:
    return save_source(media_root, SOURCE, photo((160, 120)))


def make_app(tmp_path: Path, name: str = "app", **config: t.Any) -> Flask:
    """A fresh app; TESTING and IMAGEKIT_MEDIA_ROOT may be overridden in ``config``."""
    app = Flask(name, instance_path=str(tmp_path / f"{name}-instance"))
    app.config.update({"TESTING": True, "IMAGEKIT_MEDIA_ROOT": str(tmp_path / f"{name}-media")})
    app.config.update(config)
    return app


def state_of(app: Flask) -> t.Any:
    """The resolved settings of ``app`` (its AppState)."""
    return app.extensions[STATE_KEY]


def int_backend() -> Simple:
    """A Simple backend with whole-second timeouts, which every cachelib cache takes."""
    return Simple(missing_timeout=1, lock_timeout=30)


# Defaults ---------------------------------------------------------------------------


def test_defaults_are_set_with_setdefault(tmp_path: Path) -> None:
    app = make_app(tmp_path, IMAGEKIT_MEDIA_URL="/files", IMAGEKIT_CACHE_PREFIX="x:")
    ImageKit(app)
    # The user's values stay in app.config as given; the state holds them resolved.
    assert app.config["IMAGEKIT_MEDIA_URL"] == "/files"
    assert app.config["IMAGEKIT_CACHE_PREFIX"] == "x:"
    assert app.config["IMAGEKIT_MEDIA_ROOT"] == str(tmp_path / "app-media")
    untouched = set(DEFAULTS) - {"IMAGEKIT_MEDIA_URL", "IMAGEKIT_CACHE_PREFIX"}
    untouched.discard("IMAGEKIT_MEDIA_ROOT")
    for key in untouched:
        assert app.config[key] == DEFAULTS[key], key
    assert state_of(app).media_url == "/files/"


def test_default_settings_resolve_to_the_documented_objects(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    ImageKit(app)
    state = state_of(app)
    assert state.cachefile_namer is namers.hash
    assert state.spec_cachefile_namer is namers.source_name_as_path
    assert type(state.cachefile_backend) is Simple
    assert type(state.cachefile_strategy) is JustInTime
    assert state.cache_prefix == "imagekit:"
    assert state.cache_timeout is None
    assert state.failure_timeout == 60
    assert state.thumbnail_sizes is None
    assert state.placeholder is None
    assert state.serve_media is True
    assert state.responsive_widths == (480, 800, 1200, 1600)
    assert state.responsive_formats == tuple(
        fmt for fmt in ("AVIF", "WEBP") if features.check(fmt.lower())
    )


def test_media_root_defaults_to_the_instance_folder(tmp_path: Path) -> None:
    app = Flask("bare", instance_path=str(tmp_path / "bare-instance"))
    ImageKit(app)
    assert state_of(app).media_root == str(tmp_path / "bare-instance" / "media")


def test_media_root_may_be_a_path_object(tmp_path: Path) -> None:
    app = make_app(tmp_path, IMAGEKIT_MEDIA_ROOT=tmp_path / "as-path")
    ImageKit(app)
    assert state_of(app).media_root == str(tmp_path / "as-path")


# Validation at init_app --------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("IMAGEKIT_MEDIA_URL", None),
        ("IMAGEKIT_SERVE_MEDIA", None),
        ("IMAGEKIT_SERVE_MEDIA", 1),
        ("IMAGEKIT_DEFAULT_FILE_STORAGE", Exploding),
        ("IMAGEKIT_DEFAULT_FILE_STORAGE", "no.such.module.Storage"),
        ("IMAGEKIT_SOURCE_STORAGE", 42),
        ("IMAGEKIT_CACHEFILE_NAMER", None),
        ("IMAGEKIT_CACHE_BACKEND", "no.such.module.Cache"),
        ("IMAGEKIT_CACHE_BACKEND", Opaque()),
        ("IMAGEKIT_CACHE_TIMEOUT", True),
        ("IMAGEKIT_CACHE_TIMEOUT", 0),
        ("IMAGEKIT_MAX_SOURCE_PIXELS", True),
        ("IMAGEKIT_MAX_SOURCE_PIXELS", -5),
        ("IMAGEKIT_MAX_DECODE_BYTES", 0),
        ("IMAGEKIT_MAX_DECODE_BYTES", -1),
        ("IMAGEKIT_MAX_DECODE_BYTES", 1.5),
        ("IMAGEKIT_MAX_DECODE_BYTES", "lots"),
        ("IMAGEKIT_MAX_DECODE_BYTES", True),
        ("IMAGEKIT_MAX_OUTPUT_PIXELS", 0),
        ("IMAGEKIT_MAX_OUTPUT_PIXELS", "many"),
        ("IMAGEKIT_MAX_OUTPUT_PIXELS", True),
        ("IMAGEKIT_ALLOWED_SOURCE_FORMATS", None),
        ("IMAGEKIT_ALLOWED_SOURCE_FORMATS", 5),
        ("IMAGEKIT_RAISE_ERRORS", "yes"),
        ("IMAGEKIT_RAISE_ERRORS", 1),
        ("IMAGEKIT_RAISE_ERRORS", 0),
        ("IMAGEKIT_FAILURE_TIMEOUT", True),
        ("IMAGEKIT_FAILURE_TIMEOUT", "60"),
        ("IMAGEKIT_FAILURE_TIMEOUT", 0.5),
        ("IMAGEKIT_FAILURE_TIMEOUT", None),
        ("IMAGEKIT_DELETE_ORPHANED_CACHEFILES", None),
        ("IMAGEKIT_DELETE_ORPHANED_CACHEFILES", "no"),
        ("IMAGEKIT_LOCAL_STATE_TIMEOUT", -1),
        ("IMAGEKIT_LOCAL_STATE_TIMEOUT", True),
        ("IMAGEKIT_LOCAL_STATE_TIMEOUT", "60"),
        ("IMAGEKIT_RESPONSIVE_WIDTHS", None),
        ("IMAGEKIT_RESPONSIVE_WIDTHS", "480,800"),
        ("IMAGEKIT_RESPONSIVE_WIDTHS", []),
        ("IMAGEKIT_RESPONSIVE_WIDTHS", [480, 0]),
        ("IMAGEKIT_RESPONSIVE_WIDTHS", [480, -1]),
        ("IMAGEKIT_RESPONSIVE_WIDTHS", [480.5]),
        ("IMAGEKIT_RESPONSIVE_WIDTHS", ["480"]),
        ("IMAGEKIT_RESPONSIVE_WIDTHS", [True]),
        ("IMAGEKIT_RESPONSIVE_WIDTHS", [100_000]),
        ("IMAGEKIT_RESPONSIVE_FORMATS", None),
        ("IMAGEKIT_RESPONSIVE_FORMATS", "AVIF"),
        ("IMAGEKIT_RESPONSIVE_FORMATS", ["AVIF", "JPEG-XL"]),
        ("IMAGEKIT_RESPONSIVE_FORMATS", ["WEBP", 5]),
        ("IMAGEKIT_RESPONSIVE_FORMATS", ["PDF"]),
        ("IMAGEKIT_RESPONSIVE_FORMATS", ["EPS"]),
        ("IMAGEKIT_RESPONSIVE_FORMATS", ["ICO"]),
        ("IMAGEKIT_RESPONSIVE_FORMATS", ["WEBP", "BMP"]),
        ("IMAGEKIT_RESPONSIVE_FORMATS", ["TIFF"]),
    ],
    ids=repr,
)
def test_bad_values_fail_at_init_naming_the_key(tmp_path: Path, key: str, value: t.Any) -> None:
    app = make_app(tmp_path, **{key: value})
    with pytest.raises(ImproperlyConfigured, match=key) as info:
        ImageKit(app)
    assert isinstance(info.value, ImageKitError)
    assert "imagekit" not in app.extensions
    assert STATE_KEY not in app.extensions


def test_the_error_shows_the_value_that_was_refused(tmp_path: Path) -> None:
    app = make_app(tmp_path, IMAGEKIT_MAX_SOURCE_PIXELS=-5)
    with pytest.raises(ImproperlyConfigured) as info:
        ImageKit(app)
    assert "IMAGEKIT_MAX_SOURCE_PIXELS" in str(info.value)
    assert "-5" in str(info.value)


def test_a_failed_init_can_be_retried_once_the_value_is_fixed(tmp_path: Path) -> None:
    app = make_app(tmp_path, IMAGEKIT_FAILURE_TIMEOUT=0)
    imagekit = ImageKit()
    with pytest.raises(ImproperlyConfigured, match="IMAGEKIT_FAILURE_TIMEOUT"):
        imagekit.init_app(app)
    app.config["IMAGEKIT_FAILURE_TIMEOUT"] = 30
    imagekit.init_app(app)
    assert app.extensions["imagekit"] is imagekit
    assert state_of(app).failure_timeout == 30


@pytest.mark.parametrize("bad_dir", ["/abs/cache", "../outside", "a/../../b", "", "C:\\cache"])
def test_bad_cachefile_dir_is_refused_at_init(app: Flask, bad_dir: str) -> None:
    app.config["IMAGEKIT_CACHEFILE_DIR"] = bad_dir
    with pytest.raises(ImproperlyConfigured, match="IMAGEKIT_CACHEFILE_DIR"):
        ImageKit(app)


@pytest.mark.parametrize("value", [5, b"/x.png", ""])
def test_placeholder_setting_is_validated(media_root: Path, tmp_path: Path, value: object) -> None:
    app = make_app(tmp_path, TESTING=False, IMAGEKIT_MEDIA_ROOT=str(media_root))
    app.config["IMAGEKIT_PLACEHOLDER"] = value
    with pytest.raises(ImproperlyConfigured, match="IMAGEKIT_PLACEHOLDER"):
        ImageKit(app)


def test_failure_timeout_is_validated(media_root: Path, tmp_path: Path) -> None:
    app = make_app(tmp_path, TESTING=False, IMAGEKIT_MEDIA_ROOT=str(media_root))
    app.config["IMAGEKIT_FAILURE_TIMEOUT"] = 0
    with pytest.raises(ImproperlyConfigured, match="IMAGEKIT_FAILURE_TIMEOUT"):
        ImageKit(app)


@pytest.mark.parametrize("prefix", ["my app:", "tab\t", "é:", "x" * 51, 5])
def test_a_state_key_prefix_every_cache_takes(
    media_root: Path, tmp_path: Path, prefix: object
) -> None:
    app = make_app(tmp_path, TESTING=False, IMAGEKIT_MEDIA_ROOT=str(media_root))
    app.config["IMAGEKIT_CACHE_PREFIX"] = prefix
    with pytest.raises(ImproperlyConfigured, match="IMAGEKIT_CACHE_PREFIX"):
        ImageKit(app)


@pytest.mark.parametrize("value", ["100x100", ["100by100"], [100], ["x"], 5])
def test_thumbnail_sizes_are_validated_at_init(app: Flask, value: object) -> None:
    app.config["IMAGEKIT_THUMBNAIL_SIZES"] = value
    with pytest.raises(ImproperlyConfigured, match="IMAGEKIT_THUMBNAIL_SIZES"):
        ImageKit(app)


# Good values, resolved ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "attribute", "expected"),
    [
        (
            "IMAGEKIT_MEDIA_URL",
            "https://cdn.example.com/m",
            "media_url",
            "https://cdn.example.com/m/",
        ),
        ("IMAGEKIT_CACHE_TIMEOUT", 0.5, "cache_timeout", 0.5),
        ("IMAGEKIT_MAX_SOURCE_PIXELS", None, "max_source_pixels", None),
        ("IMAGEKIT_MAX_DECODE_BYTES", None, "max_decode_bytes", None),
        ("IMAGEKIT_MAX_DECODE_BYTES", 1024, "max_decode_bytes", 1024),
        ("IMAGEKIT_MAX_OUTPUT_PIXELS", None, "max_output_pixels", None),
        ("IMAGEKIT_FAILURE_TIMEOUT", 1.5, "failure_timeout", 2),  # whole seconds, rounded up
        ("IMAGEKIT_DELETE_ORPHANED_CACHEFILES", True, "delete_orphaned_cachefiles", True),
        ("IMAGEKIT_SERVE_MEDIA", False, "serve_media", False),
        ("IMAGEKIT_PLACEHOLDER", "/static/missing.png", "placeholder", "/static/missing.png"),
        (
            "IMAGEKIT_THUMBNAIL_SIZES",
            ["100x100", "300x", "x50"],
            "thumbnail_sizes",
            frozenset({"100x100", "300x", "x50"}),
        ),
        (
            "IMAGEKIT_ALLOWED_SOURCE_FORMATS",
            ("png", "Gif"),
            "allowed_source_formats",
            ("PNG", "GIF"),
        ),
        ("IMAGEKIT_RESPONSIVE_WIDTHS", (800, 480, 800), "responsive_widths", (480, 800)),
        ("IMAGEKIT_RESPONSIVE_FORMATS", ["webp", "Png"], "responsive_formats", ("WEBP", "PNG")),
        ("IMAGEKIT_RESPONSIVE_FORMATS", [], "responsive_formats", ()),
    ],
)
def test_good_values_are_resolved(
    tmp_path: Path, key: str, value: t.Any, attribute: str, expected: t.Any
) -> None:
    app = make_app(tmp_path, **{key: value})
    ImageKit(app)
    assert getattr(state_of(app), attribute) == expected


def test_a_responsive_format_this_pillow_cannot_encode_is_left_out_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    Image.init()
    monkeypatch.delitem(Image.SAVE, "AVIF", raising=False)  # a Pillow built without libavif
    app = make_app(tmp_path, IMAGEKIT_RESPONSIVE_FORMATS=["AVIF", "WEBP"])
    with caplog.at_level(logging.WARNING, logger="flask_imagekit"):
        ImageKit(app)
    assert state_of(app).responsive_formats == ("WEBP",)
    assert any(
        "IMAGEKIT_RESPONSIVE_FORMATS" in record.getMessage() and "AVIF" in record.getMessage()
        for record in caplog.records
    )


def test_a_callable_placeholder_is_kept_as_is(tmp_path: Path) -> None:
    def placeholder(file: t.Any) -> str:
        return "/p.png"

    app = make_app(tmp_path, IMAGEKIT_PLACEHOLDER=placeholder)
    ImageKit(app)
    assert state_of(app).placeholder is placeholder


@pytest.mark.parametrize(
    ("debug", "testing", "value", "expected"),
    [
        (False, False, None, False),
        (True, False, None, True),
        (False, True, None, True),
        (True, True, False, False),
        (False, False, True, True),
    ],
)
def test_raise_errors_none_means_debug_or_testing(
    tmp_path: Path, debug: bool, testing: bool, value: bool | None, expected: bool
) -> None:
    app = make_app(tmp_path, TESTING=testing, IMAGEKIT_RAISE_ERRORS=value)
    app.debug = debug
    ImageKit(app)
    assert state_of(app).raise_errors is expected


def test_raise_errors_follows_debug_and_testing_unless_set(
    media_root: Path, tmp_path: Path
) -> None:
    for config, expected in [
        ({}, False),
        ({"TESTING": True}, True),
        ({"DEBUG": True}, True),
        ({"TESTING": True, "IMAGEKIT_RAISE_ERRORS": False}, False),
        ({"IMAGEKIT_RAISE_ERRORS": True}, True),
    ]:
        app = Flask("x", instance_path=str(tmp_path / "i"))
        app.config.update(IMAGEKIT_MEDIA_ROOT=str(media_root), **config)
        ImageKit(app)
        with app.app_context():
            file = ImageCacheFile(Fill(source="photos/missing.jpg"))
            if expected:
                with pytest.raises(MissingSource):
                    _ = file.url
            else:
                assert file.url.startswith("data:image/svg+xml")


# Settings that name a class or function -------------------------------------------------

#: What init_app resolves from settings that name a class or function.
RESOLVED = (
    "cachefile_backend",
    "cachefile_strategy",
    "cachefile_namer",
    "spec_cachefile_namer",
    "storage",
    "source_storage",
)


@pytest.mark.parametrize(
    ("key", "path", "check"),
    [
        pytest.param(
            "IMAGEKIT_DEFAULT_CACHEFILE_BACKEND",
            "flask_imagekit.cachefiles.backends.Simple",
            lambda state: isinstance(state.cachefile_backend, Simple),
            id="backend",
        ),
        pytest.param(
            "IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY",
            "flask_imagekit.cachefiles.strategies.Optimistic",
            lambda state: isinstance(state.cachefile_strategy, Optimistic),
            id="strategy",
        ),
        pytest.param(
            "IMAGEKIT_CACHEFILE_NAMER",
            "flask_imagekit.cachefiles.namers.source_name_dot_hash",
            lambda state: state.cachefile_namer is namers.source_name_dot_hash,
            id="namer",
        ),
        pytest.param(
            "IMAGEKIT_SPEC_CACHEFILE_NAMER",
            "flask_imagekit.cachefiles.namers.hash",
            lambda state: state.spec_cachefile_namer is namers.hash,
            id="spec-namer",
        ),
        pytest.param(
            "IMAGEKIT_DEFAULT_FILE_STORAGE",
            f"{__name__}.MemoryStorage",
            lambda state: (
                isinstance(state.storage, MemoryStorage) and state.source_storage is state.storage
            ),
            id="storage",
        ),
        pytest.param(
            "IMAGEKIT_SOURCE_STORAGE",
            f"{__name__}.MemoryStorage",
            lambda state: (
                isinstance(state.source_storage, MemoryStorage)
                and isinstance(state.storage, FileSystemStorage)
            ),
            id="source-storage",
        ),
    ],
)
def test_dotted_paths_are_resolved_once_at_init(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    key: str,
    path: str,
    check: t.Callable[[t.Any], bool],
) -> None:
    app = make_app(tmp_path, **{key: path})
    ImageKit(app)
    assert app.config[key] == path  # the setting itself is left as given
    with app.app_context():
        first = current_state()
        assert first is state_of(app)
        assert check(first)
        resolved = {name: getattr(first, name) for name in RESOLVED}
    # Whatever the dotted path names later, the app keeps what init_app resolved.
    monkeypatch.setattr(path, other_namer)
    with app.test_request_context():
        again = current_state()
        assert all(getattr(again, name) is value for name, value in resolved.items())


@pytest.mark.parametrize("form", ["object", "class", "string"])
def test_backend_setting_forms(app: Flask, source: str, form: str) -> None:
    obj = CustomBackend()
    value = {
        "object": obj,
        "class": CustomBackend,
        "string": f"{__name__}.CustomBackend",
    }[form]
    app.config["IMAGEKIT_DEFAULT_CACHEFILE_BACKEND"] = value
    ImageKit(app)
    with app.app_context():
        backend = current_state().cachefile_backend
        assert isinstance(backend, CustomBackend)
        if form == "object":
            assert backend is obj
        file = ImageCacheFile(Thumb(source=source))
        assert file.cachefile_backend is backend
        assert bool(file)


@pytest.mark.parametrize("form", ["object", "class", "string"])
def test_strategy_setting_forms(app: Flask, form: str) -> None:
    obj = Optimistic()
    value = {
        "object": obj,
        "class": Optimistic,
        "string": "flask_imagekit.cachefiles.strategies.Optimistic",
    }[form]
    app.config["IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY"] = value
    ImageKit(app)
    with app.app_context():
        strategy = current_state().cachefile_strategy
        assert isinstance(strategy, Optimistic)
        if form == "object":
            assert strategy is obj


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("IMAGEKIT_DEFAULT_CACHEFILE_BACKEND", "no.such.module.Backend"),
        ("IMAGEKIT_DEFAULT_CACHEFILE_BACKEND", "flask_imagekit.cachefiles.backends.Nope"),
        ("IMAGEKIT_DEFAULT_CACHEFILE_BACKEND", None),
        ("IMAGEKIT_DEFAULT_CACHEFILE_BACKEND", Exploding),
        ("IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY", "JustInTime"),
        ("IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY", "flask_imagekit.cachefiles.strategies.Nope"),
        ("IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY", None),
        ("IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY", Exploding),
        ("IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY", needs_an_argument),
        ("IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY", {"on_bogus": strategy_callback}),
        ("IMAGEKIT_CACHEFILE_NAMER", "no.such.namer"),
        ("IMAGEKIT_SPEC_CACHEFILE_NAMER", 42),
    ],
    ids=repr,
)
def test_bad_settings_fail_at_init(app: Flask, key: str, value: t.Any) -> None:
    app.config[key] = value
    with pytest.raises(ImproperlyConfigured, match=key):
        ImageKit(app)
    assert "imagekit" not in app.extensions


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("IMAGEKIT_DEFAULT_CACHEFILE_BACKEND", 42),
        ("IMAGEKIT_DEFAULT_CACHEFILE_BACKEND", "flask_imagekit.cachefiles.strategies.JustInTime"),
        ("IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY", 42),
        ("IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY", "flask_imagekit.cachefiles.strategies.CALLBACKS"),
    ],
    ids=repr,
)
def test_non_backend_and_non_strategy_values_fail_at_init(
    app: Flask, key: str, value: t.Any
) -> None:
    app.config[key] = value
    with pytest.raises(ImproperlyConfigured, match=key):
        ImageKit(app)


# Which cache holds the states --------------------------------------------------------


def _cache_variants(app: Flask, kind: str) -> tuple[t.Callable[[], t.Any], dict[str, t.Any]]:
    """Configure ``app`` for ``kind``; return (getter of the expected cache, init kwargs)."""
    if kind == "cachelib-object":
        cache = SimpleCache()
        app.config["IMAGEKIT_CACHE_BACKEND"] = cache
        return (lambda: cache), {}
    if kind == "dotted-path":
        app.config["IMAGEKIT_CACHE_BACKEND"] = "cachelib.SimpleCache"
        return (lambda: None), {}
    if kind == "config-dict":
        app.config["IMAGEKIT_CACHE_BACKEND"] = {
            "CACHE_TYPE": "SimpleCache",
            "CACHE_DEFAULT_TIMEOUT": 0,
        }
        return (lambda: None), {}
    flask_cache = Cache(config={"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 0})
    if kind == "flask-caching-before":
        flask_cache.init_app(app)
        app.config["IMAGEKIT_CACHE_BACKEND"] = flask_cache
        return (lambda: flask_cache.cache), {}
    if kind == "flask-caching-after":
        app.config["IMAGEKIT_CACHE_BACKEND"] = flask_cache
        return (lambda: flask_cache.cache), {"after": flask_cache}
    assert kind == "init-app-cache"
    flask_cache.init_app(app)
    return (lambda: flask_cache.cache), {"cache": flask_cache}


CACHE_KINDS = [
    "cachelib-object",
    "dotted-path",
    "config-dict",
    "flask-caching-before",
    "flask-caching-after",
    "init-app-cache",
]


# Debug mode only matters for IMAGEKIT_CACHE_BACKEND; whether a cache passed to
# init_app() counts as "explicit" in debug mode is left open by DESIGN.md §3.
@pytest.mark.parametrize(
    ("kind", "debug"),
    [(kind, False) for kind in CACHE_KINDS]
    + [(kind, True) for kind in CACHE_KINDS if kind != "init-app-cache"],
)
def test_cache_backend_setting_forms(
    app: Flask, source: str, monkeypatch: pytest.MonkeyPatch, kind: str, debug: bool
) -> None:
    app.debug = debug
    app.config["IMAGEKIT_DEFAULT_CACHEFILE_BACKEND"] = int_backend()
    expected, kwargs = _cache_variants(app, kind)
    after = kwargs.pop("after", None)
    ImageKit(app, **kwargs)
    if after is not None:
        after.init_app(app)
    with app.app_context():
        cache = current_state().state_cache
        assert not isinstance(cache, NullCache)  # explicit caches win over debug mode
        if expected() is not None:
            assert cache is expected()
        file = ImageCacheFile(Thumb(source=source))
        file.generate()
        assert cache.get(file.cachefile_backend.get_key(file)) is not None
        calls = count_calls(monkeypatch, current_state().storage, "exists", "open")
        fresh = ImageCacheFile(Thumb(source=source))
        assert bool(fresh) is True
        assert fresh.width == 100
        assert calls == {}


def test_state_cache_default_is_a_simple_cache(ctx: Flask) -> None:
    assert isinstance(current_state().state_cache, SimpleCache)


def test_debug_mode_uses_a_null_cache_and_always_asks_the_storage(
    app: Flask, media_root: Path, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.debug = True
    ImageKit(app)
    with app.app_context():
        assert isinstance(current_state().state_cache, NullCache)
        file = ImageCacheFile(Thumb(source=source))
        assert file.url.endswith(file.name)
        calls = count_calls(monkeypatch, current_state().storage, "exists")
        counts = []
        for _ in range(3):
            assert bool(ImageCacheFile(Thumb(source=source))) is True
            counts.append(calls["exists"])
        assert counts[0] >= 1
        assert counts[1] > counts[0]
        assert counts[2] > counts[1]
        # A file deleted behind its back is noticed at once (and regenerated).
        (media_root / file.name).unlink()
        assert bool(ImageCacheFile(Thumb(source=source))) is True
        assert (media_root / file.name).is_file()


def test_the_setting_wins_over_the_cache_given_to_init_app(tmp_path: Path) -> None:
    explicit = SimpleCache()
    app = make_app(tmp_path, CACHE_TYPE="SimpleCache", IMAGEKIT_CACHE_BACKEND=explicit)
    flask_cache = Cache(app)
    ImageKit(app, cache=flask_cache)
    assert state_of(app).state_cache is explicit


def test_the_cache_given_to_the_constructor_serves_a_later_init_app(tmp_path: Path) -> None:
    app = make_app(tmp_path, CACHE_TYPE="SimpleCache")
    flask_cache = Cache(app)
    imagekit = ImageKit(cache=flask_cache)
    imagekit.init_app(app)
    assert state_of(app).state_cache is flask_cache.cache


def test_a_cache_given_to_init_app_is_used_in_debug_mode_too(tmp_path: Path) -> None:
    # Not NullCache: a cache handed over in code is the user's explicit choice.
    app = make_app(tmp_path, CACHE_TYPE="SimpleCache")
    app.debug = True
    flask_cache = Cache(app)
    ImageKit(app, cache=flask_cache)
    assert state_of(app).state_cache is flask_cache.cache


def test_cache_not_initialised_on_the_app_is_reported(app: Flask, source: str) -> None:
    flask_cache = Cache(config={"CACHE_TYPE": "SimpleCache"})
    app.config["IMAGEKIT_CACHE_BACKEND"] = flask_cache

    def start_and_serve() -> None:
        ImageKit(app)
        with app.app_context():
            _ = ImageCacheFile(Thumb(source=source)).url

    # Reported at init_app (best) or at the first use, never as a bare KeyError.
    with pytest.raises(ImproperlyConfigured, match="init_app"):
        start_and_serve()


@pytest.mark.parametrize("testing", [True, False], ids=["debug", "production"])
def test_an_uninitialised_cache_given_to_init_app_fails_clearly_on_first_use(
    tmp_path: Path, source: str, media_root: Path, testing: bool
) -> None:
    app = make_app(tmp_path, TESTING=testing, IMAGEKIT_MEDIA_ROOT=str(media_root))
    ImageKit(app, cache=Cache())  # cache.init_app(app) forgotten
    assert STATE_KEY in app.extensions  # starting is fine: the order of init_app is free
    with app.app_context():
        # A programming error: raised in production too, never a placeholder.
        with pytest.raises(ImproperlyConfigured, match=r"cache\.init_app\(app\)"):
            _ = current_state().state_cache
        with pytest.raises(ImproperlyConfigured, match=r"cache\.init_app\(app\)"):
            _ = ImageCacheFile(Thumb(source=source)).url


def test_cache_config_dict_with_unknown_type_fails_clearly(app: Flask) -> None:
    app.config["IMAGEKIT_CACHE_BACKEND"] = {"CACHE_TYPE": "NoSuchCache"}
    with pytest.raises(ImproperlyConfigured, match="IMAGEKIT_CACHE_BACKEND"):
        ImageKit(app)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [(None, 0.0), (0, 0.0), (5, 5.0), (2.5, 2.5)],
)
def test_local_state_timeout_setting_reaches_the_state_cache(
    tmp_path: Path, setting: float | None, expected: float
) -> None:
    app = make_app(tmp_path, IMAGEKIT_LOCAL_STATE_TIMEOUT=setting)
    ImageKit(app)
    assert state_of(app).states.local_timeout == expected  # None: off for SimpleCache


def test_local_state_timeout_is_on_by_default_for_a_cache_outside_the_process(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path, IMAGEKIT_CACHE_BACKEND=FileSystemCache(str(tmp_path / "states")))
    ImageKit(app)
    assert state_of(app).states.local_timeout == 60.0


# Finding the state --------------------------------------------------------------------


def test_current_state_is_the_apps_state_in_any_context(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    ImageKit(app)
    with app.app_context():
        assert current_state() is state_of(app)
        assert current_state_or_none() is state_of(app)
    with app.test_request_context():
        assert current_state() is state_of(app)


def test_current_state_outside_an_app_context_explains_itself() -> None:
    assert current_state_or_none() is None
    with pytest.raises(ImproperlyConfigured, match="application context"):
        current_state()


def test_current_state_of_an_app_without_imagekit_explains_itself(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    with app.app_context():
        assert current_state_or_none() is None
        with pytest.raises(ImproperlyConfigured, match=r"ImageKit\(app\)"):
            current_state()


def test_two_apps_resolve_their_own_settings(tmp_path: Path) -> None:
    one = make_app(tmp_path, "one", IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=Optimistic)
    two = make_app(tmp_path, "two", IMAGEKIT_CACHE_PREFIX="two:")
    ImageKit(one)
    ImageKit(two)
    with one.app_context():
        assert isinstance(current_state().cachefile_strategy, Optimistic)
        assert current_state().cache_prefix == "imagekit:"
    with two.app_context():
        assert isinstance(current_state().cachefile_strategy, JustInTime)
        assert current_state().cache_prefix == "two:"


def test_responsive_formats_are_those_browsers_show(tmp_path: Path) -> None:
    app = make_app(tmp_path, IMAGEKIT_RESPONSIVE_FORMATS=["AVIF", "TIFF"])
    with pytest.raises(ImproperlyConfigured, match="IMAGEKIT_RESPONSIVE_FORMATS") as info:
        ImageKit(app)
    message = str(info.value)
    assert "TIFF" in message
    assert "AVIF, WEBP, JPEG, PNG, GIF" in message
    for fmt in ("avif", "WEBP", "jpeg", "PNG", "gif"):
        app = make_app(tmp_path, IMAGEKIT_RESPONSIVE_FORMATS=[fmt])
        ImageKit(app)
        assert state_of(app).responsive_formats in ((fmt.upper(),), ())
