"""Jinja globals ``generateimage`` and ``thumbnail``, rendered through real templates."""

from __future__ import annotations

import re
import typing as t
from pathlib import Path

import pytest
from flask import Flask, render_template_string
from flask_caching import Cache
from PIL import Image
from pilkit.processors import Thumbnail as PilkitThumbnail

from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.cachefiles import ImageCacheFile
from flask_imagekit.exceptions import ImageKitError, ImproperlyConfigured, MissingSource
from flask_imagekit.processors import ResizeToFill
from flask_imagekit.storage import FileSystemStorage
from flask_imagekit.templating import parse_dimensions, thumbnail

from .conftest import fetch_image as fetch
from .conftest import photo, psnr, save_source

IMG_TAG = re.compile(r'^<img src="(/media/CACHE/images/[^"]+)" width="(\d+)" height="(\d+)">$')


class Thumb(ImageSpec):
    processors = [ResizeToFill(100, 50)]
    format = "JPEG"


@pytest.fixture
def thumb_id(imagekit: ImageKit) -> str:
    imagekit.register.generator("myapp:thumbnail", Thumb)
    return "myapp:thumbnail"


def render(app: Flask, source: str, **context: t.Any) -> str:
    with app.test_request_context():
        return render_template_string(source, **context)


def served_size(app: Flask, html: str) -> tuple[int, int]:
    """The pixel size of the image an ``<img src=..>`` tag points to."""
    match = re.search(r'src="([^"]+)"', html)
    assert match, html
    return fetch(app, match.group(1)).size


# generateimage -----------------------------------------------------------------------


def test_generateimage_renders_img_tag_and_serves_file(
    app: Flask, media_root: Path, thumb_id: str
) -> None:
    name = save_source(media_root, "photos/me.jpg", photo((800, 600)))
    html = render(app, '{{ generateimage("myapp:thumbnail", source=name) }}', name=name)
    match = IMG_TAG.match(html)
    assert match, html
    url, width, height = match.groups()
    assert (width, height) == ("100", "50")
    assert url.startswith("/media/CACHE/images/photos/me/")
    assert url.endswith(".jpg")
    img = fetch(app, url)
    assert img.size == (100, 50)
    assert img.format == "JPEG"
    # The file is on disk, under the media root.
    assert (media_root / url.removeprefix("/media/")).is_file()


def test_generateimage_same_source_same_url(app: Flask, media_root: Path, thumb_id: str) -> None:
    name = save_source(media_root, "a.jpg", photo((300, 200)))
    template = '{{ generateimage("myapp:thumbnail", source=name) }}'
    first = render(app, template, name=name)
    second = render(app, template, name=name)
    assert first == second
    other = save_source(media_root, "b.jpg", photo((300, 200)))
    assert render(app, template, name=other) != first


def test_generateimage_attrs_are_escaped(app: Flask, media_root: Path, thumb_id: str) -> None:
    name = save_source(media_root, "me.jpg", photo((400, 300)))
    html = render(
        app,
        '{{ generateimage("myapp:thumbnail", source=name, '
        'attrs={"alt": alt, "id": "pic", "title": title, "data-x": "1"}) }}',
        name=name,
        alt='"<script>alert(1)</script>"',
        title="Tom & Jerry's <b>",
    )
    assert html.startswith('<img src="/media/CACHE/images/me/')
    assert ' width="100" height="50" ' in html
    assert ' alt="&#34;&lt;script&gt;alert(1)&lt;/script&gt;&#34;"' in html
    assert ' id="pic"' in html
    assert ' title="Tom &amp; Jerry&#39;s &lt;b&gt;"' in html
    assert ' data-x="1"' in html
    assert "<script>" not in html
    assert "<b>" not in html
    # Exactly one tag, and every attribute value is quoted.
    assert html.count("<") == 1
    assert html.endswith(">")
    attrs = re.findall(r' ([\w-]+)="([^"]*)"', html)
    assert [key for key, _ in attrs] == ["src", "width", "height", "alt", "id", "title", "data-x"]


