"""OnRequest: pages render without generating; the first GET of an image generates it.

A page shows each file at its storage URL plus a signed token (``?ik=``), and its
width and height from the state or, before the file exists, from the source's
header. The media route serves files that exist as before; a missing file is
generated (once, however many requests race) only for a token this app signed for
exactly that file, then served, or redirected to for a remote storage. Anything
else is a 404 that leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import threading
import time
import typing as t
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import itsdangerous
import pytest
from flask import Flask, render_template_string
from flask_sqlalchemy import SQLAlchemy
from PIL import Image
from werkzeug.datastructures import FileStorage
from werkzeug.serving import make_server

from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.cachefiles import ImageCacheFile
from flask_imagekit.cachefiles.strategies import JustInTime, OnRequest
from flask_imagekit.exceptions import ImproperlyConfigured, JobRefused, SourceError
from flask_imagekit.globals import current_state
from flask_imagekit.jobs import run_job
from flask_imagekit.processors import ResizeToFill, ResizeToFit
from flask_imagekit.storage import FileSystemStorage, FsspecStorage

from .conftest import (
    PreciseCache,
    Recorder,
    card_model,
    count_calls,
    encode,
    photo,
    run_together,
    save_source,
    sign_job,
)
from .test_render_cost import count_state_operations

SECRET = "on-request-tests"
SALT = "flask_imagekit.onrequest"
SOURCE = "photos/cat.jpg"
ONE_YEAR = 365 * 24 * 3600
STRATEGY = "flask_imagekit.cachefiles.strategies.OnRequest"


def counting(processors: list[t.Any], fmt: str | None = "JPEG", delay: float = 0.0) -> type:
    """A spec class of its own that records each of its generations."""

    class Counted(ImageSpec):
        generations: t.ClassVar[list[str | None]] = []

        def generate(self) -> t.Any:
            Counted.generations.append(self.source.name if self.source else None)
            if delay:
                time.sleep(delay)
            return super().generate()

    Counted.processors = processors
    Counted.format = fmt
    return Counted


class Halve:
    """A processor without ``cost()``: its output size cannot be foreseen."""

    def process(self, img: Image.Image) -> Image.Image:
        return img.resize((img.width // 2, img.height // 2))


def serializer(secret: str = SECRET) -> itsdangerous.URLSafeSerializer:
    """Tokens as the OnRequest strategy documents them."""
    return itsdangerous.URLSafeSerializer(
        secret,
        salt=SALT,
        signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha256},
    )


def token_of(url: str) -> str:
    (token,) = parse_qs(urlsplit(url).query)["ik"]
    return token


def local(url: str) -> str:
    """The path and query of ``url``: what reaches the app (from a CDN, say)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def fetch(app: Flask, url: str, **kwargs: t.Any) -> t.Any:
    response = app.test_client().get(local(url), **kwargs)
    response.get_data()
    response.close()
    return response


def cache_files(root: Path) -> list[str]:
    cache = root / "CACHE"
    if not cache.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in cache.rglob("*") if p.is_file())


def src_of(html: str) -> str:
    """The ``src`` of the first ``<img>`` in ``html``, unescaped."""
    return html.split('src="')[1].split('"')[0].replace("&amp;", "&")


def opened(data: bytes) -> tuple[str | None, tuple[int, int]]:
    with Image.open(io.BytesIO(data)) as img:
        return img.format, img.size


@pytest.fixture
def states() -> PreciseCache:
    return PreciseCache()


@pytest.fixture
def thumb() -> type:
    return counting([ResizeToFill(40, 30)])


@pytest.fixture
def served(app: Flask, media_root: Path, states: PreciseCache, thumb: type) -> t.Iterator[Flask]:
    """An app whose default strategy is OnRequest, with a source and a counted spec."""
    app.config.update(
        SECRET_KEY=SECRET,
        IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=STRATEGY,
        IMAGEKIT_CACHE_BACKEND=states,
    )
    imagekit = ImageKit(app)
    imagekit.register.generator("t:thumb", thumb)
    imagekit.register.generator("t:fit", counting([ResizeToFit(300)]))
    save_source(media_root, SOURCE)
    return app


