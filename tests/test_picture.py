"""The ``picture()`` and ``srcset()`` Jinja globals, rendered through real templates.

A ``<picture>`` offers the spec's output at several widths, one ``<source>`` per
modern format and an ``<img>`` in the spec's own format; each candidate is a cache
file served by the media route. JustInTime generates the missing candidates
together (one decode of the source); Optimistic generates nothing. A per-image
problem renders the placeholder in production and raises in debug mode.
"""

from __future__ import annotations

import collections
import dataclasses
import html
import io
import logging
import re
import typing as t
import weakref
from pathlib import Path

import pytest
from flask import Flask, render_template_string
from PIL import Image, ImageOps, features

from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.cachefiles.backends import CacheFileState, Simple
from flask_imagekit.cachefiles.backends.states import PictureInfo, picture_key, picture_value
from flask_imagekit.exceptions import ImproperlyConfigured, SourceError
from flask_imagekit.globals import STATE_KEY
from flask_imagekit.pictures import layout
from flask_imagekit.processors import ResizeToFit
from flask_imagekit.specs.sharing import Share
from flask_imagekit.storage import FileSystemStorage

from .conftest import count_calls, fetch_image, photo, save_source

pytestmark = pytest.mark.skipif(not features.check("avif"), reason="Pillow without AVIF")

OPTIMISTIC = "flask_imagekit.cachefiles.strategies.Optimistic"
ON_REQUEST = "flask_imagekit.cachefiles.strategies.OnRequest"
WIDTHS = [100, 200, 300]
STATE_OPERATIONS = ("get", "set", "delete", "complete", "acquire", "release", "lock_holder")
SOURCE_TAG = re.compile(r'<source type="([^"]+)" srcset="([^"]+)"(?: sizes="([^"]+)")?>')
IMG_TAG = re.compile(r"<img ([^>]*)>")
ATTRIBUTE = re.compile(r'([a-z-]+)(?:="([^"]*)")?')


class Photo(ImageSpec):
    """At most 400 pixels wide: a 600x400 source gives 400x267."""

    processors = [ResizeToFit(400, upscale=False)]  # noqa: RUF012
    format = "JPEG"


class Declared(Photo):
    responsive_widths = (150,)
    responsive_formats = ("WEBP",)


class CountingStorage(FileSystemStorage):
    """The source storage, counting how often a source is opened (once per decode)."""

    def __init__(self, location: Path) -> None:
        super().__init__(str(location), "/media/")
        self.opens: collections.Counter[str] = collections.Counter()

    def open(self, name: str, mode: str = "rb") -> t.IO[bytes]:
        self.opens[name] += 1
        return super().open(name, mode)


class Page:
    """An app with ImageKit, its source storage counted, and helpers to look at pages."""

    def __init__(self, app: Flask, sources: CountingStorage, media_root: Path) -> None:
        self.app = app
        self.sources = sources
        self.media_root = media_root

    def render(self, template: str, **context: t.Any) -> str:
        with self.app.test_request_context():
            return render_template_string(template, **context)

    def picture(self, name: str = "photos/p.jpg", args: str = "") -> str:
        return self.render(f'{{{{ picture("t:photo", name{args}) }}}}', name=name)

    def fetch(self, url: str) -> Image.Image:
        return fetch_image(self.app, url)

    def cache_files(self) -> list[Path]:
        return sorted(p for p in (self.media_root / "CACHE").rglob("*") if p.is_file())

    @property
    def states(self) -> t.Any:
        with self.app.app_context():
            return self.app.extensions[STATE_KEY].states


def strategy_config(strategy: str | None) -> dict[str, t.Any]:
    """The config of a page under ``strategy`` (None: the default, JustInTime)."""
    if strategy is None:
        return {}
    return {"SECRET_KEY": "picture-tests", "IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY": strategy}