def test_generateimage_boolean_and_none_attrs(app: Flask, media_root: Path, thumb_id: str) -> None:
    name = save_source(media_root, "me.jpg", photo((400, 300)))
    html = render(
        app,
        '{{ generateimage("myapp:thumbnail", source=name, '
        'attrs={"hidden": true, "title": none, "draggable": false, "alt": ""}) }}',
        name=name,
    )
    assert re.search(r" hidden(?=[ >])", html)
    assert "title" not in html
    assert "draggable" not in html
    assert ' alt=""' in html


@pytest.mark.parametrize(
    ("attrs", "present", "absent"),
    [
        ({"width": 50}, ['width="50"'], ["height="]),
        ({"height": 25}, ['height="25"'], ["width="]),
        ({"width": "10", "height": "5"}, ['width="10"', 'height="5"'], []),
        ({"alt": "x"}, ['width="100"', 'height="50"'], []),
    ],
)
def test_width_height_only_when_user_gave_neither(
    app: Flask,
    media_root: Path,
    thumb_id: str,
    attrs: dict[str, t.Any],
    present: list[str],
    absent: list[str],
) -> None:
    name = save_source(media_root, "me.jpg", photo((400, 300)))
    html = render(
        app,
        '{{ generateimage("myapp:thumbnail", source=name, attrs=attrs) }}',
        name=name,
        attrs=attrs,
    )
    for text in present:
        assert html.count(text) == 1, html
    for text in absent:
        assert text not in html, html
    assert html.count("width=") <= 1
    assert html.count("height=") <= 1
    # The file exists even when the size was not asked for.
    assert served_size(app, html) == (100, 50)


def test_attribute_names_cannot_inject_attributes(
    app: Flask, media_root: Path, thumb_id: str
) -> None:
    name = save_source(media_root, "me.jpg", photo((400, 300)))
    try:
        html = render(
            app,
            '{{ generateimage("myapp:thumbnail", source=name, attrs={key: "x"}) }}',
            name=name,
            key="x onerror=alert(1) data-y",
        )
    except (ValueError, ImageKitError):
        return  # refusing such a key is fine (Jinja's xmlattr raises ValueError)
    assert " onerror=" not in html, html


def test_set_exposes_url_width_height(app: Flask, media_root: Path, thumb_id: str) -> None:
    name = save_source(media_root, "me.jpg", photo((800, 600)))
    out = render(
        app,
        '{% set th = generateimage("myapp:thumbnail", source=name) %}'
        '<a href="{{ th.url }}">{{ th.width }}x{{ th.height }}</a>',
        name=name,
    )
    match = re.fullmatch(r'<a href="(/media/CACHE/images/me/[0-9a-f]+\.jpg)">100x50</a>', out)
    assert match, out
    assert fetch(app, match.group(1)).size == (100, 50)


def test_generateimage_unknown_id_names_it(app: Flask, imagekit: ImageKit) -> None:
    with pytest.raises(ImageKitError, match="myapp:nope"):
        render(app, '{{ generateimage("myapp:nope", source="x.jpg") }}')


def test_jinja_env_from_string_in_app_context(app: Flask, media_root: Path, thumb_id: str) -> None:
    name = save_source(media_root, "me.jpg", photo((800, 600)))
    with app.app_context():
        html = app.jinja_env.from_string(
            '{{ generateimage("myapp:thumbnail", source=name) }}'
        ).render(name=name)
    assert IMG_TAG.match(html), html


# thumbnail -----------------------------------------------------------------------------


def pilkit_size(
    size: tuple[int, int], width: int | None, height: int | None, **kw: t.Any
) -> t.Any:
    return PilkitThumbnail(width, height, **kw).process(Image.new("RGB", size)).size


