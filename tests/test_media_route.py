"""The media route: what it serves, how, and what it never serves.

Every response under the media URL carries ``X-Content-Type-Options: nosniff`` and a
sandboxing Content-Security-Policy; only JPEG, PNG, GIF, WebP and AVIF files are shown
inline, anything else is a download. Symlinks leading out of the media root, and the
temporary files a killed writer leaves behind, are answered with 404.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from flask import Flask

from flask_imagekit import ImageKit
from flask_imagekit.storage import FileSystemStorage, FsspecStorage

REPO = Path(__file__).resolve().parent.parent
SECRET = b"TOP-SECRET-CONTENT"
CSP = "default-src 'none'; sandbox"
ONE_YEAR = 365 * 24 * 3600


def get(app: Flask, path: str, **kwargs: t.Any) -> t.Any:
    response = app.test_client().get(path, **kwargs)
    response.get_data()
    response.close()
    return response


def assert_inert(response: t.Any) -> None:
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    assert response.headers.get("Content-Security-Policy") == CSP


@pytest.fixture
def served(app: Flask, imagekit: ImageKit, media_root: Path, tmp_path: Path) -> Flask:
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.jpg").write_bytes(SECRET)
    (media_root / "photos").mkdir()
    (media_root / "photos" / "cat.jpg").write_bytes(b"jpeg bytes")
    (media_root / "CACHE" / "images").mkdir(parents=True)
    (media_root / "CACHE" / "images" / "x.jpg").write_bytes(b"cached")
    return app


# Headers -------------------------------------------------------------------------------------


def test_every_response_is_inert(served: Flask) -> None:
    ok = get(served, "/media/CACHE/images/x.jpg")
    assert ok.status_code == 200
    not_modified = get(
        served, "/media/CACHE/images/x.jpg", headers={"If-None-Match": ok.headers["ETag"]}
    )
    since = get(
        served,
        "/media/CACHE/images/x.jpg",
        headers={"If-Modified-Since": ok.headers["Last-Modified"]},
    )
    missing = get(served, "/media/photos/nope.jpg")
    traversal = get(served, "/media/%2e%2e/secret.txt")
    directory = get(served, "/media/photos")
    bare = get(served, "/media/")
    others = [not_modified, since, missing, traversal, directory, bare]
    assert [r.status_code for r in others] == [304, 304, 404, 404, 404, 404]
    for response in [ok, *others]:
        assert_inert(response)


def test_other_routes_are_left_alone(served: Flask) -> None:
    served.add_url_rule("/page", "page", lambda: "<p>hello</p>")
    response = get(served, "/page")
    assert response.status_code == 200
    assert "Content-Security-Policy" not in response.headers
    assert "X-Content-Type-Options" not in response.headers


def test_cache_files_keep_conditional_get_and_long_max_age(served: Flask) -> None:
    response = get(served, "/media/CACHE/images/x.jpg")
    assert response.data == b"cached"
    assert response.cache_control.max_age == ONE_YEAR
    assert response.cache_control.public
    source = get(served, "/media/photos/cat.jpg")
    assert source.status_code == 200
    assert source.cache_control.max_age != ONE_YEAR


@pytest.mark.parametrize(
    ("name", "mimetype"),
    [
        ("a.jpg", "image/jpeg"),
        ("a.jpeg", "image/jpeg"),
        ("a.JPG", "image/jpeg"),
        ("a.jpe", "image/jpeg"),
        ("a.jfif", "image/jpeg"),
        ("a.png", "image/png"),
        ("a.gif", "image/gif"),
        ("a.webp", "image/webp"),
        ("a.avif", "image/avif"),
        ("CACHE/images/photos/cat/0123abcd.webp", "image/webp"),
    ],
)
def test_images_are_shown_inline_with_their_type(
    served: Flask, media_root: Path, name: str, mimetype: str
) -> None:
    path = media_root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"image bytes")
    response = get(served, f"/media/{name}")
    assert response.status_code == 200
    assert response.data == b"image bytes"
    assert response.mimetype == mimetype
    assert "attachment" not in response.headers.get("Content-Disposition", "")
    assert_inert(response)


@pytest.mark.parametrize(
    "name",
    [
        "evil.svg",
        "evil.SVG",
        "evil.svgz",
        "evil.html",
        "evil.htm",
        "evil.xhtml",
        "evil.xml",
        "evil.js",
        "evil.mjs",
        "evil.css",
        "evil.pdf",
        "notes.txt",
        "README",
        "evil.jpg.svg",
        "evil.jpg.html",
        "evil.svg.",
        ".jpg",
        "CACHE/images/evil.svg",
    ],
)
def test_anything_else_is_a_download(served: Flask, media_root: Path, name: str) -> None:
    path = media_root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    response = get(served, f"/media/{name}")
    assert response.status_code == 200
    assert response.mimetype == "application/octet-stream"
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert_inert(response)


# Symlinks ------------------------------------------------------------------------------------


needs_symlinks = pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")


@needs_symlinks
def test_symlink_to_a_file_outside_is_not_served(
    served: Flask, media_root: Path, tmp_path: Path
) -> None:
    (media_root / "photos" / "leak.jpg").symlink_to(tmp_path / "outside" / "secret.jpg")
    (media_root / "passwd.txt").symlink_to(tmp_path / "secret.txt")
    for path in ["/media/photos/leak.jpg", "/media/passwd.txt"]:
        response = get(served, path)
        assert response.status_code == 404, path
        assert SECRET not in response.data
        assert_inert(response)


@needs_symlinks
def test_symlink_to_a_directory_outside_is_not_served(
    served: Flask, media_root: Path, tmp_path: Path
) -> None:
    (media_root / "photos" / "elsewhere").symlink_to(
        tmp_path / "outside", target_is_directory=True
    )
    (media_root / "up").symlink_to(tmp_path, target_is_directory=True)
    for path in ["/media/photos/elsewhere/secret.jpg", "/media/up/secret.txt"]:
        response = get(served, path)
        assert response.status_code == 404, path
        assert SECRET not in response.data


@needs_symlinks
def test_symlink_inside_the_root_is_served(served: Flask, media_root: Path) -> None:
    (media_root / "latest.jpg").symlink_to(media_root / "photos" / "cat.jpg")
    (media_root / "pictures").symlink_to(media_root / "photos", target_is_directory=True)
    for path in ["/media/latest.jpg", "/media/pictures/cat.jpg"]:
        response = get(served, path)
        assert response.status_code == 200, path
        assert response.data == b"jpeg bytes"
        assert response.mimetype == "image/jpeg"


@needs_symlinks
def test_media_root_may_itself_be_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real-media"
    (real / "photos").mkdir(parents=True)
    (real / "photos" / "cat.jpg").write_bytes(b"jpeg bytes")
    link = tmp_path / "media-link"
    link.symlink_to(real, target_is_directory=True)
    app = Flask("linked", instance_path=str(tmp_path / "instance"))
    app.config.update(TESTING=True, IMAGEKIT_MEDIA_ROOT=str(link))
    ImageKit(app)
    response = get(app, "/media/photos/cat.jpg")
    assert response.status_code == 200
    assert response.data == b"jpeg bytes"


# Temporary files -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        ".tmp-k3j2h1g0",  # FileSystemStorage.save (mkstemp)
        "photos/.tmp-k3j2h1g0",
        "CACHE/images/.tmp-Ab3dE5g-x.jpg",  # FsspecStorage.save
        "photos/.tmp-anything.jpg",
    ],
)
def test_temporary_files_are_not_served(served: Flask, media_root: Path, name: str) -> None:
    (media_root / name).write_bytes(b"half written")
    response = get(served, f"/media/{name}")
    assert response.status_code == 404
    assert b"half written" not in response.data
    assert_inert(response)


# A writer that stalls after its first chunk, so its temporary file exists when it is killed.
_STALLED_WRITER = """
import sys, time
from flask_imagekit.storage import FileSystemStorage, FsspecStorage

