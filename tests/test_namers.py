"""Tests for flask_imagekit.cachefiles.namers: the three layouts, hostile and long names, the memo.

The namers are called on small stand-in generators (a source name, a format and a
hash), so each test pins one rule; ``tests/test_names.py`` runs hostile names
through the whole pipeline and ``tests/test_cachefiles.py`` the namers' settings.
"""

from __future__ import annotations

import re
import typing as t
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from flask import Flask

from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.cachefiles import namers
from flask_imagekit.processors import ResizeToFill
from flask_imagekit.storage import (
    MAX_COMPONENT_BYTES,
    MAX_NAME_BYTES,
    MAX_NAME_COMPONENTS,
    clean_name,
    is_temporary_name,
)

DIGEST = "0123456789abcdef0123456789abcdef"
NAMERS = [namers.hash, namers.source_name_as_path, namers.source_name_dot_hash]
# Unicode category Cc (C0, DEL, C1) and lone surrogates.
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
DEVICE = re.compile(r"^(CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|COM.|LPT.)$", re.IGNORECASE)

HOSTILE_NAMES = [
    "../../etc/passwd",
    "photos/../../../x.jpg",
    "/etc/passwd",
    "//server/share/x.jpg",
    "C:\\Windows\\win.ini",
    "C:x.jpg",
    "..\\..\\x.jpg",
    "a\\b\\c.jpg",
    "nul\x00byte.jpg",
    "a\x85b/c\x9b.jpg",
    "\udcff.jpg",
    "photos/caf\udce9.jpg",
    "line\nbreak\r.jpg",
    "CON.jpg",
    "photos/nul.tar.gz",
    "lpt\u00b9 .png",
    "com9/aux/x.jpg",
    ".tmp-abc.jpg",
    "photos/.tmp-x",
    "~/x.jpg",
    "file:/etc/passwd",
    "s3://bucket/x.jpg",
    ".",
    "..",
    "/",
    "a//b///c.jpg",
    "x.jp\x00g",
    "x." + "e" * 40,
    "\u202egpj.exe\u202c.jpg",
]


def generator(
    source_name: str | None,
    format: str | None = "JPEG",
    digest: str = DIGEST,
) -> SimpleNamespace:
    """A stand-in generator: all a namer reads."""
    return SimpleNamespace(
        source=SimpleNamespace(name=source_name), format=format, get_hash=lambda: digest
    )


def unique_digest() -> str:
    """A hash no other test has used, so the namers' memo cannot answer from before."""
    return uuid.uuid4().hex


def assert_safe(name: str, cache_dir: str = "CACHE/images") -> None:
    assert name.startswith(cache_dir + "/"), name
    assert clean_name(name) == name  # every storage accepts it unchanged
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
    parts = name.split("/")
    assert len(parts) <= MAX_NAME_COMPONENTS
    for part in parts:
        assert part not in ("", ".", ".."), name
        assert not UNSAFE.search(part), name
        assert len(part.encode("utf-8")) <= MAX_COMPONENT_BYTES, name
        assert not DEVICE.match(part.split(".", 1)[0].rstrip(" ")), name
    assert not is_temporary_name(name), name


class Thumb(ImageSpec):
    processors = [ResizeToFill(100, 50)]
    format = "JPEG"