THUMBNAIL_CASES = [
    # (source size, dimensions, kwargs, expected size)
    ((800, 600), "100x50", {}, (100, 50)),
    ((800, 600), "100x", {}, (100, 75)),
    ((800, 600), "x50", {}, (67, 50)),  # 66.67 rounded, as pilkit's ResizeToFit
    ((800, 600), "1000x1000", {}, (800, 600)),  # no upscaling by default
    ((800, 600), "1000x", {}, (800, 600)),
    ((800, 600), "1000x", {"upscale": True}, (1000, 750)),
    ((800, 600), "1000x1000", {"upscale": True}, (1000, 1000)),
    ((800, 600), "100x50", {"anchor": "tl"}, (100, 50)),
    ((800, 600), "100x50", {"crop": True}, (100, 50)),
    ((800, 600), "100x50", {"crop": False}, (67, 50)),
    ((800, 600), "100x100", {"crop": False}, (100, 75)),
    ((600, 800), "x100", {}, (75, 100)),
    ((40, 30), "100x50", {}, (40, 30)),
    ((40, 30), "100x", {}, (40, 30)),
    ((40, 30), "100x", {"upscale": True}, (100, 75)),
    ((40, 30), "100x50", {"upscale": True}, (100, 50)),
    ((333, 333), "x100", {}, (100, 100)),
    ((301, 200), "x100", {}, (150, 100)),  # 150.5 -> round half to even, as pilkit
]


@pytest.mark.parametrize(("size", "dims", "kwargs", "expected"), THUMBNAIL_CASES)
def test_thumbnail_sizes_follow_pilkit(
    app: Flask,
    imagekit: ImageKit,
    media_root: Path,
    size: tuple[int, int],
    dims: str,
    kwargs: dict[str, t.Any],
    expected: tuple[int, int],
) -> None:
    width, height = parse_dimensions(dims)
    assert pilkit_size(size, width, height, **kwargs) == expected  # the oracle agrees
    name = save_source(media_root, "src.png", photo(size))
    args = "".join(f", {key}={value!r}" for key, value in kwargs.items())
    html = render(app, f"{{{{ thumbnail({dims!r}, name{args}) }}}}", name=name)
    match = IMG_TAG.match(html)
    assert match, html
    assert (int(match.group(2)), int(match.group(3))) == expected
    img = fetch(app, match.group(1))
    assert img.size == expected
    assert img.format == "PNG"


@pytest.mark.parametrize("anchor", ["tl", "br"])
def test_thumbnail_anchor_crops_like_pilkit(
    app: Flask, imagekit: ImageKit, media_root: Path, anchor: str
) -> None:
    source = photo((800, 600))
    name = save_source(media_root, "src.png", source)
    html = render(app, f'{{{{ thumbnail("100x50", name, anchor="{anchor}") }}}}', name=name)
    ours = served = fetch(app, re.search(r'src="([^"]+)"', html).group(1))  # type: ignore[union-attr]
    assert served.size == (100, 50)
    expected = {a: PilkitThumbnail(100, 50, anchor=a).process(source) for a in ("tl", "br")}
    other = "br" if anchor == "tl" else "tl"
    assert psnr(ours, expected[anchor]) > 30
    assert psnr(ours, expected[anchor]) > psnr(ours, expected[other]) + 5


def test_thumbnail_attrs(app: Flask, imagekit: ImageKit, media_root: Path) -> None:
    name = save_source(media_root, "me.jpg", photo((800, 600)))
    html = render(app, '{{ thumbnail("100x50", name, attrs={"alt": "Me & <you>"}) }}', name=name)
    assert re.fullmatch(
        r'<img src="/media/CACHE/images/me/[0-9a-f]+\.jpg" width="100" height="50" '
        r'alt="Me &amp; &lt;you&gt;">',
        html,
    ), html


def test_thumbnail_set_and_attributes(app: Flask, imagekit: ImageKit, media_root: Path) -> None:
    name = save_source(media_root, "me.jpg", photo((800, 600)))
    out = render(
        app, '{% set th = thumbnail("x50", name) %}{{ th.width }}x{{ th.height }}', name=name
    )
    assert out == "67x50"