def url_of(app: Flask, generator_id: str = "t:thumb", **kwargs: t.Any) -> str:
    with app.test_request_context():
        kwargs.setdefault("source", SOURCE)
        return current_state().cachefile(generator_id, **kwargs).url


# The setting ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [OnRequest(), OnRequest, STRATEGY], ids=["obj", "cls", "path"])
def test_on_request_is_set_like_any_strategy(app: Flask, value: t.Any) -> None:
    app.config.update(SECRET_KEY=SECRET, IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=value)
    imagekit = ImageKit(app)
    assert isinstance(imagekit.state(app).cachefile_strategy, OnRequest)


def test_a_spec_can_choose_on_request(app: Flask, media_root: Path) -> None:
    class Lazy(ImageSpec):
        processors = [ResizeToFill(40, 30)]  # noqa: RUF012
        format = "JPEG"
        cachefile_strategy = OnRequest

    app.config["SECRET_KEY"] = SECRET
    ImageKit(app).register.generator("t:lazy", Lazy)
    save_source(media_root, SOURCE)
    url = url_of(app, "t:lazy")
    assert "?ik=" in url
    assert cache_files(media_root) == []
    response = fetch(app, url)
    assert response.status_code == 200
    assert opened(response.data) == ("JPEG", (40, 30))


def test_an_app_without_secret_key_is_refused_at_start_up(app: Flask) -> None:
    app.config["IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY"] = STRATEGY
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
        ImageKit(app)


def test_an_on_request_url_needs_a_secret_key(app: Flask, media_root: Path, thumb: type) -> None:
    thumb.cachefile_strategy = OnRequest
    ImageKit(app).register.generator("t:thumb", thumb)
    save_source(media_root, SOURCE)
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
        url_of(app)


def test_on_request_needs_the_media_route(app: Flask, media_root: Path, thumb: type) -> None:
    app.config.update(
        SECRET_KEY=SECRET, IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=STRATEGY, IMAGEKIT_SERVE_MEDIA=False
    )
    with pytest.raises(ImproperlyConfigured, match="IMAGEKIT_SERVE_MEDIA"):
        ImageKit(app)
    other = Flask("other", instance_path=app.instance_path)
    other.config.update(SECRET_KEY=SECRET, IMAGEKIT_SERVE_MEDIA=False)
    other.config["IMAGEKIT_MEDIA_ROOT"] = str(media_root)
    thumb.cachefile_strategy = OnRequest
    ImageKit(other).register.generator("t:thumb", thumb)
    save_source(media_root, SOURCE)
    with pytest.raises(ImproperlyConfigured, match="IMAGEKIT_SERVE_MEDIA"):
        url_of(other)


# Pages: no generation, no I/O for URLs ---------------------------------------------------------


def test_url_and_truth_do_no_io_and_a_remembered_render_costs_nothing(
    served: Flask, media_root: Path, monkeypatch: pytest.MonkeyPatch, thumb: type
) -> None:
    template = '{{ generateimage("t:thumb", source=name) }}'
    with served.test_request_context():
        state = current_state()
        storage_calls = count_calls(monkeypatch, state.storage, "exists", "open", "save", "size")
        operations = count_state_operations(state.states)
        file = current_state().cachefile("t:thumb", source=SOURCE)
        assert file.url.startswith(state.storage.url(file.name) + "?ik=")
        assert bool(file)
        assert (sum(storage_calls.values()), sum(operations.values())) == (0, 0)

        first = render_template_string(template, name=SOURCE)
        assert 'width="40" height="30"' in first
        storage_calls.clear()
        operations.clear()
        for _ in range(3):
            assert render_template_string(template, name=SOURCE) == first
        assert (sum(storage_calls.values()), sum(operations.values())) == (0, 0)
    assert thumb.generations == []  # type: ignore[attr-defined]
    assert cache_files(media_root) == []