def make_page(tmp_path: Path, **config: t.Any) -> Page:
    media_root = tmp_path / "media"
    media_root.mkdir(exist_ok=True)
    app = Flask("pictures", instance_path=str(tmp_path / "instance"))
    sources = CountingStorage(media_root)
    app.config.update(
        TESTING=True,
        IMAGEKIT_MEDIA_ROOT=str(media_root),
        IMAGEKIT_SOURCE_STORAGE=sources,
        IMAGEKIT_RESPONSIVE_WIDTHS=WIDTHS,
    )
    app.config.update(config)
    kit = ImageKit(app)
    kit.register.generator("t:photo", Photo)
    kit.register.generator("t:declared", Declared)
    save_source(media_root, "photos/p.jpg", photo((600, 400)))
    return Page(app, sources, media_root)


@pytest.fixture
def page(tmp_path: Path) -> Page:
    return make_page(tmp_path)


def attributes(tag: str) -> dict[str, str]:
    return {name: html.unescape(value) for name, value in ATTRIBUTE.findall(tag)}


def parse_srcset(value: str) -> list[tuple[str, int]]:
    entries = []
    for entry in value.split(", "):
        url, descriptor = entry.split(" ")
        entries.append((url, int(descriptor.removesuffix("w"))))
    return entries


def parse_picture(markup: str) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    """The ``(type, srcset, sizes)`` of each ``<source>``, and the ``<img>``'s attributes."""
    assert markup.startswith("<picture><source") or markup.startswith("<picture><img"), markup
    assert markup.endswith("></picture>"), markup
    sources = [
        (kind, html.unescape(value), html.unescape(sizes))
        for kind, value, sizes in SOURCE_TAG.findall(markup)
    ]
    img = IMG_TAG.search(markup)
    assert img is not None, markup
    return sources, attributes(img.group(1))


# The markup -------------------------------------------------------------------------------


def test_picture_offers_avif_then_webp_sources_and_a_jpeg_img(page: Page) -> None:
    sources, img = parse_picture(page.picture())
    assert [kind for kind, _, _ in sources] == ["image/avif", "image/webp"]
    for _, value, sizes in sources:
        assert [width for _, width in parse_srcset(value)] == [100, 200, 300, 400]
        assert sizes == "(max-width: 400px) 100vw, 400px"
    assert [width for _, width in parse_srcset(img["srcset"])] == [100, 200, 300, 400]
    assert img["sizes"] == "(max-width: 400px) 100vw, 400px"
    # The aspect ratio of the spec's output (600x400 -> 400x267): no layout shift.
    assert (img["width"], img["height"]) == ("400", "267")
    assert img["loading"] == "lazy"
    assert img["decoding"] == "async"
    # The <img> src is the spec's own file, also its full-width candidate.
    assert parse_srcset(img["srcset"])[-1] == (img["src"], 400)
    with page.app.app_context():
        own = page.render('{{ generateimage("t:photo", source="photos/p.jpg").url }}')
    assert img["src"] == own


def test_every_candidate_is_served_in_its_format_at_its_width(page: Page) -> None:
    sources, img = parse_picture(page.picture())
    expected = {"image/avif": "AVIF", "image/webp": "WEBP"}
    offered = [(expected[kind], value) for kind, value, _ in sources]
    offered.append(("JPEG", img["srcset"]))
    urls = set()
    for fmt, value in offered:
        for url, width in parse_srcset(value):
            served = page.fetch(url)
            assert served.format == fmt, url
            assert served.width == width, url
            assert abs(served.height - width * 400 / 600) <= 1, (url, served.size)
            urls.add(url)
    assert len(urls) == 12  # 3 formats x 4 widths, each its own file
    assert len(page.cache_files()) == 12


def test_no_candidate_is_wider_than_the_output_or_a_small_source(page: Page) -> None:
    save_source(page.media_root, "photos/small.jpg", photo((250, 100)))
    sources, img = parse_picture(page.picture("photos/small.jpg"))
    for value in [value for _, value, _ in sources] + [img["srcset"]]:
        assert [width for _, width in parse_srcset(value)] == [100, 200, 250]
        for url, width in parse_srcset(value):
            assert page.fetch(url).width == width
    assert (img["width"], img["height"]) == ("250", "100")
    assert img["sizes"] == "(max-width: 250px) 100vw, 250px"


