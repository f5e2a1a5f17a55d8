"""Hostile source names through the whole pipeline, and traversal through the media route.

A spec bound to ``SourceFile(hostile_name, file=BytesIO(valid_jpeg))`` is generated
and asked for its ``url`` and ``path`` with each of the three namers; then the same
name is used without a file, so that the source is read from the source storage.
Whatever happens, nothing is read or written outside the media root (every file
system call is watched with an audit hook, and the parent directory of the media
root, which holds a valid "secret" JPEG, is compared before and after), no path
component is longer than 255 bytes, and every failure is an ``ImageKitError``.
``tests/test_cachefiles.py`` checks the namers alone on a shorter list.

The media route must answer 404 to every encoding of a traversal: ``..`` and the
separator encoded once, twice, as overlong UTF-8, fullwidth, with backslashes,
NUL, ``;`` and mixed case, at several depths.
"""

from __future__ import annotations

import io
import itertools
import os
import sys
import typing as t
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest
from flask import Flask

from flask_imagekit import ImageSpec
from flask_imagekit.cachefiles import ImageCacheFile, namers
from flask_imagekit.exceptions import ImageKitError
from flask_imagekit.processors import ResizeToFill
from flask_imagekit.sources import SourceFile
from fuzz.pipeline import check_output

from .conftest import encode, photo

VALID_JPEG = encode(photo((64, 48)))
SECRET = b"TOP-SECRET-CONTENT"

# Hostile names ------------------------------------------------------------------------------

_DOTS = ["..", "%2e%2e", "%2E%2e", "..%00", "%252e%252e", "\uff0e\uff0e", "\u2025", ".\u200b."]
_SEPS = ["/", "\\", "%2f", "%5C", "%252f", "\u2215", "\uff0f", ";/"]
TRAVERSALS = [dots + sep + "secret.jpg" for dots, sep in itertools.product(_DOTS, _SEPS)] + [
    "../secret.jpg",
    "../../secret.jpg",
    "../" * 12 + "etc/passwd",
    "photos/../../secret.jpg",
    "./../secret.jpg",
    "....//....//secret.jpg",
    ".../secret.jpg",
    "..\\..\\secret.jpg",
    "photos\\..\\..\\secret.jpg",
    "..%2f..%2fsecret.jpg",
    "%2e%2e%2f%2e%2e%2fsecret.jpg",
    "..%c0%afsecret.jpg",
    "%c0%ae%c0%ae/secret.jpg",
    "..;/secret.jpg",
    "media/../../secret.jpg",
]
ABSOLUTE = [
    "/etc/passwd",
    "//etc/passwd",
    "///etc/passwd.jpg",
    "\\etc\\passwd",
    "C:\\Windows\\win.ini",
    "C:secret.jpg",
    "c:/secret.jpg",
    "\\\\?\\C:\\secret.jpg",
    "\\\\server\\share\\secret.jpg",
    "file:///etc/passwd",
    "http://evil.example/x.jpg",
    "//evil.example/x.jpg",
    "~/secret.jpg",
    "~root/.ssh/id_rsa",
    "$HOME/secret.jpg",
]
CONTROL = [
    "a\x00b.jpg",
    "x.jpg\x00.png",
    "\x00",
    "\x00../secret.jpg",
    "line\nbreak.jpg",
    "cr\r.jpg",
    "esc\x1b[31m.jpg",
    "del\x7f.jpg",
    "c1\x85.jpg",
    "x.jpg%00.png",
    "tab\t/x.jpg",
]
DEVICES = [
    "CON",
    "con.jpg",
    "CON .jpg",
    "nul.tar.gz",
    "aux/x.jpg",
    "photos/PRN.jpg",
    "COM1.jpg",
    "lpt9/x.jpg",
    "CONIN$.jpg",
    "conout$",
    "COM\u00b9.jpg",
    "LPT\u00b3/x.jpg",
    "x.jpg:stream",
    "trailing.dot.",
    "trailing space ",
]
LONG = [
    "x" * 996 + ".jpg",
    "p/" + "\u00e9" * 500 + ".jpg",
    "d/" + "\u6f22" * 200 + "/x.jpg",
    "\U0001f600" * 250 + ".jpg",
    "a/" * 300 + "x.jpg",
    ("b" * 254 + "/") * 8 + "x.jpg",
    "x." + "j" * 998,
    "x" * 255 + ".jpg",
    "\u00e9" * 127 + "a.jpg",  # 259 bytes: cut inside a 2-byte character
]
UNICODE = [
    "\u05e9\u05dc\u05d5\u05dd/\u202egpj.exe\u202c.jpg",
    "\u202e../secret.jpg",
    "e\u0301\u0301\u0301/a\u0308\u20dd.jpg",
    "\u0301" * 300 + ".jpg",
    unicodedata.normalize("NFD", "caf\u00e9/\u00e9t\u00e9.jpg"),
    "\ufeffbom.jpg",
    "a\u2028b\u2029c.jpg",
    "zero\u200bwidth\u200d.jpg",
    "\u3164.jpg",
    "mixed-\u0430\u0440\u0440\u04cf\u0435/\u65e5\u672c/\u0627\u0644\u0639\u0631\u0628\u064a\u0629.jpg",
    "\udcff.jpg",
    "photos/caf\udce9.jpg",
]
ODD = [
    "",
    ".",
    "..",
    "...",
    " ",
    "/",
    "*.jpg",
    "[a-z]?.jpg",
    "x.jpg;.png",
    "x.jpg#frag",
    "x.jpg?q=1",
    "100%.jpg",
    "%.jpg",
    "a//b///c.jpg",
    ".hidden/.x.jpg",
    ".tmp-abc-x.jpg",
]
HOSTILE = list(dict.fromkeys(TRAVERSALS + ABSOLUTE + CONTROL + DEVICES + LONG + UNICODE + ODD))