# Layouts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source_name", "format", "as_path", "dot_hash", "flat"),
    [
        (
            "photos/bulldog.jpg",
            "JPEG",
            f"photos/bulldog/{DIGEST}.jpg",
            f"photos/bulldog.{DIGEST[:12]}.jpg",
            f"{DIGEST}.jpg",
        ),
        (
            "photos/bulldog.jpeg",
            "JPEG",
            f"photos/bulldog/{DIGEST}.jpeg",
            f"photos/bulldog.{DIGEST[:12]}.jpeg",
            f"{DIGEST}.jpg",
        ),
        (
            "photos/bulldog.jpg",
            "PNG",
            f"photos/bulldog/{DIGEST}.png",
            f"photos/bulldog.{DIGEST[:12]}.png",
            f"{DIGEST}.png",
        ),
        ("bulldog", "WEBP", f"bulldog/{DIGEST}.webp", f"bulldog.{DIGEST[:12]}.webp", None),
        ("a/b/c/d.gif", None, f"a/b/c/d/{DIGEST}.gif", f"a/b/c/d.{DIGEST[:12]}.gif", None),
        ("page.html", None, f"page/{DIGEST}.png", f"page.{DIGEST[:12]}.png", f"{DIGEST}.png"),
        ("x.jpg", "NOT-A-FORMAT", f"x/{DIGEST}", f"x.{DIGEST[:12]}", DIGEST),
    ],
)
def test_django_imagekit_layouts(
    source_name: str, format: str | None, as_path: str, dot_hash: str, flat: str | None
) -> None:
    gen = generator(source_name, format)
    assert namers.source_name_as_path(gen) == f"CACHE/images/{as_path}"
    assert namers.source_name_dot_hash(gen) == f"CACHE/images/{dot_hash}"
    if flat is not None:
        assert namers.hash(gen) == f"CACHE/images/{flat}"


def test_a_spec_is_named_by_its_hash_and_source(ctx: Flask) -> None:
    spec = Thumb(source="photos/bulldog.jpg")
    digest = spec.get_hash()
    assert namers.source_name_as_path(spec) == f"CACHE/images/photos/bulldog/{digest}.jpg"
    assert namers.source_name_dot_hash(spec) == f"CACHE/images/photos/bulldog.{digest[:12]}.jpg"
    assert namers.hash(spec) == f"CACHE/images/{digest}.jpg"


def test_output_format_method_wins_over_the_format_attribute() -> None:
    gen = generator("photos/a.jpg", "JPEG")
    gen.output_format = lambda: "PNG"
    assert namers.source_name_as_path(gen) == f"CACHE/images/photos/a/{DIGEST}.png"
    assert namers.hash(gen) == f"CACHE/images/{DIGEST}.png"


@pytest.mark.parametrize("namer", NAMERS, ids=lambda n: n.__name__)
def test_a_generator_without_a_source_gets_a_flat_name(namer: t.Any) -> None:
    gen = SimpleNamespace(format="PNG", get_hash=lambda: DIGEST)
    name = namer(gen)
    assert name.endswith(f"{DIGEST}.png") or name.endswith(f"{DIGEST[:12]}.png")
    assert_safe(name)


def test_absolute_source_names_lose_their_directories() -> None:
    gen = generator("/srv/photos/bulldog.jpg")
    assert namers.source_name_as_path(gen) == f"CACHE/images/{DIGEST}.jpg"
    assert namers.source_name_dot_hash(gen) == f"CACHE/images/bulldog.{DIGEST[:12]}.jpg"


# Hostile names ------------------------------------------------------------------------------


@pytest.mark.parametrize("namer", NAMERS, ids=lambda n: n.__name__)
@pytest.mark.parametrize("hostile", HOSTILE_NAMES, ids=repr)
@pytest.mark.parametrize("format", ["JPEG", None])
def test_hostile_names_stay_inside_the_cache_dir(
    namer: t.Any, hostile: str, format: str | None
) -> None:
    assert_safe(namer(generator(hostile, format)))


@pytest.mark.parametrize("namer", NAMERS, ids=lambda n: n.__name__)
def test_hostile_names_stay_inside_a_custom_cache_dir(app: Flask, namer: t.Any) -> None:
    app.config["IMAGEKIT_CACHEFILE_DIR"] = "media/generated"
    ImageKit(app)
    with app.app_context():
        for hostile in HOSTILE_NAMES:
            assert_safe(namer(generator(hostile)), "media/generated")


@pytest.mark.parametrize("device", ["CON", "nul", "Aux.jpg", "com1.tar.gz", "LPT9 .png"])
def test_windows_device_names_get_a_leading_underscore(device: str) -> None:
    name = namers.source_name_dot_hash(generator(f"{device}/{device}"))
    directory, file = name.split("/")[2:]
    assert directory == f"_{device}"
    assert file.startswith(f"_{device.split('.')[0]}")