def test_widths_formats_and_sizes_of_the_call_win_over_the_spec_and_the_settings(
    page: Page,
) -> None:
    sources, img = parse_picture(
        page.picture(args=', widths=[120, 90], formats=["webp"], sizes="50vw"')
    )
    assert [(kind, sizes) for kind, _, sizes in sources] == [("image/webp", "50vw")]
    assert [width for _, width in parse_srcset(img["srcset"])] == [90, 120, 400]
    assert img["sizes"] == "50vw"
    declared = page.render('{{ picture("t:declared", "photos/p.jpg") }}')
    sources, img = parse_picture(declared)
    assert [kind for kind, _, _ in sources] == ["image/webp"]
    assert [width for _, width in parse_srcset(img["srcset"])] == [150, 400]
    sources, _ = parse_picture(
        page.render('{{ picture("t:declared", "photos/p.jpg", formats=[]) }}')
    )
    assert sources == []


def test_attrs_are_escaped_and_override_the_defaults(page: Page) -> None:
    attrs = {"alt": '"><script>x</script>', "loading": "eager", "decoding": None, "class": "a b"}
    markup = page.render('{{ picture("t:photo", "photos/p.jpg", attrs=attrs) }}', attrs=attrs)
    assert "<script>" not in markup
    _, img = parse_picture(markup)
    assert img["alt"] == '"><script>x</script>'
    assert img["loading"] == "eager"
    assert "decoding" not in img
    assert img["class"] == "a b"
    sized = page.render('{{ picture("t:photo", "photos/p.jpg", attrs={"width": 40}) }}')
    _, img = parse_picture(sized)
    assert img["width"] == "40"
    assert "height" not in img


@pytest.mark.parametrize(
    "attrs",
    [{"src": "/x.jpg"}, {"srcset": "x 1w"}, {"sizes": "10vw"}, {'a"b': "x"}, {"on load": "x"}],
)
def test_attrs_picture_sets_itself_or_that_break_the_tag_are_refused(
    page: Page, attrs: dict[str, str]
) -> None:
    with pytest.raises(ImproperlyConfigured):
        page.render('{{ picture("t:photo", "photos/p.jpg", attrs=attrs) }}', attrs=attrs)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (", widths=[0]", "widths"),
        (", widths='480'", "widths"),
        (", formats=['NOPE']", "NOPE"),
        (", placeholder='shimmer'", "placeholder"),
    ],
)
def test_bad_arguments_raise_in_every_mode(tmp_path: Path, args: str, match: str) -> None:
    page = make_page(tmp_path, IMAGEKIT_RAISE_ERRORS=False)
    with pytest.raises(ImproperlyConfigured, match=match):
        page.picture(args=args)
    assert page.cache_files() == []


def test_srcset_gives_the_attribute_value_alone(page: Page) -> None:
    sources, img = parse_picture(page.picture())
    own = page.render('{{ srcset("t:photo", "photos/p.jpg") }}')
    webp = page.render('{{ srcset("t:photo", "photos/p.jpg", format="webp") }}')
    assert html.unescape(own) == img["srcset"]
    assert html.unescape(webp) == sources[1][1]
    narrow = page.render('{{ srcset("t:photo", "photos/p.jpg", widths=[50]) }}')
    assert [width for _, width in parse_srcset(narrow)] == [50, 400]
    assert page.fetch(parse_srcset(narrow)[0][0]).size == (50, 33)


# Strategies -------------------------------------------------------------------------------


def test_just_in_time_generates_every_candidate_from_one_decode(page: Page) -> None:
    page.picture()
    # Its header (the output's and the source's sizes tell which widths to make), then
    # its pixels, once for every candidate.
    assert page.sources.opens == {"photos/p.jpg": 2}
    assert len(page.cache_files()) == 12
    page.picture()
    assert page.sources.opens == {"photos/p.jpg": 2}


