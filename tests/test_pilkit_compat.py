"""SetOpacity and ImageOverlay as pilkit has them: signatures, errors and pixels.

Each result is checked against a reference built the plain way from pilkit's
definition (a per-pixel loop, or ``Image.new`` + ``paste`` + ``alpha_composite``):
the pilkit release on PyPI (3.0) does not ship these two processors.
"""

from __future__ import annotations

import inspect
import typing as t

import pytest
from PIL import Image, ImageDraw

import flask_imagekit.processors as fk
from flask_imagekit.exceptions import ImproperlyConfigured
from flask_imagekit.processors import resolve_palette
from flask_imagekit.specs.hashing import digest

# --- images ------------------------------------------------------------------------------


def picture(mode: str = "RGB", size: tuple[int, int] = (60, 40)) -> Image.Image:
    """A small picture whose every pixel differs, with a varied alpha in alpha modes."""
    w, h = size
    red = Image.linear_gradient("L").resize(size)
    green = Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90).resize(size)
    blue = Image.radial_gradient("L").resize(size)
    img = Image.merge("RGB", (red, green, blue))
    ImageDraw.Draw(img).rectangle((w // 4, h // 4, w // 2, h // 2), fill=(240, 30, 10))
    if mode in ("RGBA", "LA", "PA"):
        img.putalpha(green.point(lambda v: 40 + v * 215 // 255))
    if mode == "P":
        return img.convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    return img.convert(mode)


def transparent_palette_picture() -> Image.Image:
    """A palette image whose index 0 is transparent."""
    img = picture("P")
    img.info["transparency"] = 0
    return img


def with_max_alpha(max_a: int, size: tuple[int, int] = (9, 7)) -> Image.Image:
    """An RGBA image whose alphas run from 0 up to exactly ``max_a``."""
    img = picture("RGB", size).convert("RGBA")
    count = size[0] * size[1]
    img.putalpha(Image.frombytes("L", size, bytes(i * max_a // (count - 1) for i in range(count))))
    return img


def watermark(mode: str = "RGBA") -> Image.Image:
    """A 24x16 overlay: half-transparent red with an opaque blue square."""
    mark = Image.new("RGBA", (24, 16), (255, 0, 0, 150))
    ImageDraw.Draw(mark).rectangle((4, 4, 11, 11), fill=(0, 0, 255, 255))
    ImageDraw.Draw(mark).rectangle((16, 2, 20, 6), fill=(0, 255, 0, 0))
    if mode == "P":
        return mark.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    return mark.convert(mode)


def pixels(img: Image.Image) -> list[t.Any]:
    """Every pixel of ``img``, row by row."""
    return [img.getpixel((x, y)) for y in range(img.height) for x in range(img.width)]


# --- references ---------------------------------------------------------------------------


def reference_set_opacity(img: Image.Image, max_alpha: int) -> Image.Image:
    """SetOpacity done one pixel at a time."""
    rgba = img.convert("RGBA")
    max_a = max(a for *_, a in pixels(rgba))
    out = rgba.copy()
    for y in range(rgba.height):
        for x in range(rgba.width):
            r, g, b, a = rgba.getpixel((x, y))
            alpha = int(a * max_alpha / max_a) if max_a else a
            out.putpixel((x, y), (r, g, b, alpha))
    return out


def reference_overlay(
    img: Image.Image, overlay: Image.Image, position: tuple[int, int]
) -> Image.Image:
    """ImageOverlay done with a transparent layer, paste and alpha_composite."""
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    layer.paste(overlay.convert("RGBA"), position)
    composed = Image.alpha_composite(img.convert("RGBA"), layer)
    return composed if img.mode == "RGBA" else composed.convert(img.mode)


# --- SetOpacity ---------------------------------------------------------------------------


def test_set_opacity_signature_is_pilkits() -> None:
    params = list(inspect.signature(fk.SetOpacity).parameters.values())
    assert [p.name for p in params] == ["max_alpha"]
    assert params[0].default == 255
    assert params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert fk.SetOpacity() == fk.SetOpacity(255) == fk.SetOpacity(max_alpha=255)


@pytest.mark.parametrize("max_alpha", [0.5, 128.0, "128", None, True, (128,)])
def test_set_opacity_max_alpha_must_be_an_int(max_alpha: t.Any) -> None:
    with pytest.raises(TypeError, match="max_alpha must be an int") as info:
        fk.SetOpacity(max_alpha)
    assert isinstance(info.value, ImproperlyConfigured)


@pytest.mark.parametrize("max_alpha", [-1, 256, 1000])
def test_set_opacity_max_alpha_must_be_0_to_255(max_alpha: int) -> None:
    with pytest.raises(ValueError, match=r"from 0 \(transparent\) to 255") as info:
        fk.SetOpacity(max_alpha)
    assert isinstance(info.value, ImproperlyConfigured)


@pytest.mark.parametrize("max_alpha", [0, 1, 64, 127, 128, 129, 200, 255])
def test_set_opacity_rescales_the_largest_alpha_to_max_alpha(max_alpha: int) -> None:
    img = with_max_alpha(128)
    result = fk.SetOpacity(max_alpha).process(img)
    assert result.mode == "RGBA"
    assert result.size == img.size
    assert result.getchannel("A").getextrema()[1] == max_alpha
    assert pixels(result) == pixels(reference_set_opacity(img, max_alpha))


@pytest.mark.parametrize("max_alpha", [0, 100, 255])
@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK", "P"])
def test_set_opacity_gives_an_opaque_image_a_uniform_alpha(mode: str, max_alpha: int) -> None:
    img = picture(mode)
    result = fk.SetOpacity(max_alpha).process(img)
    assert result.mode == "RGBA"
    assert result.getchannel("A").getextrema() == (max_alpha, max_alpha)
    assert result.convert("RGB").tobytes() == img.convert("RGB").tobytes()


@pytest.mark.parametrize("img", [picture("LA"), picture("RGBA"), transparent_palette_picture()])
def test_set_opacity_on_other_transparent_modes(img: Image.Image) -> None:
    result = fk.SetOpacity(90).process(img)
    assert result.mode == "RGBA"
    assert pixels(result) == pixels(reference_set_opacity(img, 90))


def test_set_opacity_keeps_a_fully_transparent_image_transparent() -> None:
    img = with_max_alpha(0)
    result = fk.SetOpacity(255).process(img)
    assert result.mode == "RGBA"
    assert result.tobytes() == img.tobytes()


def test_set_opacity_does_not_modify_its_input() -> None:
    img = with_max_alpha(128)
    before = img.tobytes()
    fk.SetOpacity(255).process(img)
    assert img.tobytes() == before


def test_set_opacity_is_a_value() -> None:
    assert fk.SetOpacity(10) == fk.SetOpacity(10)
    assert hash(fk.SetOpacity(10)) == hash(fk.SetOpacity(10))
    assert fk.SetOpacity(10) != fk.SetOpacity(11)
    assert digest(fk.SetOpacity(10)) == digest(fk.SetOpacity(max_alpha=10))
    assert digest(fk.SetOpacity(10)) != digest(fk.SetOpacity(11))


# --- ImageOverlay -------------------------------------------------------------------------


def test_image_overlay_signature_is_pilkits() -> None:
    params = list(inspect.signature(fk.ImageOverlay).parameters.values())
    positional = [p for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert [p.name for p in positional] == ["overlay_img", "position"]
    assert positional[0].default is inspect.Parameter.empty
    assert positional[1].default == (0, 0)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[2:])
    mark = watermark()
    assert fk.ImageOverlay(mark) == fk.ImageOverlay(mark, (0, 0))
    assert fk.ImageOverlay(mark, (3, 4)) == fk.ImageOverlay(overlay_img=mark, position=(3, 4))
    assert fk.ImageOverlay(mark, [3, 4]) == fk.ImageOverlay(mark, (3, 4))


POSITIONS = [(0, 0), (10, 5), (-8, -5), (50, 30), (-20, 30), (40, -10), (60, 40), (-24, -16)]


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "CMYK", "1"])
def test_image_overlay_at_position(mode: str, position: tuple[int, int]) -> None:
    img, mark = picture(mode), watermark()
    result = fk.ImageOverlay(mark, position).process(img)
    expected = reference_overlay(img, mark, position)
    assert result.mode == img.mode
    assert result.size == img.size
    assert result.tobytes() == expected.tobytes()


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_image_overlay_keeps_the_mode(mode: str) -> None:
    result = fk.ImageOverlay(watermark(), (5, 5)).process(picture(mode))
    assert result.mode == mode


@pytest.mark.parametrize("overlay_mode", ["RGB", "LA", "L", "P"])
def test_image_overlay_of_any_mode(overlay_mode: str) -> None:
    img, mark = picture("RGB"), watermark(overlay_mode)
    result = fk.ImageOverlay(mark, (-5, 30)).process(img)
    assert result.tobytes() == reference_overlay(img, mark, (-5, 30)).tobytes()


@pytest.mark.parametrize(
    ("img", "mode"), [(picture("P"), "RGB"), (transparent_palette_picture(), "RGBA")]
)
def test_image_overlay_on_a_palette_image(img: Image.Image, mode: str) -> None:
    mark = watermark()
    result = fk.ImageOverlay(mark, (30, 20)).process(img)
    assert result.mode == mode
    expected = reference_overlay(resolve_palette(img), mark, (30, 20))
    assert result.tobytes() == expected.tobytes()


def test_image_overlay_does_not_modify_its_input() -> None:
    img = picture("RGBA")
    before = img.tobytes()
    fk.ImageOverlay(watermark(), (5, 5)).process(img)
    assert img.tobytes() == before


def test_image_overlay_keyword_options() -> None:
    img, mark = picture("RGB"), watermark()
    faded = mark.copy()
    faded.putalpha(mark.getchannel("A").point(lambda a: round(a * 0.5)))
    result = fk.ImageOverlay(mark, (5, 5), overlay_opacity=0.5).process(img)
    assert result.tobytes() == reference_overlay(img, faded, (5, 5)).tobytes()
    corner = (img.width - mark.width, img.height - mark.height)
    result = fk.ImageOverlay(mark, anchor="br").process(img)
    assert result.tobytes() == reference_overlay(img, mark, corner).tobytes()
    with pytest.raises(TypeError):
        fk.ImageOverlay(mark, (0, 0), 0.5)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: fk.ImageOverlay(watermark(), (1, 2, 3)), "position"),
        (lambda: fk.ImageOverlay(watermark(), (1.5, 2)), "position"),
        (lambda: fk.ImageOverlay(watermark(), "tl"), "position"),
        (lambda: fk.ImageOverlay("mark.png"), "overlay_img"),
        (lambda: fk.ImageOverlay(watermark(), (3, 4), anchor="br"), "not both"),
        (lambda: fk.ImageOverlay(watermark(), overlay_opacity=2), "between 0"),
    ],
)
def test_image_overlay_invalid_arguments(build: t.Callable[[], object], match: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=match):
        build()


def test_image_overlay_is_a_value() -> None:
    mark = watermark()
    first, second = fk.ImageOverlay(mark, (3, 4)), fk.ImageOverlay(watermark(), (3, 4))
    assert first == second
    assert hash(first) == hash(second)
    assert digest(first) == digest(second)
    assert first != fk.ImageOverlay(mark, (4, 3))
    assert digest(first) != digest(fk.ImageOverlay(mark, (4, 3)))
    mark.putpixel((0, 0), (0, 0, 0, 0))  # the processor kept its own copy
    assert fk.ImageOverlay(mark, (3, 4)) != first
    assert first == second