@pytest.mark.parametrize("stem", ["", ".", "..", ".tmp-x", ".tmp-"])
def test_dot_hash_never_makes_a_temporary_or_dot_name(stem: str) -> None:
    name = namers.source_name_dot_hash(generator(f"photos/{stem}"))
    assert_safe(name)
    assert name.split("/")[-1].startswith("_")


def test_control_characters_become_underscores() -> None:
    name = namers.source_name_as_path(generator("a\x00b/c\x85d\udcffe.jpg"))
    assert name == f"CACHE/images/a_b/c_d_e/{DIGEST}.jpg"


# Long names ---------------------------------------------------------------------------------


@pytest.mark.parametrize("namer", NAMERS[1:], ids=lambda n: n.__name__)
@pytest.mark.parametrize(
    "source_name",
    [
        "x" * 300 + ".jpg",
        "d/" + "\u6f22" * 200 + "/x.jpg",  # 3-byte characters, cut mid-character
        "\U0001f600" * 100 + ".jpg",
        "/".join(["d"] * 60) + "/x.jpg",
        "/".join(["\u6f22" * 80] * 12) + "/x.jpg",
    ],
    ids=["long-file", "long-dir", "emoji", "deep", "wide-and-deep"],
)
def test_long_names_fit_the_storage_limits(namer: t.Any, source_name: str) -> None:
    name = namer(generator(source_name))
    assert_safe(name)
    assert name.endswith(".jpg")
    assert DIGEST[:12] in name


def test_deepest_directories_are_dropped_first() -> None:
    dirs = [f"d{i:02}" for i in range(60)]
    name = namers.source_name_as_path(generator("/".join(dirs) + "/x.jpg"))
    parts = name.split("/")
    assert len(parts) == MAX_NAME_COMPONENTS
    assert parts[2:-1] == dirs[: MAX_NAME_COMPONENTS - 3]


def test_long_names_that_share_a_start_get_distinct_files(ctx: Flask) -> None:
    a = Thumb(source="x" * 300 + "a.jpg")
    b = Thumb(source="x" * 300 + "b.jpg")
    for namer in NAMERS:
        assert namer(a) != namer(b)


# The memo -----------------------------------------------------------------------------------


@pytest.mark.parametrize("namer", NAMERS, ids=lambda n: n.__name__)
def test_memo_follows_the_cache_dir_of_the_current_app(tmp_path: Path, namer: t.Any) -> None:
    apps = []
    for cache_dir in ("CACHE/images", "thumbs", "other/dir"):
        app = Flask(f"app-{cache_dir}", instance_path=str(tmp_path / cache_dir))
        app.config.update(IMAGEKIT_MEDIA_ROOT=str(tmp_path / "media"))
        app.config["IMAGEKIT_CACHEFILE_DIR"] = cache_dir
        ImageKit(app)
        apps.append((app, cache_dir))
    gen = generator("photos/a.jpg", digest=unique_digest())
    for _ in range(2):  # the second round is answered from the memo
        for app, cache_dir in apps:
            with app.app_context():
                assert namer(gen).startswith(f"{cache_dir}/")
        assert namer(gen).startswith("CACHE/images/")  # no app: the default


@pytest.mark.parametrize("namer", NAMERS, ids=lambda n: n.__name__)
def test_memo_follows_hash_source_name_and_format(namer: t.Any) -> None:
    digest = unique_digest()
    first = namer(generator("photos/a.jpg", "JPEG", digest))
    assert namer(generator("photos/a.jpg", "JPEG", digest)) == first
    assert namer(generator("photos/a.jpg", "PNG", digest)) != first
    assert namer(generator("photos/a.jpg", "JPEG", unique_digest())) != first
    if namer is not namers.hash:
        assert namer(generator("photos/b.jpg", "JPEG", digest)) != first


def test_memo_answers_repeated_questions(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = namers.sanitize_extension

    def counting(ext: str) -> str:
        calls.append(ext)
        return real(ext)

    monkeypatch.setattr(namers, "sanitize_extension", counting)
    gen = generator("photos/a.jpg", digest=unique_digest())
    names = {namer(gen) for namer in NAMERS for _ in range(5)}
    assert len(names) == 3
    assert len(calls) == 3