def test_just_in_time_decodes_once_when_the_specs_own_file_exists(page: Page) -> None:
    page.render('{{ generateimage("t:photo", source="photos/p.jpg") }}')
    assert page.sources.opens == {"photos/p.jpg": 1}
    page.picture()
    assert page.sources.opens == {"photos/p.jpg": 3}  # its header, then one decode
    assert len(page.cache_files()) == 12


def test_just_in_time_regenerates_a_deleted_candidate(page: Page) -> None:
    _, img = parse_picture(page.picture())
    url = parse_srcset(img["srcset"])[0][0]
    with page.app.app_context():
        state = page.app.extensions[STATE_KEY]
        file = state.cachefile("t:photo", candidate=(100, None), source="photos/p.jpg")
        assert file.url == url
        file.storage.delete(file.name)
        file.cachefile_backend.forget(file)
    assert len(page.cache_files()) == 11
    page.picture()
    assert page.fetch(url).width == 100
    assert len(page.cache_files()) == 12


def test_optimistic_renders_without_generating(tmp_path: Path) -> None:
    page = make_page(tmp_path, IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=OPTIMISTIC)
    with page.app.app_context():
        # As the strategy does when a source is saved: the spec's own file exists.
        from flask_imagekit.templating import generateimage

        generateimage("t:photo", source="photos/p.jpg").generate()
    assert len(page.cache_files()) == 1
    opens = dict(page.sources.opens)
    sources, img = parse_picture(page.picture())
    assert len(page.cache_files()) == 1
    assert page.sources.opens == opens
    assert (img["width"], img["height"]) == ("400", "267")
    assert [width for _, width in parse_srcset(sources[0][1])] == [100, 200, 300, 400]


# Placeholders -----------------------------------------------------------------------------


def test_blur_placeholder_appears_once_the_candidates_are_generated(tmp_path: Path) -> None:
    page = make_page(tmp_path, IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=OPTIMISTIC)
    template = '{{ picture("t:photo", "photos/p.jpg", placeholder="blur", attrs=attrs) }}'
    attrs = {"style": "border: 0"}
    with page.app.app_context():
        from flask_imagekit.templating import generateimage

        generateimage("t:photo", source="photos/p.jpg").generate()
    _, img = parse_picture(page.render(template, attrs=attrs))
    assert img["style"] == "border: 0"  # no preview known yet
    with page.app.app_context():
        state = page.app.extensions[STATE_KEY]
        state.cachefile("t:photo", candidate=(100, "WEBP"), source="photos/p.jpg").generate()
    _, img = parse_picture(page.render(template, attrs=attrs))
    style = img["style"]
    match = re.fullmatch(
        r"background-size:cover;background-image:url\((data:image/[a-z]+;base64,[A-Za-z0-9+/=]+)\);"
        r"border: 0",
        style,
    )
    assert match, style
    assert len(match.group(1)) <= 1024
    assert Image.open(io.BytesIO(_data(match.group(1)))).size[0] <= 32


def test_blur_placeholder_of_a_picture_just_generated(page: Page) -> None:
    first = page.picture(args=', placeholder="blur"')
    again = page.picture(args=', placeholder="blur"')
    assert first == again
    _, img = parse_picture(first)
    assert img["style"].startswith("background-size:cover;background-image:url(data:image/")
    _, plain = parse_picture(page.picture())
    assert "style" not in plain


def _data(uri: str) -> bytes:
    import base64

    return base64.b64decode(uri.split(",", 1)[1])


@pytest.mark.parametrize(
    "preview",
    [
        'data:image/webp;base64,AAAA);background:url(https://evil.example/x) "><script>',
        "data:image/svg+xml,<svg onload=alert(1)>\\)'\"",
        "javascript:alert(1)",
    ],
)
def test_a_preview_cannot_break_out_of_the_url_or_the_attribute(page: Page, preview: str) -> None:
    with page.app.app_context():
        state = page.app.extensions[STATE_KEY]
        name = state.cachefile("t:photo", source="photos/p.jpg").name
        # As a poisoned state cache would hold it.
        value = picture_value(PictureInfo((400, 267), preview.replace(" ", "%20")))
        state.states.set(picture_key(state.cache_prefix, name), value)
    markup = page.picture(args=', placeholder="blur"')
    assert "<script" not in markup
    _, img = parse_picture(markup)
    style = img.get("style")
    if preview.startswith("javascript:"):
        assert style is None
        return
    assert style is not None
    assert style.startswith("background-size:cover;background-image:url(data:image/")
    inside = style.removeprefix("background-size:cover;background-image:url(")
    assert inside.endswith(")")
    assert not re.search(r"[()\"'\\\s<>]", inside[:-1]), inside