def test_thumbnail_custom_generator_id(app: Flask, imagekit: ImageKit, media_root: Path) -> None:
    received: list[dict[str, t.Any]] = []

    class Square(ImageSpec):
        format = "PNG"

        def __init__(self, width: int | None = None, height: int | None = None, **kwargs: t.Any):
            received.append(dict(kwargs, width=width, height=height))
            side = width or height or 10
            self.processors = [ResizeToFill(side, side)]
            super().__init__(source=kwargs["source"])

    imagekit.register.generator("myapp:square", Square)
    name = save_source(media_root, "me.jpg", photo((800, 600)))
    html = render(
        app, '{{ thumbnail("60x20", name, generator_id="myapp:square", upscale=True) }}', name=name
    )
    match = IMG_TAG.match(html)
    assert match, html
    assert match.group(1).endswith(".png")
    assert match.groups()[1:] == ("60", "60")
    img = fetch(app, match.group(1))
    assert (img.size, img.format) == ((60, 60), "PNG")
    assert received[-1]["width"] == 60
    assert received[-1]["height"] == 20
    assert received[-1]["upscale"] is True
    assert received[-1]["source"] == name
    # A different generator gives a different file than imagekit:thumbnail.
    default = render(app, '{{ thumbnail("60x20", name) }}', name=name)
    assert re.search(r'src="([^"]+)"', default).group(1) != match.group(1)  # type: ignore[union-attr]


def test_thumbnail_custom_generator_gets_only_given_kwargs(
    app: Flask, imagekit: ImageKit, media_root: Path
) -> None:
    class Plain(ImageSpec):
        format = "PNG"

        def __init__(self, width: int | None, height: int | None, source: t.Any) -> None:
            self.processors = [ResizeToFill(width or 10, height or 10)]
            super().__init__(source=source)

    imagekit.register.generator("myapp:plain", Plain)
    name = save_source(media_root, "me.jpg", photo((800, 600)))
    html = render(app, '{{ thumbnail("30x20", name, generator_id="myapp:plain") }}', name=name)
    assert IMG_TAG.match(html), html
    assert served_size(app, html) == (30, 20)


@pytest.mark.parametrize("dims", ["axb", "0x10", "10x0", "x", "", "10x10x10", "-5x10", "10"])
def test_thumbnail_bad_dimensions_name_the_value(
    app: Flask, imagekit: ImageKit, media_root: Path, dims: str
) -> None:
    name = save_source(media_root, "me.jpg", photo((80, 60)))
    with pytest.raises(ImageKitError) as info:
        render(app, "{{ thumbnail(dims, name) }}", dims=dims, name=name)
    assert repr(dims) in str(info.value)
    # Nothing was generated.
    assert not (media_root / "CACHE").exists()


def test_thumbnail_crop_needs_both_dimensions(
    app: Flask, imagekit: ImageKit, media_root: Path
) -> None:
    name = save_source(media_root, "me.jpg", photo((80, 60)))
    with pytest.raises(ImageKitError, match="both"):
        render(app, '{{ thumbnail("100x", name, anchor="tl") }}', name=name)
    with pytest.raises(ImageKitError, match="anchor"):
        render(app, '{{ thumbnail("100x50", name, anchor="tl", crop=False) }}', name=name)


def test_thumbnail_missing_source_raises_imagekit_error(
    app: Flask, imagekit: ImageKit, media_root: Path
) -> None:
    with pytest.raises(ImageKitError, match="nope.jpg"):
        render(app, '{{ thumbnail("100x50", "nope.jpg") }}')


def test_missing_source_is_falsy_and_rendering_it_explains(app: Flask, thumb_id: str) -> None:
    out = render(
        app,
        '{% set th = generateimage("myapp:thumbnail", source=none) %}'
        "{% if th %}{{ th }}{% else %}no image{% endif %}",
    )
    assert out == "no image"
    out = render(app, '{% set th = thumbnail("10x10", "") %}{{ "yes" if th else "no" }}')
    assert out == "no"
    # A NULL source is no error: it renders nothing (debug), only its url raises.
    assert render(app, '[{{ generateimage("myapp:thumbnail", source=none) }}]') == "[]"
    with pytest.raises(MissingSource, match="source"):
        render(app, '{{ generateimage("myapp:thumbnail", source=none).url }}')