def test_a_remembered_file_signs_its_url_once(
    served: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    signatures = count_calls(monkeypatch, itsdangerous.Signer, "get_signature")
    template = '{{ thumbnail("100x", name) }}{{ generateimage("t:thumb", source=name) }}'
    with served.test_request_context():
        pages = {render_template_string(template, name=SOURCE) for _ in range(5)}
    assert len(pages) == 1
    assert signatures["get_signature"] == 2


def test_the_url_is_the_storage_url_with_a_deterministic_signed_token(
    served: Flask, media_root: Path
) -> None:
    url = url_of(served)
    assert url == url_of(served)  # same file, same URL: CDNs and browsers cache it
    data = serializer().loads(token_of(url))
    assert data["g"] == "t:thumb"
    assert data["s"] == SOURCE
    with served.test_request_context():
        file = current_state().cachefile("t:thumb", source=SOURCE)
        assert url == f"/media/{file.name}?ik={token_of(url)}"
        file.generate()
        assert file.url == url  # the URL never changes once the file exists
    with pytest.raises(itsdangerous.BadSignature):
        serializer("another key").loads(token_of(url))


def test_sources_a_token_cannot_name_are_generated_just_in_time(
    served: Flask, media_root: Path
) -> None:
    upload = FileStorage(io.BytesIO(encode(photo((80, 60)))), filename="upload.jpg")
    with served.test_request_context():
        file = current_state().cachefile("t:thumb", source=upload)
        url = file.url
        assert "ik=" not in url
        assert (media_root / file.name).is_file()


# Sizes without generating ------------------------------------------------------------------


def rotated_source(root: Path) -> str:
    """A 640x480 JPEG stored sideways (EXIF orientation 6): 480x640 upright."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return save_source(root, "photos/sideways.jpg", photo((640, 480)), exif=exif)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ('{{ generateimage("t:thumb", source=name) }}', (40, 30)),
        ('{{ generateimage("t:fit", source=name) }}', (300, 225)),
        ('{{ thumbnail("100x", name) }}', (100, 75)),
        ('{{ thumbnail("x50", name, format="WEBP") }}', (67, 50)),
        ('{{ thumbnail("64x64", name) }}', (64, 64)),
        ('{{ thumbnail("60x", rotated) }}', (60, 80)),
        ('{{ thumbnail("5000x", name) }}', (640, 480)),
    ],
)
def test_sizes_come_from_the_source_header_and_match_the_generated_file(
    served: Flask, media_root: Path, template: str, expected: tuple[int, int]
) -> None:
    rotated = rotated_source(media_root)
    with served.test_request_context():
        html = render_template_string(template, name=SOURCE, rotated=rotated)
    assert f'width="{expected[0]}" height="{expected[1]}"' in html
    assert cache_files(media_root) == []
    src = src_of(html)
    response = fetch(served, src)
    assert response.status_code == 200
    assert opened(response.data)[1] == expected


def test_candidates_have_their_size_before_they_exist(served: Flask, media_root: Path) -> None:
    with served.test_request_context():
        state = current_state()
        files = {
            (width, fmt): state.cachefile("t:fit", source=SOURCE, candidate=(width, fmt))
            for width, fmt in [(120, "AVIF"), (200, "WEBP"), (None, "JPEG"), (1000, "WEBP")]
        }
        sizes = {key: file.size for key, file in files.items()}
        urls = {key: file.url for key, file in files.items()}
    assert sizes == {
        (120, "AVIF"): (120, 90),
        (200, "WEBP"): (200, 150),
        (None, "JPEG"): (300, 225),
        (1000, "WEBP"): (300, 225),  # never wider than the spec's output
    }
    assert cache_files(media_root) == []
    for (width, fmt), url in urls.items():
        response = fetch(served, url)
        assert response.status_code == 200, url
        assert opened(response.data) == (fmt, sizes[width, fmt])
        assert response.mimetype == f"image/{fmt.lower()}"


def test_the_candidates_of_one_source_read_its_header_once(
    served: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    with served.test_request_context():
        state = current_state()
        reads = count_calls(monkeypatch, state.source_storage, "open")
        sizes = [
            state.cachefile("t:fit", source=SOURCE, candidate=(width, fmt)).size
            for width in (100, 200, 250)
            for fmt in ("AVIF", "WEBP", "JPEG")
        ]
    assert sizes[::3] == [(100, 75), (200, 150), (250, 188)]
    assert reads["open"] == 1


def test_a_predicted_size_is_remembered_without_the_file_looking_existing(
    served: Flask, media_root: Path, monkeypatch: pytest.MonkeyPatch, thumb: type
) -> None:
    template = '{{ generateimage("t:thumb", source=name) }}'
    with served.test_request_context():
        state = current_state()
        source_reads = count_calls(monkeypatch, state.source_storage, "open")
        render_template_string(template, name=SOURCE)
        assert source_reads["open"] == 1
        state.file_memo.clear()
        html = render_template_string(template, name=SOURCE)
        assert 'width="40" height="30"' in html
        assert source_reads["open"] == 1  # the next page reads no header
        file = state.cachefile("t:thumb", source=SOURCE)
        backend = file.cachefile_backend
        assert backend.lookup(file).state is None
        assert not backend.exists(file)
        # A JustInTime reader of the same name still generates it.
        same = ImageCacheFile(file.generator, cachefile_strategy=JustInTime())
        assert same.url == state.storage.url(file.name)
    assert len(thumb.generations) == 1  # type: ignore[attr-defined]
    assert (media_root / file.name).is_file()


def test_an_output_size_that_cannot_be_foreseen_renders_without_size(
    served: Flask, media_root: Path
) -> None:
    halving = counting([Halve()])
    served.extensions["imagekit"].register.generator("t:halve", halving)
    with served.test_request_context():
        html = render_template_string('{{ generateimage("t:halve", source=name) }}', name=SOURCE)
    assert "width=" not in html
    assert "height=" not in html
    assert halving.generations == []  # type: ignore[attr-defined]
    src = src_of(html)
    response = fetch(served, src)
    assert opened(response.data)[1] == (320, 240)


# The route -------------------------------------------------------------------------------------


def test_the_first_request_generates_and_serves_later_ones_are_plain_hits(
    served: Flask, media_root: Path, thumb: type
) -> None:
    url = url_of(served)
    first = fetch(served, url)
    assert first.status_code == 200
    assert first.mimetype == "image/jpeg"
    assert opened(first.data) == ("JPEG", (40, 30))
    assert first.cache_control.max_age == ONE_YEAR
    assert first.headers["X-Content-Type-Options"] == "nosniff"
    again = fetch(served, url)
    assert again.data == first.data
    not_modified = fetch(served, url, headers={"If-None-Match": first.headers["ETag"]})
    assert not_modified.status_code == 304
    assert len(thumb.generations) == 1  # type: ignore[attr-defined]


def _forged(data: dict[str, t.Any], secret: str = SECRET) -> str:
    return serializer(secret).dumps(data)


def _flip(token: str, index: int) -> str:
    char = "A" if token[index] != "A" else "B"
    return token[:index] + char + token[index + 1 :]


BAD_TOKENS: dict[str, t.Callable[[str, str], str]] = {
    "none": lambda url, other: url.split("?")[0],
    "empty": lambda url, other: url.split("?")[0] + "?ik=",
    "garbage": lambda url, other: url.split("?")[0] + "?ik=not-a-token",
    "payload-tampered": lambda url, other: url.replace(token_of(url), _flip(token_of(url), 3)),
    "signature-tampered": lambda url, other: url.replace(token_of(url), _flip(token_of(url), -2)),
    "other-key": lambda url, other: url.replace(
        token_of(url), _forged(serializer().loads(token_of(url)), "another key")
    ),
    "unknown-generator": lambda url, other: url.replace(
        token_of(url), _forged({**serializer().loads(token_of(url)), "g": "t:nope"})
    ),
    "other-file": lambda url, other: url.replace(token_of(url), token_of(other)),
    "other-arguments": lambda url, other: url.replace(
        token_of(url), _forged({**serializer().loads(token_of(url)), "k": {"width": 41}})
    ),
    "unknown-field": lambda url, other: url.replace(
        token_of(url), _forged({**serializer().loads(token_of(url)), "x": 1})
    ),
    "path-source": lambda url, other: url.replace(
        token_of(url), _forged({**serializer().loads(token_of(url)), "s": "/etc/passwd"})
    ),
}


@pytest.mark.parametrize("bad", BAD_TOKENS)
def test_a_request_without_a_valid_token_for_that_file_is_a_404_leaving_nothing(
    served: Flask, media_root: Path, states: PreciseCache, thumb: type, bad: str
) -> None:
    url = url_of(served, "imagekit:thumbnail", width=40, height=30)
    other = url_of(served, "imagekit:thumbnail", width=41, height=30)
    response = fetch(served, BAD_TOKENS[bad](url, other))
    assert response.status_code == 404
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert cache_files(media_root) == []
    assert states._data == {}  # no state, no lock
    assert fetch(served, url).status_code == 200  # the real one still works


def test_tokens_signed_with_a_fallback_key_still_generate(served: Flask, media_root: Path) -> None:
    url = url_of(served)
    served.config.update(SECRET_KEY="the new key", SECRET_KEY_FALLBACKS=[SECRET])
    assert url_of(served) != url
    response = fetch(served, url)
    assert response.status_code == 200
    assert opened(response.data) == ("JPEG", (40, 30))


def test_a_broken_source_is_a_404_remembered_so_it_is_not_decoded_again(
    served: Flask, media_root: Path, thumb: type, caplog: pytest.LogCaptureFixture
) -> None:
    (media_root / "photos" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    url = url_of(served, source="photos/broken.jpg")
    with caplog.at_level(logging.WARNING, logger="flask_imagekit"):
        responses = [fetch(served, url) for _ in range(3)]
    assert [r.status_code for r in responses] == [404, 404, 404]
    assert len(thumb.generations) == 1  # type: ignore[attr-defined]
    assert cache_files(media_root) == []
    warnings = [r for r in caplog.records if "broken.jpg" in r.getMessage()]
    assert len(warnings) == 1
    # A page learns of the failure with the size: a placeholder in production.
    with served.test_request_context(), pytest.raises(SourceError, match="failed recently"):
        render_template_string('{{ generateimage("t:thumb", source="photos/broken.jpg") }}')
    assert len(thumb.generations) == 1  # type: ignore[attr-defined]


def test_async_backends_generate_in_the_request(app: Flask, media_root: Path) -> None:
    recorder = Recorder()
    app.config.update(
        SECRET_KEY=SECRET,
        IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=STRATEGY,
        IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=recorder,
    )
    ImageKit(app).register.generator("t:thumb", counting([ResizeToFill(40, 30)]))
    save_source(media_root, SOURCE)
    with app.test_request_context():
        file = current_state().cachefile("t:thumb", source=SOURCE)
        assert bool(file)  # assumed available: it is made when asked for
        url = file.url
    response = fetch(app, url)
    assert response.status_code == 200
    assert opened(response.data) == ("JPEG", (40, 30))
    assert recorder.sent == []


# Races -------------------------------------------------------------------------------------


@contextlib.contextmanager
def threaded_server(app: Flask) -> t.Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.mark.parametrize("cache", ["precise", "redis"])
def test_eight_concurrent_first_requests_generate_once(
    app: Flask, media_root: Path, request: pytest.FixtureRequest, cache: str
) -> None:
    setting: t.Any = PreciseCache()
    if cache == "redis":
        url = request.getfixturevalue("redis_url")
        setting = {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": url}
    slow = counting([ResizeToFill(40, 30)], delay=0.3)
    app.config.update(
        SECRET_KEY=SECRET,
        IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=STRATEGY,
        IMAGEKIT_CACHE_BACKEND=setting,
    )
    ImageKit(app).register.generator("t:slow", slow)
    save_source(media_root, SOURCE)
    path = url_of(app, "t:slow")
    barrier = threading.Barrier(8)
    results: list[tuple[int, bytes]] = []
    errors: list[BaseException] = []

    def get(base: str) -> None:
        try:
            barrier.wait(timeout=10)
            with urllib.request.urlopen(base + path, timeout=30) as response:
                results.append((response.status, response.read()))
        except BaseException as exc:
            errors.append(exc)

    with threaded_server(app) as base:
        threads = [threading.Thread(target=get, args=(base,)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []
    assert len(results) == 8
    assert {status for status, _ in results} == {200}
    assert len({data for _, data in results}) == 1
    assert len(slow.generations) == 1  # type: ignore[attr-defined]


CHILD = """
import json, os, sys, threading, time

media_root, redis_url, log_path, ready_path, go_path, url = sys.argv[1:7]

from flask import Flask
from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.processors import ResizeToFill


class Slow(ImageSpec):
    processors = [ResizeToFill(40, 30)]
    format = "JPEG"

    def generate(self):
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"%d\\n" % os.getpid())
        finally:
            os.close(fd)
        time.sleep(0.3)
        return super().generate()