# Degrading --------------------------------------------------------------------------------


def test_a_broken_source_renders_the_placeholder_in_production(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    page = make_page(tmp_path, IMAGEKIT_RAISE_ERRORS=False)
    (page.media_root / "photos" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    attrs = {"alt": "Broken", "width": 40, "height": 30}
    template = '{{ picture("t:photo", "photos/broken.jpg", attrs=attrs) }}'
    with caplog.at_level(logging.WARNING, logger="flask_imagekit"):
        markup = page.render(template, attrs=attrs)
        again = page.render(template, attrs=attrs)
    assert markup == again
    img = IMG_TAG.fullmatch(markup)
    assert img is not None, markup
    found = attributes(img.group(1))
    assert found["src"].startswith("data:image/svg+xml,")
    assert (found["alt"], found["width"], found["height"]) == ("Broken", "40", "30")
    assert len([r for r in caplog.records if "cannot be shown" in r.getMessage()]) == 1
    assert page.render('{{ srcset("t:photo", "photos/broken.jpg") }}') == ""


def test_a_broken_source_raises_in_debug_mode(page: Page) -> None:
    (page.media_root / "photos" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(SourceError):
        page.picture("photos/broken.jpg")
    with pytest.raises(SourceError):
        page.render('{{ srcset("t:photo", "photos/broken.jpg") }}')


@pytest.mark.parametrize("raise_errors", [True, False])
def test_a_missing_source_renders_nothing_in_debug_and_the_placeholder_in_production(
    tmp_path: Path, raise_errors: bool
) -> None:
    page = make_page(tmp_path, IMAGEKIT_RAISE_ERRORS=raise_errors)
    markup = page.render('{{ picture("t:photo", None, attrs={"alt": "None"}) }}')
    if raise_errors:
        assert markup == ""
    else:
        found = attributes(IMG_TAG.fullmatch(markup).group(1))  # type: ignore[union-attr]
        assert found["src"].startswith("data:image/svg+xml,")
        assert found["alt"] == "None"
    assert page.render('{{ srcset("t:photo", None) }}') == ""


def test_a_spec_that_is_not_made_of_processors_is_refused(page: Page) -> None:
    class Custom:
        def __init__(self, source: t.Any = None) -> None:
            self.source = source

        cachefile_name = "custom.jpg"

    with page.app.app_context():
        page.app.extensions["imagekit"].register.generator("t:custom", Custom)
    with pytest.raises(ImproperlyConfigured, match="not an ImageSpec"):
        page.render('{{ picture("t:custom", "photos/p.jpg") }}')


# What a render costs ----------------------------------------------------------------------


def counting(page: Page) -> collections.Counter[str]:
    """Count the operations backends run on the page's state cache from now on."""
    counts: collections.Counter[str] = collections.Counter()
    states = page.states
    for name in STATE_OPERATIONS:
        method = getattr(states, name)

        def counted(*a: t.Any, _name: str = name, _method: t.Any = method, **k: t.Any) -> t.Any:
            counts[_name] += 1
            return _method(*a, **k)

        setattr(states, name, counted)
    return counts


@pytest.fixture(params=["simple", "redis"])
def cache_config(request: pytest.FixtureRequest) -> dict[str, t.Any]:
    if request.param == "simple":
        return {}
    redis_url = request.getfixturevalue("redis_url")
    return {"IMAGEKIT_CACHE_BACKEND": {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": redis_url}}


def test_state_operations_of_a_cold_and_a_warm_picture(
    tmp_path: Path, cache_config: dict[str, t.Any]
) -> None:
    page = make_page(tmp_path, **cache_config)
    counts = counting(page)
    page.picture(args=", widths=[100, 200]")
    # The picture's record (none yet; the output's size is foreseen from the source's
    # header), then the state of its 3 formats x 3 widths (100, 200 and the output's
    # own: 400); each generated (read, lock, complete; the first decodes the source for
    # every one); each of the 8 candidates writes the picture's record, and adds itself
    # to the list of those made (read, write), so that deleting the source finds them.
    assert counts == {"get": 1 + 9 + 9 + 8, "acquire": 9, "complete": 9, "set": 8 + 8}, counts
    for fresh in (False, True):
        if fresh:
            with page.app.app_context():
                page.app.extensions[STATE_KEY].file_memo.clear()  # as in a new process
        counts.clear()
        page.picture(args=", widths=[100, 200]")
        # The states written above made what was rendered stale: the picture's record
        # (the output's size now known), then the state of each candidate.
        assert counts == {"get": 1 + 9}, counts
    for _ in range(2):
        counts.clear()
        page.picture(args=", widths=[100, 200]")
        # Remembered: each candidate's state, read once (JustInTime checks them all).
        assert counts == {"get": 9}, counts


def test_a_remembered_optimistic_picture_costs_no_state_operation(tmp_path: Path) -> None:
    page = make_page(tmp_path, IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=OPTIMISTIC)
    with page.app.app_context():
        from flask_imagekit.templating import generateimage

        generateimage("t:photo", source="photos/p.jpg").generate()
    counts = counting(page)
    first = page.picture()
    assert counts == {"get": 2}, counts  # the picture's record, then the spec's own file
    counts.clear()
    assert page.picture() == first
    assert counts == {}, counts


def test_on_request_renders_without_generating_and_each_url_makes_its_file(
    tmp_path: Path,
) -> None:
    page = make_page(tmp_path, **strategy_config(ON_REQUEST))
    sources, img = parse_picture(page.picture())
    assert page.cache_files() == []
    # The output's size is foreseen from the source's header: sized, clamped, no shift.
    assert (img["width"], img["height"]) == ("400", "267")
    offered = [("AVIF", sources[0][1]), ("WEBP", sources[1][1]), ("JPEG", img["srcset"])]
    for fmt, value in offered:
        assert [width for _, width in parse_srcset(value)] == [100, 200, 300, 400]
        for url, width in parse_srcset(value):
            served = page.fetch(url)
            assert (served.format, served.width) == (fmt, width), url
    assert len(page.cache_files()) == 12
    tampered = parse_srcset(img["srcset"])[0][0].replace("/p/", "/q/")
    with page.app.test_client() as client:
        assert client.get(tampered).status_code == 404


@dataclasses.dataclass(frozen=True)
class Mirror:
    """A processor that tells nothing of its output size (it has no ``cost()``)."""

    def process(self, img: Image.Image) -> Image.Image:
        return ImageOps.mirror(img)


class Unforeseeable(ImageSpec):
    processors = [ResizeToFit(400, upscale=False), Mirror()]  # noqa: RUF012
    format = "JPEG"


def test_on_request_offers_an_output_of_unforeseeable_size_full_size_unsized(
    tmp_path: Path,
) -> None:
    page = make_page(tmp_path, **strategy_config(ON_REQUEST))
    with page.app.app_context():
        page.app.extensions["imagekit"].register.generator("t:mirror", Unforeseeable)
    markup = page.render('{{ picture("t:mirror", "photos/p.jpg", widths=[100, 300, 1000]) }}')
    sources, img = parse_picture(markup)
    assert page.cache_files() == []
    # Which widths would be narrower than the output is unknown until it is made, and
    # widths it does not reach would all be the same pixels: one full-size file per format.
    assert "width" not in img
    assert "height" not in img
    assert "srcset" not in img
    assert "sizes" not in img
    assert [(kind, sizes) for kind, _, sizes in sources] == [
        ("image/avif", ""),
        ("image/webp", ""),
    ]
    own = page.render('{{ srcset("t:mirror", "photos/p.jpg", widths=[100, 300, 1000]) }}')
    assert html.unescape(own) == img["src"]
    for (_, url, _), fmt in zip(sources, ("AVIF", "WEBP"), strict=True):
        assert " " not in url
        served = page.fetch(url)
        assert (served.format, served.size) == (fmt, (400, 267))
    assert page.fetch(img["src"]).size == (400, 267)


# What survives, what is let go, what is never offered ----------------------------------------


def offered_urls(markup: str) -> list[str]:
    sources, img = parse_picture(markup)
    values = [value for _, value, _ in sources] + [img["srcset"]]
    return [url for value in values for url, _ in parse_srcset(value)]


@pytest.mark.parametrize("strategy", [None, ON_REQUEST], ids=["just-in-time", "on-request"])
def test_a_lost_blur_preview_comes_back_from_a_candidate_once_without_generating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy: str | None
) -> None:
    page = make_page(tmp_path, **strategy_config(strategy))
    args = ', widths=[100, 200], placeholder="blur"'
    for url in offered_urls(page.picture(args=args)):
        page.fetch(url)  # OnRequest: each file is made when a browser asks for it
    _, img = parse_picture(page.picture(args=args))
    assert "background-image:url(data:image/" in img["style"]
    made = {path: path.stat().st_mtime_ns for path in page.cache_files()}
    assert len(made) == 9
    # The state cache is emptied (a restart, an eviction, FLUSHDB); the files stay.
    page.states.cache.clear()
    with page.app.app_context():
        state = page.app.extensions[STATE_KEY]
        state.file_memo.clear()
        cache_reads = count_calls(monkeypatch, state.storage, "open")
    _, img = parse_picture(page.picture(args=args))
    assert "background-image:url(data:image/" in img["style"]
    assert {path: path.stat().st_mtime_ns for path in page.cache_files()} == made
    assert cache_reads["open"] == 1  # the smallest candidate, read back once
    with page.app.app_context():
        state.file_memo.clear()
    assert parse_picture(page.picture(args=args))[1]["style"] == img["style"]
    assert cache_reads["open"] == 1


class Upscaling(ImageSpec):
    """1000 pixels wide, whatever the source: a smaller one is scaled up."""

    processors = [ResizeToFit(1000)]  # noqa: RUF012
    format = "JPEG"


@pytest.mark.parametrize("strategy", [None, ON_REQUEST], ids=["just-in-time", "on-request"])
def test_no_candidate_is_wider_than_a_source_the_spec_scales_up(
    tmp_path: Path, strategy: str | None
) -> None:
    page = make_page(tmp_path, **strategy_config(strategy))
    with page.app.app_context():
        page.app.extensions["imagekit"].register.generator("t:upscaling", Upscaling)
    save_source(page.media_root, "photos/small.jpg", photo((300, 200)))
    template = '{{ picture("t:upscaling", "photos/small.jpg", widths=[100, 480, 800]) }}'
    for _ in range(2):  # before the candidates exist, then from what they recorded
        with page.app.app_context():
            page.app.extensions[STATE_KEY].file_memo.clear()
        sources, img = parse_picture(page.render(template))
        assert (img["width"], img["height"]) == ("1000", "667")  # the spec's output
        assert img["sizes"] == "(max-width: 1000px) 100vw, 1000px"
        for value in [value for _, value, _ in sources] + [img["srcset"]]:
            assert [width for _, width in parse_srcset(value)] == [100, 300]
            for url, width in parse_srcset(value):
                assert page.fetch(url).width == width
        assert page.fetch(img["src"]).width == 1000


def test_candidates_wider_than_the_source_are_left_out_of_the_decode(
    page: Page, monkeypatch: pytest.MonkeyPatch
) -> None:
    with page.app.app_context():
        page.app.extensions["imagekit"].register.generator("t:mirror", Unforeseeable)
    decoded: list[list[int | None]] = []
    original = layout.decode_together

    def spy(specs: t.Iterable[t.Any]) -> None:
        specs = list(specs)
        decoded.append(sorted((getattr(spec, "width", None) or 0) for spec in specs))
        original(specs)

    monkeypatch.setattr(layout, "decode_together", spy)
    # Its output size is unknown until it is made, its source 600 pixels wide.
    sources, img = parse_picture(
        page.render('{{ picture("t:mirror", "photos/p.jpg", widths=[100, 2000, 3000]) }}')
    )
    assert decoded
    # Only the source's own width may turn out wider than the output, once it is known.
    assert all(width <= 600 for widths in decoded for width in widths), decoded
    assert [width for _, width in parse_srcset(img["srcset"])] == [100, 400]
    assert len(page.cache_files()) == 6


class ElsewhereMeanwhile(Simple):
    """Another process makes one candidate between the page's lookup and its generation."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def generate(self, file: t.Any, force: bool = False) -> tuple[int, int] | None:
        self.calls += 1
        if self.calls == 3:
            file.storage.save(file.name, io.BytesIO(b"made elsewhere"))
            self.set_state(file, CacheFileState.EXISTS)
        return super().generate(file, force)


def test_a_candidate_made_elsewhere_meanwhile_lets_go_of_the_shared_decode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The specs and shares made by this render (never a scan of every object in the
    # process: other tests' objects, lazy proxies among them, are none of its business).
    specs: weakref.WeakSet[ImageSpec] = weakref.WeakSet()
    shares: weakref.WeakSet[Share] = weakref.WeakSet()
    for cls, made in ((ImageSpec, specs), (Share, shares)):
        init = cls.__init__

        def recording(
            self: t.Any, *args: t.Any, _init: t.Any = init, _made: t.Any = made, **kwargs: t.Any
        ) -> None:
            _init(self, *args, **kwargs)
            _made.add(self)

        monkeypatch.setattr(cls, "__init__", recording)
    backend = ElsewhereMeanwhile()
    page = make_page(tmp_path, IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=backend)
    page.picture(args=', widths=[100, 200], formats=["WEBP"]')
    assert backend.calls > 3
    assert len(specs) > 3
    # Every spec let go of its share of the decode (see ImageSpec.discard): none of those
    # the remembered picture keeps holds an image or an output encoded ahead.
    assert [spec for spec in specs if "_share" in vars(spec)] == []
    assert [share.alive() for share in shares] == [0] * len(shares)


def test_a_picture_pending_in_debug_mode_is_not_remembered(tmp_path: Path) -> None:
    page = make_page(tmp_path, IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=Simple(lock_wait=0))
    template = '{{ picture("t:mirror", "photos/p.jpg") }}'
    with page.app.app_context():
        state = page.app.extensions[STATE_KEY]
        page.app.extensions["imagekit"].register.generator("t:mirror", Unforeseeable)
        base = state.cachefile("t:mirror", source="photos/p.jpg")
        lock = base.cachefile_backend.get_lock_key(base)
        assert state.states.acquire(lock, "another process", 60)
    pending = page.render(template)
    assert IMG_TAG.fullmatch(pending), pending  # its own URL alone: on its way
    with page.app.app_context():
        state.states.release(lock, "another process")
    assert page.render(template).startswith("<picture>")


@pytest.mark.redis
def test_the_candidates_made_in_several_processes_are_all_recorded(
    tmp_path: Path, redis_url: str
) -> None:
    config = {"IMAGEKIT_CACHE_BACKEND": {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": redis_url}}
    first = make_page(tmp_path, **config)
    second = make_page(tmp_path, **config)  # another process, with its own local tier
    keys = [(100, "WEBP"), (200, "WEBP"), (100, None)]
    for page, key in zip((first, second, first), keys, strict=True):
        with page.app.app_context():
            state = page.app.extensions[STATE_KEY]
            state.cachefile("t:photo", source="photos/p.jpg", candidate=key).generate()
    for page in (first, second):
        with page.app.app_context():
            state = page.app.extensions[STATE_KEY]
            base = state.cachefile("t:photo", source="photos/p.jpg")
            assert sorted(base.cachefile_backend.candidates_made(base), key=str) == sorted(
                keys, key=str
            )