# Model spec attributes (a plain object holding a cache file) --------------------------


def test_object_attribute_cache_file_renders_like_generateimage(
    app: Flask, media_root: Path, thumb_id: str
) -> None:
    name = save_source(media_root, "avatars/me.jpg", photo((800, 600)))

    class Profile:
        def __init__(self, avatar: str) -> None:
            self.avatar = avatar
            self.avatar_thumbnail = ImageCacheFile(Thumb(source=avatar))

    profile = Profile(name)
    html = render(app, "{{ profile.avatar_thumbnail }}", profile=profile)
    match = IMG_TAG.match(html)
    assert match, html
    assert match.groups()[1:] == ("100", "50")
    assert html == render(app, '{{ generateimage("myapp:thumbnail", source=name) }}', name=name)
    assert fetch(app, match.group(1)).size == (100, 50)
    out = render(
        app,
        "{{ profile.avatar_thumbnail.url }} "
        "{{ profile.avatar_thumbnail.width }}x{{ profile.avatar_thumbnail.height }} "
        '{{ profile.avatar_thumbnail.img_tag({"alt": "A"}) }}',
        profile=profile,
    )
    url = match.group(1)
    assert out == f'{url} 100x50 <img src="{url}" width="100" height="50" alt="A">'


def test_autoescape_off_still_renders_tag(app: Flask, media_root: Path, thumb_id: str) -> None:
    name = save_source(media_root, "me.jpg", photo((800, 600)))
    out = render(
        app,
        '{% autoescape false %}{{ generateimage("myapp:thumbnail", source=name) }}'
        "{% endautoescape %}",
        name=name,
    )
    # str() of a cache file is its URL, as in django-imagekit.
    assert re.fullmatch(r"/media/CACHE/images/me/[0-9a-f]+\.jpg", out), out


# Cost of rendering existing files -----------------------------------------------------

PAGE_SIZE = 50
PAGES = {
    "thumbnail": '{% for name in names %}{{ thumbnail("40x30", name) }}\n{% endfor %}',
    "generateimage": (
        '{% for name in names %}{{ generateimage("myapp:thumbnail", source=name) }}\n{% endfor %}'
    ),
}