app = Flask("child", instance_path=os.path.abspath(ready_path + "-instance"))
app.config.update(
    SECRET_KEY="on-request-tests",
    IMAGEKIT_MEDIA_ROOT=media_root,
    IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY="flask_imagekit.cachefiles.strategies.OnRequest",
    IMAGEKIT_CACHE_BACKEND={"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": redis_url},
)
ImageKit(app).register.generator("t:slow", Slow)
barrier = threading.Barrier(4)
results = []


def work():
    client = app.test_client()
    barrier.wait(timeout=30)
    response = client.get(url)
    results.append([response.status_code, len(response.get_data())])
    response.close()


threads = [threading.Thread(target=work) for _ in range(4)]
open(ready_path, "w").close()
deadline = time.monotonic() + 30
while not os.path.exists(go_path):
    if time.monotonic() > deadline:
        sys.exit("no go signal")
    time.sleep(0.002)
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
json.dump(results, sys.stdout)
"""


@pytest.mark.redis
def test_two_processes_generate_a_first_request_once(
    app: Flask, media_root: Path, redis_url: str, tmp_path: Path
) -> None:
    app.config.update(SECRET_KEY=SECRET, IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=STRATEGY)
    ImageKit(app).register.generator("t:slow", counting([ResizeToFill(40, 30)]))
    save_source(media_root, SOURCE)
    url = local(url_of(app, "t:slow"))
    log = tmp_path / "generations.log"
    for out in run_together(tmp_path, CHILD, [str(media_root), redis_url, str(log)], url):
        results = json.loads(out)
        assert len(results) == 4
        assert {status for status, _ in results} == {200}
    assert len(log.read_text().splitlines()) == 1


# Remote storages and CDNs --------------------------------------------------------------------


@contextlib.contextmanager
def on_remote(
    app: Flask, media_root: Path, thumb: type, storage: FsspecStorage
) -> t.Iterator[FsspecStorage]:
    """``app`` under OnRequest with its cache files on ``storage``, emptied afterwards."""
    app.config.update(
        SECRET_KEY=SECRET,
        IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=STRATEGY,
        IMAGEKIT_DEFAULT_FILE_STORAGE=storage,
        IMAGEKIT_SOURCE_STORAGE=FileSystemStorage(media_root),
    )
    ImageKit(app).register.generator("t:thumb", thumb)
    save_source(media_root, SOURCE)
    try:
        yield storage
    finally:
        with contextlib.suppress(FileNotFoundError):
            storage.fs.rm(storage.root, recursive=True)


@pytest.fixture
def remote(app: Flask, media_root: Path, thumb: type) -> t.Iterator[FsspecStorage]:
    storage = FsspecStorage(
        f"memory://ik-{uuid.uuid4().hex}", base_url="https://files.example.com/media/"
    )
    with on_remote(app, media_root, thumb, storage):
        yield storage


def test_a_remote_file_is_generated_then_redirected_to(
    app: Flask, remote: FsspecStorage, media_root: Path, thumb: type
) -> None:
    url = url_of(app)
    assert url.startswith("/media/CACHE/images/")
    with app.test_request_context():
        name = current_state().cachefile("t:thumb", source=SOURCE).name
    assert url.split("?")[0] == f"/media/{name}"
    assert not remote.exists(name)
    response = fetch(app, url)
    assert response.status_code == 302
    assert response.headers["Location"] == remote.url(name)
    assert response.cache_control.max_age == ONE_YEAR
    with remote.open(name) as fp:
        assert opened(fp.read()) == ("JPEG", (40, 30))
    assert len(thumb.generations) == 1  # type: ignore[attr-defined]
    with app.app_context():
        current_state().states.cache.clear()  # a process that knows nothing yet
    again = fetch(app, url)
    assert again.status_code == 302
    assert again.headers["Location"] == remote.url(name)
    assert len(thumb.generations) == 1  # type: ignore[attr-defined]
    assert fetch(app, url.split("?")[0]).status_code == 404
    assert cache_files(media_root) == []


def test_a_remote_storage_whose_url_is_the_route_itself_is_sent_not_looped(
    app: Flask, media_root: Path, thumb: type
) -> None:
    storage = FsspecStorage(f"memory://ik-{uuid.uuid4().hex}")  # base_url: "/media/"
    with on_remote(app, media_root, thumb, storage):
        url = url_of(app)
        for _ in range(2):
            response = fetch(app, url)
            assert response.status_code == 200
            assert opened(response.data) == ("JPEG", (40, 30))
            assert response.cache_control.max_age == ONE_YEAR
    assert len(thumb.generations) == 1  # type: ignore[attr-defined]


def test_an_absolute_media_url_gives_cdn_urls_that_the_app_answers(
    app: Flask, media_root: Path, thumb: type
) -> None:
    app.config.update(
        SECRET_KEY=SECRET,
        IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=STRATEGY,
        IMAGEKIT_MEDIA_URL="https://cdn.example.com/media/",
    )
    ImageKit(app).register.generator("t:thumb", thumb)
    save_source(media_root, SOURCE)
    url = url_of(app)
    assert url.startswith("https://cdn.example.com/media/CACHE/images/")
    assert "?ik=" in url
    response = fetch(app, url)  # the CDN pulls the path from the app
    assert response.status_code == 200
    assert opened(response.data) == ("JPEG", (40, 30))


# Every way to name a file ----------------------------------------------------------------------


def test_a_page_of_every_kind_of_file_renders_without_generating_and_each_url_serves(
    served: Flask, media_root: Path
) -> None:
    template = (
        '{{ thumbnail("100x", name) }}|{{ thumbnail("60x60", name, format="WEBP") }}|'
        '{{ generateimage("t:fit", source=name) }}|{{ candidate }}'
    )
    with served.test_request_context():
        candidate = current_state().cachefile("t:fit", source=SOURCE, candidate=(150, "AVIF"))
        html = render_template_string(template, name=SOURCE, candidate=candidate)
    assert cache_files(media_root) == []
    srcs = [src_of(part) for part in html.split("|")]
    expected = [
        ("JPEG", (100, 75)),
        ("WEBP", (60, 60)),
        ("JPEG", (300, 225)),
        ("AVIF", (150, 112)),
    ]
    for src, (fmt, size) in zip(srcs, expected, strict=True):
        response = fetch(served, src)
        assert response.status_code == 200, src
        assert opened(response.data) == (fmt, size)


@pytest.fixture
def model_app(db_app: tuple[Flask, SQLAlchemy], media_root: Path) -> tuple[Flask, t.Any]:
    app, db = db_app
    app.config.update(SECRET_KEY=SECRET, IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=STRATEGY)
    card = card_model(db)
    ImageKit(app, db=db)
    save_source(media_root, SOURCE)
    with app.app_context():
        db.create_all()
    return app, card


def test_a_model_attribute_travels_by_its_row(
    model_app: tuple[Flask, t.Any], media_root: Path
) -> None:
    app, card_class = model_app
    db = app.extensions["sqlalchemy"]
    with app.test_request_context():
        card = card_class(size=12, picture=SOURCE)
        db.session.add(card)
        db.session.commit()
        url = card.thumb.url
        assert card.thumb.size == (12, 12)
        data = serializer().loads(token_of(url))
        assert data["m"] == {"entity": "Card", "identity": [card.id]}
        assert data["a"] == "picture"
        db.session.remove()
    assert cache_files(media_root) == []
    response = fetch(app, url)
    assert response.status_code == 200
    assert opened(response.data) == ("PNG", (12, 12))


# Jobs of candidates ---------------------------------------------------------------------------


@pytest.fixture
def recorder(app: Flask, media_root: Path) -> t.Iterator[Recorder]:
    backend = Recorder()
    app.config.update(SECRET_KEY=SECRET, IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=backend)
    ImageKit(app).register.generator("t:fit", counting([ResizeToFit(300)]))
    save_source(media_root, SOURCE)
    with app.app_context():
        yield backend


def test_jobs_of_candidates_carry_the_candidate(recorder: Recorder, media_root: Path) -> None:
    state = current_state()
    plain = state.cachefile("t:fit", source=SOURCE)
    assert recorder.enqueue(plain)
    assert "candidate" not in recorder.sent[-1]  # other payloads stay as they were
    file = state.cachefile("t:fit", source=SOURCE, candidate=(50, "webp"))
    assert recorder.enqueue(file)
    payload = recorder.sent[-1]
    assert payload["candidate"] == [50, "WEBP"]
    assert run_job(payload) == "generated"
    with Image.open(media_root / file.name) as img:
        assert (img.format, img.size) == ("WEBP", (50, 38))
    assert run_job(sign_job({**recorder.sent[0], "candidate": None}, SECRET)) == "generated"
    with Image.open(media_root / plain.name) as img:
        assert (img.format, img.size) == ("JPEG", (300, 225))


@pytest.mark.parametrize("candidate", [[0, "WEBP"], [50], "50", [50, "../x"], [True, "PNG"]])
def test_a_signed_job_with_a_bad_candidate_is_refused(
    recorder: Recorder, media_root: Path, candidate: t.Any
) -> None:
    file = current_state().cachefile("t:fit", source=SOURCE, candidate=(50, "WEBP"))
    assert recorder.enqueue(file)
    with pytest.raises(JobRefused, match="candidate"):
        run_job(sign_job({**recorder.sent[-1], "candidate": candidate}, SECRET))
    assert cache_files(media_root) == []


# Sizes a page asks for, and what the route says of a file it cannot serve ---------------------


@pytest.mark.parametrize("raise_errors", [True, False])
def test_an_explicit_size_of_an_unforeseeable_output_generates_the_file(
    app: Flask, media_root: Path, raise_errors: bool
) -> None:
    app.config.update(
        SECRET_KEY=SECRET,
        IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=STRATEGY,
        IMAGEKIT_RAISE_ERRORS=raise_errors,
    )
    halving = counting([Halve()])
    ImageKit(app).register.generator("t:halve", halving)
    save_source(media_root, SOURCE)
    served = app
    template = '{{ generateimage("t:halve", source=name) }}'
    with served.test_request_context():
        assert "width=" not in render_template_string(template, name=SOURCE)
        assert halving.generations == []  # type: ignore[attr-defined]
        # Asking for the size is asking for the content: made now, as JustInTime would.
        sized = (
            '{% set th = generateimage("t:halve", source=name) %}{{ th.width }}x{{ th.height }}'
        )
        assert render_template_string(sized, name=SOURCE) == "320x240"
        file = current_state().cachefile("t:halve", source=SOURCE)
        assert file.size == (320, 240)
    assert halving.generations == [SOURCE]  # type: ignore[attr-defined]
    assert (media_root / file.name).is_file()


def test_what_the_route_cannot_serve_is_never_kept_by_a_cache(
    served: Flask, media_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = url_of(served)
    (media_root / "photos" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    refused = [
        url.split("?")[0],  # no token: a CDN ignoring the query would keep it for the real URL
        BAD_TOKENS["signature-tampered"](url, url),
        url_of(served, source="photos/broken.jpg"),
    ]
    for each in refused:
        response = fetch(served, each)
        assert response.status_code == 404, each
        assert response.headers["Cache-Control"] == "no-store", each
    with served.app_context():
        state = current_state()
        file = state.cachefile("t:thumb", source=SOURCE)
        lock = file.cachefile_backend.get_lock_key(file)
        assert state.states.acquire(lock, "another process", 60)
    monkeypatch.setattr("flask_imagekit.serving.REQUEST_WAIT", 0)
    busy = fetch(served, url)
    assert busy.status_code == 503
    assert busy.headers["Cache-Control"] == "no-store"
    assert busy.headers["Retry-After"] == "1"
    with served.app_context():
        state.states.release(lock, "another process")
    served_now = fetch(served, url)
    assert served_now.status_code == 200
    assert served_now.cache_control.max_age == ONE_YEAR


class ExpiringUrls(FsspecStorage):
    """A storage whose URLs expire (presigned): redirects to them are kept briefly."""

    url_max_age = 300


def test_the_redirect_to_a_remote_file_is_kept_as_long_as_its_storage_says(
    app: Flask, media_root: Path, thumb: type
) -> None:
    storage = ExpiringUrls(
        f"memory://ik-{uuid.uuid4().hex}", base_url="https://files.example.com/media/"
    )
    with on_remote(app, media_root, thumb, storage):
        for _ in range(2):  # generated, then already there
            response = fetch(app, url_of(app))
            assert response.status_code == 302
            assert response.cache_control.max_age == 300