def _id(name: str) -> str:
    shown = ascii(name)
    return shown if len(shown) <= 40 else f"{shown[:32]}...({len(name)})"


# Watching the file system -----------------------------------------------------------------

_EVENTS = {
    "open",
    "os.listdir",
    "os.scandir",
    "os.mkdir",
    "os.rename",
    "os.remove",
    "os.rmdir",
    "os.link",
    "os.symlink",
    "os.chmod",
    "os.truncate",
    "shutil.rmtree",
}
_watch: list[tuple[str, str]] | None = None


def _audit(event: str, args: tuple[t.Any, ...]) -> None:
    if _watch is None or event not in _EVENTS:
        return
    for arg in args[:2] if event in ("os.rename", "os.link", "os.symlink") else args[:1]:
        if isinstance(arg, str | bytes | os.PathLike):
            try:
                _watch.append((event, os.path.abspath(os.fsdecode(arg))))
            except (TypeError, ValueError):
                _watch.append((event, repr(arg)))


sys.addaudithook(_audit)


class Watch:
    """Record every file system call of the block; tell those outside ``allowed``."""

    def __init__(self, allowed: Path, guarded: t.Sequence[Path]) -> None:
        self.allowed = os.path.realpath(allowed)
        self.guarded = [os.path.realpath(p) for p in guarded]
        self.calls: list[tuple[str, str]] = []

    def __enter__(self) -> Watch:
        global _watch
        _watch = self.calls
        return self

    def __exit__(self, *exc: object) -> None:
        global _watch
        _watch = None

    def outside(self) -> list[tuple[str, str]]:
        bad = []
        for event, path in self.calls:
            real = os.path.realpath(path)
            inside = real == self.allowed or real.startswith(self.allowed + os.sep)
            if inside:
                continue
            if any(real == g or real.startswith(g + os.sep) for g in self.guarded):
                bad.append((event, path))
            elif real.startswith(("/etc", "/root", "/home", "/proc/self/environ")):
                bad.append((event, path))
        return bad


def snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` (except under ``skip``) with its size and mtime."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == skip:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if Path(path) != skip:
                st = os.lstat(path)
                found[path] = (st.st_size, st.st_mtime_ns)
    return found


# The pipeline ---------------------------------------------------------------------------------


class Small(ImageSpec):
    processors = [ResizeToFill(20, 10)]
    format = "JPEG"


NAMERS = {
    "source_name_as_path": namers.source_name_as_path,
    "source_name_dot_hash": namers.source_name_dot_hash,
    "hash": namers.hash,
}


def spec_class(namer: str) -> type[ImageSpec]:
    return type(f"Small_{namer}", (Small,), {"cachefile_namer": NAMERS[namer]})


@pytest.fixture
def world(ctx: Flask, media_root: Path, tmp_path: Path) -> Flask:
    """Valid JPEGs outside the media root, where a traversal would find them."""
    for target in ["secret.jpg", "etc/passwd", "media2/secret.jpg", "Windows/win.ini"]:
        path = tmp_path / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(VALID_JPEG)
    (media_root / "photos").mkdir()
    return ctx


def components_fit(name: str) -> bool:
    return all(len(os.fsencode(part)) <= 255 for part in name.split("/"))


def run_pipeline(file: ImageCacheFile, media_root: Path) -> str | None:
    """Generate, then ask for url and path; return the cache file name (None if refused)."""
    try:
        name = file.name
        file.generate()
        url = file.url
        path = file.path
    except ImageKitError:
        return None
    assert components_fit(name), name
    assert unquote(url) == "/media/" + name
    real = os.path.realpath(path)
    root = os.path.realpath(media_root)
    assert real.startswith(root + os.sep), (path, root)
    assert all(len(os.fsencode(part)) <= 255 for part in Path(real).relative_to(root).parts)
    assert Path(real).relative_to(root).parts[:2] == ("CACHE", "images")
    assert check_output(Path(real).read_bytes(), "JPEG", (20, 10)) == []
    return name


@pytest.mark.parametrize("namer", list(NAMERS))
@pytest.mark.parametrize("hostile", HOSTILE, ids=_id)
def test_hostile_name_with_an_uploaded_file_stays_inside_the_media_root(
    world: Flask, media_root: Path, tmp_path: Path, hostile: str, namer: str
) -> None:
    before = snapshot(tmp_path, media_root)
    file = ImageCacheFile(
        spec_class(namer)(source=SourceFile(hostile, file=io.BytesIO(VALID_JPEG)))
    )
    with Watch(media_root, [tmp_path]) as watch:
        name = run_pipeline(file, media_root)
    assert watch.outside() == []
    assert snapshot(tmp_path, media_root) == before
    assert name is not None, "a valid image under any name must be generated"
    # The URL is served back by the media route, byte for byte.
    response = world.test_client().get(file.url)
    assert response.status_code == 200, file.url
    assert response.data == (media_root / name).read_bytes()
    response.close()


@pytest.mark.parametrize("hostile", HOSTILE, ids=_id)
def test_hostile_name_read_from_the_source_storage_is_refused(
    world: Flask, media_root: Path, tmp_path: Path, hostile: str
) -> None:
    before = snapshot(tmp_path, media_root)
    file = ImageCacheFile(spec_class("source_name_as_path")(source=SourceFile(hostile)))
    with Watch(media_root, [tmp_path]) as watch:
        try:
            file.generate()
        except ImageKitError:
            pass
        else:
            pytest.fail(f"{hostile!r} was read from somewhere: nothing by that name is stored")
    assert watch.outside() == []
    assert snapshot(tmp_path, media_root) == before
    assert [p for p in media_root.rglob("*") if p.is_file()] == []


def test_absolute_path_of_a_file_outside_as_a_name_is_refused(
    world: Flask, media_root: Path, tmp_path: Path
) -> None:
    secret = str(tmp_path / "secret.jpg")
    for name in [secret, secret.replace("/", "\\"), "/" + secret, "file://" + secret]:
        file = ImageCacheFile(Small(source=SourceFile(name)))
        with Watch(media_root, [tmp_path]) as watch, pytest.raises(ImageKitError):
            file.generate()
        assert watch.outside() == [], name


def test_the_watch_sees_reads_outside(world: Flask, media_root: Path, tmp_path: Path) -> None:
    with Watch(media_root, [tmp_path]) as watch:
        (tmp_path / "secret.jpg").read_bytes()
        (media_root / "photos").exists()
    assert [event for event, _ in watch.outside()] == ["open"]


WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{port}{n}" for port in ("COM", "LPT") for n in [*"0123456789", "\u00b9", "\u00b2", "\u00b3"]
}


@pytest.mark.parametrize("namer", list(NAMERS))
def test_namers_leave_no_windows_device_name(world: Flask, namer: str) -> None:
    for hostile in [*DEVICES, "COM\u00b2/x.jpg", "lpt\u00b9.png", "photos/Com\u00b3.jpg"]:
        file = ImageCacheFile(spec_class(namer)(source=SourceFile(hostile, file=io.BytesIO())))
        for part in file.name.split("/"):
            assert part.split(".", 1)[0].rstrip(" ").upper() not in WINDOWS_DEVICES, (
                hostile,
                file.name,
            )


def test_distinct_hostile_names_get_distinct_files(world: Flask) -> None:
    # Stored sources are told apart by name (uploads by their bytes, see
    # tests/test_sources.py).
    names: dict[str, str] = {}
    for hostile in HOSTILE:
        file = ImageCacheFile(Small(source=SourceFile(hostile)))
        try:
            name = file.name
        except ImageKitError:
            continue
        assert names.setdefault(name, hostile) == hostile, (name, hostile, names[name])


# The media route -------------------------------------------------------------------------------

ROUTE_DOTS = [
    "..",
    "%2e%2e",
    "%2E%2E",
    "%2e%2E",
    ".%2e",
    "%2e.",
    "%252e%252e",
    "%c0%ae%c0%ae",
    "%e0%80%ae%e0%80%ae",
    "%c0%2e%c0%2e",
    "%uff0e%uff0e",
    "%ef%bc%8e%ef%bc%8e",
    "..%00",
    "..%20",
    "..;",
    "..%3b",
]
ROUTE_SEPS = [
    "/",
    "%2f",
    "%2F",
    "%252f",
    "%c0%af",
    "%e0%80%af",
    "%c1%9c",
    "\\",
    "%5c",
    "%5C",
    "%255c",
    "%ef%bc%8f",
    "/./",
    "//",
    "%00/",
    ";/",
]
ROUTE_BASES = [("/media/", 1), ("/media/photos/", 2), ("/media/CACHE/images/", 3)]
ROUTE_TARGETS = ["secret.txt", "media2/secret.txt", "etc/passwd"]


def traversal_paths() -> list[str]:
    paths = []
    for base, depth in ROUTE_BASES:
        for dots, sep in itertools.product(ROUTE_DOTS, ROUTE_SEPS):
            for target in ROUTE_TARGETS:
                paths.append(base + (dots + sep) * depth + target)
    paths += [
        "/media/%2fetc%2fpasswd",
        "/media/%5cetc%5cpasswd",
        "/media/C:%5csecret.txt",
        "/media/c:/secret.txt",
        "/media/file:%2f%2f%2fetc%2fpasswd",
        "/media/photos/a.txt%00.jpg",
        "/media/photos/a.txt%00",
        "/media/%00",
        "/media/photos%00/a.txt",
        "/media/photos/a.txt;.jpg",
        "/media/PHOTOS/../../secret.txt",
        "/media/" + "..%2f" * 40 + "etc/passwd",
        "/media/" + "%2e%2e/" * 40 + "etc/passwd",
        "/media/" + "x/" * 200 + "../" * 201 + "secret.txt",
        "/media/" + "a" * 300 + "/x",
    ]
    return paths


@pytest.fixture
def served(app: Flask, imagekit: t.Any, media_root: Path, tmp_path: Path) -> Flask:
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_bytes(SECRET)
    (tmp_path / "media2").mkdir()
    (tmp_path / "media2" / "secret.txt").write_bytes(SECRET)
    (media_root / "photos").mkdir()
    (media_root / "photos" / "a.txt").write_bytes(b"public")
    (media_root / "CACHE" / "images").mkdir(parents=True)
    return app


def fetch(app: Flask, path: str, raw: bool = False) -> tuple[int, bytes]:
    client = app.test_client()
    if raw:
        # WSGI carries the path as bytes decoded as latin-1.
        wsgi_path = path.encode("utf-8").decode("latin-1")
        response = client.get("/", environ_overrides={"PATH_INFO": wsgi_path})
    else:
        response = client.get(path)
    hops = 0
    while response.status_code in (301, 308) and hops < 3:
        location = response.headers["Location"]
        assert location.startswith(("http://localhost/media/", "/media/")), location
        response.close()
        response = client.get(location)
        hops += 1
    data = response.get_data()
    response.close()
    return response.status_code, data


def test_media_route_serves_the_public_files(served: Flask) -> None:
    assert fetch(served, "/media/photos/a.txt") == (200, b"public")


def test_media_route_answers_404_to_every_traversal_encoding(served: Flask) -> None:
    paths = traversal_paths()
    assert len(paths) > 2000
    wrong = {}
    for path in paths:
        status, data = fetch(served, path)
        assert SECRET not in data, path
        if status != 404:
            wrong[path] = status
    assert wrong == {}


@pytest.mark.parametrize(
    "path",
    [
        "/media/../secret.txt",
        "/media/photos/../../secret.txt",
        "/media/..\\secret.txt",
        "/media/photos/..\\..\\secret.txt",
        "/media/\x00",
        "/media/photos/a.txt\x00.jpg",
        "/media/\uff0e\uff0e/secret.txt",
        "/media/\u2025/secret.txt",
        "/media/../media2/secret.txt",
        "/media/./../secret.txt",
        "/media/" + str(Path("/etc/passwd")),
        "/media/..;/secret.txt",
    ],
    ids=ascii,
)
def test_media_route_refuses_decoded_traversal_in_path_info(served: Flask, path: str) -> None:
    # What a server passes on after decoding the URL itself.
    status, data = fetch(served, path, raw=True)
    assert SECRET not in data
    assert status == 404, status


@pytest.mark.parametrize("method", ["HEAD", "POST", "PUT", "DELETE", "OPTIONS"])
def test_media_route_other_methods_do_not_leak(served: Flask, method: str) -> None:
    response = served.test_client().open("/media/%2e%2e/secret.txt", method=method)
    data = response.get_data()
    response.close()
    assert SECRET not in data
    if method == "OPTIONS":  # Flask answers OPTIONS itself, with the allowed methods only
        assert data == b""
    else:
        assert response.status_code in (404, 405)