class Stalling:
    calls = 0

    def read(self, size=-1):
        self.calls += 1
        if self.calls == 1:
            return b"half written" * 1000
        print("stalled", flush=True)
        time.sleep(600)
        return b""

kind, location = sys.argv[1], sys.argv[2]
if kind == "filesystem":
    storage = FileSystemStorage(location)
else:
    storage = FsspecStorage("file://" + location)
storage.save("photos/new.jpg", Stalling())
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.parametrize("kind", ["filesystem", "fsspec"])
def test_temporary_file_of_a_killed_save_is_neither_listed_nor_served(
    served: Flask, media_root: Path, kind: str
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen(
        [sys.executable, "-c", _STALLED_WRITER, kind, str(media_root)],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env=env,
    ) as child:
        assert child.stdout is not None
        try:
            assert child.stdout.readline() == b"stalled\n"
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    leftovers = [p.name for p in (media_root / "photos").iterdir() if p.name.startswith(".tmp-")]
    assert len(leftovers) == 1, leftovers
    assert not (media_root / "photos" / "new.jpg").exists()

    for storage in (FileSystemStorage(media_root), FsspecStorage(f"file://{media_root}")):
        assert list(storage.walk()) == ["CACHE/images/x.jpg", "photos/cat.jpg"], storage
        assert storage.listdir("photos") == ([], ["cat.jpg"]), storage
    response = get(served, f"/media/photos/{leftovers[0]}")
    assert response.status_code == 404
    assert b"half written" not in response.data


# An absolute IMAGEKIT_MEDIA_URL --------------------------------------------------------------


@pytest.mark.parametrize(
    ("media_url", "path"),
    [
        ("https://cdn.example.com/media/", "/media/photos/cat.jpg"),
        ("https://cdn.example.com/assets/v1", "/assets/v1/photos/cat.jpg"),
        ("//cdn.example.com/static/media/", "/static/media/photos/cat.jpg"),
    ],
)
def test_absolute_media_url_is_still_served_for_the_cdn(
    tmp_path: Path, media_url: str, path: str
) -> None:
    media_root = tmp_path / "media"
    (media_root / "photos").mkdir(parents=True)
    (media_root / "photos" / "cat.jpg").write_bytes(b"jpeg bytes")
    app = Flask("cdn", instance_path=str(tmp_path / "instance"))
    app.config.update(
        TESTING=True, IMAGEKIT_MEDIA_ROOT=str(media_root), IMAGEKIT_MEDIA_URL=media_url
    )
    imagekit = ImageKit(app)
    storage = imagekit.state(app).storage
    assert storage.url("photos/cat.jpg").startswith(media_url.rstrip("/") + "/")
    response = get(app, path)
    assert response.status_code == 200
    assert response.data == b"jpeg bytes"
    assert response.mimetype == "image/jpeg"
    assert_inert(response)


def test_absolute_media_url_is_not_served_when_serving_is_off(tmp_path: Path) -> None:
    app = Flask("cdn", instance_path=str(tmp_path / "instance"))
    app.config.update(
        TESTING=True,
        IMAGEKIT_MEDIA_URL="https://cdn.example.com/media/",
        IMAGEKIT_SERVE_MEDIA=False,
    )
    ImageKit(app)
    assert "imagekit_media" not in app.view_functions
    assert get(app, "/media/photos/cat.jpg").status_code == 404


# On-request tokens ---------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["?ik=", "?ik=garbage", "?ik=a.b.c&x=1", "?x=1"])
def test_an_existing_file_is_served_whatever_its_query(served: Flask, query: str) -> None:
    response = get(served, f"/media/CACHE/images/x.jpg{query}")
    assert response.status_code == 200
    assert response.data == b"cached"
    assert response.cache_control.max_age == ONE_YEAR
    assert_inert(response)


@pytest.mark.parametrize("query", ["", "?ik=", "?ik=garbage", "?ik=eyJnIjoieCJ9.c2ln"])
def test_a_missing_file_without_a_valid_token_is_a_404_that_makes_nothing(
    app: Flask, media_root: Path, query: str
) -> None:
    app.config.update(
        SECRET_KEY="media-route-tests",
        IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY="flask_imagekit.cachefiles.strategies.OnRequest",
    )
    ImageKit(app)
    (media_root / "photos").mkdir()
    (media_root / "photos" / "cat.jpg").write_bytes(b"jpeg bytes")
    response = get(app, f"/media/CACHE/images/photos/cat/0123abcd.jpg{query}")
    assert response.status_code == 404
    assert_inert(response)
    assert not (media_root / "CACHE").exists()