class Spy:
    """Counts the storage calls and state cache ``get`` calls made while active."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, app: Flask, imagekit: ImageKit) -> None:
        self.storage: dict[str, int] = {}
        self.gets = 0
        for method in ("exists", "open", "size", "save", "delete", "listdir"):
            original = getattr(FileSystemStorage, method)
            monkeypatch.setattr(FileSystemStorage, method, self._count(method, original))
        cache = imagekit.state(app).state_cache
        original_get = cache.get

        def get(key: str) -> t.Any:
            self.gets += 1
            return original_get(key)

        monkeypatch.setattr(cache, "get", get)

    def _count(self, method: str, original: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
        def counted(*args: t.Any, **kwargs: t.Any) -> t.Any:
            self.storage[method] = self.storage.get(method, 0) + 1
            return original(*args, **kwargs)

        return counted


def make_page_sources(media_root: Path) -> list[str]:
    small = photo((80, 60))
    return [save_source(media_root, f"page/{i:02d}.jpg", small) for i in range(PAGE_SIZE)]


@pytest.mark.parametrize("helper", sorted(PAGES))
def test_render_existing_files_justintime_costs_no_storage_call(
    app: Flask,
    imagekit: ImageKit,
    media_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    helper: str,
) -> None:
    imagekit.register.generator("myapp:thumbnail", Thumb)
    names = make_page_sources(media_root)
    first = render(app, PAGES[helper], names=names)
    assert first.count("<img ") == PAGE_SIZE
    assert len(set(re.findall(r'src="([^"]+)"', first))) == PAGE_SIZE

    spy = Spy(monkeypatch, app, imagekit)
    second = render(app, PAGES[helper], names=names)
    assert second == first
    assert spy.storage == {}, f"storage calls on a page of existing files: {spy.storage}"
    assert spy.gets <= PAGE_SIZE, f"{spy.gets} state cache gets for {PAGE_SIZE} images"


@pytest.mark.parametrize("helper", sorted(PAGES))
def test_render_existing_files_optimistic_costs_no_storage_call(
    media_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, helper: str
) -> None:
    app = Flask("optimistic", instance_path=str(tmp_path / "instance"))
    app.config.update(
        TESTING=True,
        IMAGEKIT_MEDIA_ROOT=str(media_root),
        IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY="flask_imagekit.cachefiles.strategies.Optimistic",
    )
    imagekit = ImageKit(app)
    imagekit.register.generator("myapp:thumbnail", Thumb)
    names = make_page_sources(media_root)
    # Optimistic never generates on access: generate first, as a source save would.
    with app.app_context():
        from flask_imagekit.templating import generateimage, thumbnail

        for name in names:
            file = (
                thumbnail("40x30", name)
                if helper == "thumbnail"
                else generateimage("myapp:thumbnail", source=name)
            )
            file.generate()
    first = render(app, PAGES[helper], names=names)
    assert first.count("<img ") == PAGE_SIZE
    expected = ' width="40" height="30">' if helper == "thumbnail" else ' width="100" height="50">'
    assert first.count(expected) == PAGE_SIZE

    spy = Spy(monkeypatch, app, imagekit)
    second = render(app, PAGES[helper], names=names)
    assert second == first
    assert spy.storage == {}, f"storage calls on a page of existing files: {spy.storage}"
    assert spy.gets <= PAGE_SIZE, f"{spy.gets} state cache gets for {PAGE_SIZE} images"


def test_render_cost_sanity_spy_sees_generation(
    app: Flask, imagekit: ImageKit, media_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spy is not blind: generating a page does hit the storage."""
    names = make_page_sources(media_root)[:3]
    spy = Spy(monkeypatch, app, imagekit)
    render(app, PAGES["thumbnail"], names=names)
    assert spy.storage.get("save") == 3
    assert spy.gets >= 3


# thumbnail(): output format and allowed sizes ------------------------------------------


def test_thumbnail_takes_a_format(app: Flask, imagekit: ImageKit, media_root: Path) -> None:
    save_source(media_root, "photos/a.jpg")
    with app.app_context():
        file = thumbnail("100x50", "photos/a.jpg", format="WEBP")
        file.generate()
        assert file.name.endswith(".webp")
        with file.open() as fp:
            assert Image.open(fp).format == "WEBP"
        assert thumbnail("100x50", "photos/a.jpg").name != file.name


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


class OptimisticOwnBackend(ImageSpec):
    processors = [ResizeToFill(60, 40)]  # noqa: RUF012
    format = "JPEG"
    cachefile_strategy = "flask_imagekit.cachefiles.strategies.Optimistic"
    # Imported only where files are generated (a worker's module, say).
    cachefile_backend = "a_module_this_process_does_not_have.Backend"


def test_an_optimistic_url_needs_neither_the_backend_nor_the_state_cache(app: Flask) -> None:
    # A Cache set up on another app only: this app's state cache cannot be opened.
    ImageKit(app, cache=Cache(config={"CACHE_TYPE": "SimpleCache"})).register.generator(
        "tests:own-backend", OptimisticOwnBackend
    )
    template = '{{ generateimage("tests:own-backend", source="photos/a.jpg").url }}'
    with app.test_request_context():
        for _ in range(2):  # the second render comes from the remembered files
            url = render_template_string(template)
            assert re.fullmatch(r"/media/CACHE/images/photos/a/[0-9a-f]+\.jpg", url)
