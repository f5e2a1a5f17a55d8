"""flask_imagekit.processors against pilkit: same sizes, modes and pixels (within tolerance)."""

from __future__ import annotations

import dataclasses
import functools
import io
import math
import typing as t
from pathlib import Path

import pilkit.processors as pk
import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

import flask_imagekit.processors as fk
from flask_imagekit.exceptions import ImproperlyConfigured
from flask_imagekit.processors import Anchor, ResizePlan, plan_processors

CORPUS = Path(__file__).resolve().parent / "corpus" / "pillow"
LANCZOS = Image.Resampling.LANCZOS
ORIENTATION = 0x0112

MODES = ["RGB", "RGBA", "L", "LA", "P", "CMYK"]
NAMED_ANCHORS = [
    Anchor.TOP_LEFT,
    Anchor.TOP,
    Anchor.TOP_RIGHT,
    Anchor.LEFT,
    Anchor.CENTER,
    Anchor.RIGHT,
    Anchor.BOTTOM_LEFT,
    Anchor.BOTTOM,
    Anchor.BOTTOM_RIGHT,
]
SHORTCUTS = ["tl", "t", "tr", "l", "c", "r", "bl", "b", "br"]
TUPLE_ANCHORS = [(0, 0), (0.25, 0.75), (1, 1), (0.5, 0.1)]
ALL_ANCHORS: list[t.Any] = [None, *NAMED_ANCHORS, *TUPLE_ANCHORS]


# --- images and comparison -------------------------------------------------------------


def sample(size: tuple[int, int] = (240, 160), mode: str = "RGB") -> Image.Image:
    """A picture whose every region differs: gradients, shapes, a semi-transparent hole."""
    return _sample(size, mode).copy()


@functools.cache
def _sample(size: tuple[int, int], mode: str) -> Image.Image:
    w, h = size
    vertical = Image.linear_gradient("L").resize(size)
    horizontal = Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90).resize(size)
    radial = Image.radial_gradient("L").resize(size)
    img = Image.merge("RGB", (vertical, horizontal, radial))
    draw = ImageDraw.Draw(img)
    draw.rectangle((w // 10, h // 10, w // 3, h // 3), fill=(230, 20, 20))
    draw.ellipse((w // 2, h // 2, w - w // 8, h - h // 10), fill=(250, 250, 250))
    draw.line((0, h - 1, w - 1, 0), fill=(10, 10, 10), width=3)
    if mode in ("RGBA", "LA", "PA"):
        alpha = horizontal.point(lambda v: 60 + v * 195 // 255)
        ImageDraw.Draw(alpha).rectangle((w // 2, h // 8, w // 2 + w // 6, h // 3), fill=0)
        img.putalpha(alpha)
    if mode == "P":
        return img.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    return img.convert(mode)


def comparable(img: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """Colour channels flattened on grey (invisible pixels don't count) and the alpha."""
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA"):
        rgba = img.convert("RGBA")
        flat = Image.alpha_composite(Image.new("RGBA", img.size, (128, 128, 128, 255)), rgba)
        return flat.convert("RGB"), rgba.getchannel("A")
    return img, None


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of two images of the same mode, over all bands."""
    means = ImageStat.Stat(ImageChops.difference(a, b)).mean
    return sum(means) / len(means)


def psnr(a: Image.Image, b: Image.Image) -> float:
    """Peak signal-to-noise ratio in dB (inf when identical)."""
    rms = ImageStat.Stat(ImageChops.difference(a, b)).rms
    mse = sum(r * r for r in rms) / len(rms)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def assert_similar(
    actual: Image.Image,
    expected: Image.Image,
    *,
    min_psnr: float = 38.0,
    max_mean: float = 1.0,
    same_mode: bool = True,
) -> None:
    """Same size (and mode), pixels within resampling tolerance."""
    assert actual.size == expected.size
    if same_mode:
        assert actual.mode == expected.mode
    (a_col, a_alpha), (e_col, e_alpha) = comparable(actual), comparable(expected)
    pairs = [(a_col, e_col)]
    if a_alpha is not None and e_alpha is not None:
        pairs.append((a_alpha, e_alpha))
    for a, e in pairs:
        assert a.mode == e.mode
        assert mean_abs_diff(a, e) <= max_mean, (mean_abs_diff(a, e), psnr(a, e))
        assert psnr(a, e) >= min_psnr, (mean_abs_diff(a, e), psnr(a, e))


def assert_identical(actual: Image.Image, expected: Image.Image) -> None:
    """Same size, mode and bytes."""
    assert (actual.size, actual.mode) == (expected.size, expected.mode)
    assert actual.tobytes() == expected.tobytes()


def compare_with_pilkit(ours: t.Any, theirs: t.Any, img: Image.Image, **tolerance: t.Any) -> None:
    assert_similar(ours.process(img.copy()), theirs.process(img.copy()), **tolerance)


def apply_plan(img: Image.Image, plan: ResizePlan) -> Image.Image:
    """The plan contract, done by hand: one LANCZOS resize of the box, then ``after``."""
    out = img.resize(plan.size, LANCZOS, box=plan.box)
    for processor in plan.after:
        out = processor.process(out)
    return out


SIZES = [(120, 80), (80, 120), (100, 100), (240, 160), (400, 50), (30, 30), (7, 300)]


# --- resizing ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", [(100, 50), (400, 300), (240, 160), (30, 30), (300, 100)])
def test_resize(mode: str, size: tuple[int, int]) -> None:
    img = sample(mode=mode)
    for upscale in (True, False):
        compare_with_pilkit(fk.Resize(*size, upscale), pk.Resize(*size, upscale), img)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", SIZES)
def test_resize_to_cover(mode: str, size: tuple[int, int]) -> None:
    img = sample(mode=mode)
    for upscale in (True, False):
        ours, theirs = fk.ResizeToCover(*size, upscale), pk.ResizeToCover(*size, upscale)
        compare_with_pilkit(ours, theirs, img)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", SIZES)
def test_resize_to_fill(mode: str, size: tuple[int, int]) -> None:
    img = sample(mode=mode)
    for upscale in (True, False):
        ours, theirs = fk.ResizeToFill(*size, None, upscale), pk.ResizeToFill(*size, None, upscale)
        compare_with_pilkit(ours, theirs, img)


@pytest.mark.parametrize("anchor", ALL_ANCHORS)
@pytest.mark.parametrize("size", [(100, 100), (60, 150), (400, 90), (200, 300)])
def test_resize_to_fill_anchors(anchor: t.Any, size: tuple[int, int]) -> None:
    img = sample()
    for upscale in (True, False):
        ours = fk.ResizeToFill(*size, anchor=anchor, upscale=upscale)
        compare_with_pilkit(ours, pk.ResizeToFill(*size, anchor=anchor, upscale=upscale), img)


@pytest.mark.parametrize(("name", "shortcut"), list(zip(NAMED_ANCHORS, SHORTCUTS, strict=True)))
def test_anchor_names_are_pilkits_shortcuts(name: str, shortcut: str) -> None:
    assert name == shortcut
    assert Anchor.get_tuple(name) == pk.Anchor.get_tuple(shortcut)
    img = sample()
    assert_identical(
        fk.ResizeToFill(90, 90, anchor=shortcut).process(img),
        fk.ResizeToFill(90, 90, anchor=Anchor.get_tuple(name)).process(img),
    )


def test_anchors_crop_different_regions() -> None:
    img = sample()
    crops = {a: fk.ResizeToFill(60, 100, anchor=a).process(img).tobytes() for a in "lcr"}
    assert len(set(crops.values())) == 3


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "dims", [(100, None), (None, 100), (100, 100), (300, 300), (50, 400), (400, 50), (240, 160)]
)
def test_resize_to_fit(mode: str, dims: tuple[int | None, int | None]) -> None:
    img = sample(mode=mode)
    for upscale in (True, False):
        compare_with_pilkit(fk.ResizeToFit(*dims, upscale), pk.ResizeToFit(*dims, upscale), img)


MAT_COLORS = [(255, 0, 0), (0, 0, 0, 0), "#336699"]


@pytest.mark.parametrize(
    ("anchor", "mat_color"),
    [(anchor, MAT_COLORS[i % 3]) for i, anchor in enumerate(ALL_ANCHORS)],
)
@pytest.mark.parametrize("dims", [(100, 100), (300, 100), (300, 300)])
def test_resize_to_fit_mat_color(anchor: t.Any, mat_color: t.Any, dims: tuple[int, int]) -> None:
    img = sample()
    ours = fk.ResizeToFit(*dims, mat_color=mat_color, anchor=anchor)
    theirs = pk.ResizeToFit(*dims, mat_color=mat_color, anchor=anchor)
    compare_with_pilkit(ours, theirs, img)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", [(100, 100), (60, 150), (300, 90), (400, 400)])
def test_smart_resize(mode: str, size: tuple[int, int]) -> None:
    img = sample(mode=mode)
    for upscale in (True, False):
        ours, theirs = fk.SmartResize(*size, upscale), pk.SmartResize(*size, upscale)
        compare_with_pilkit(ours, theirs, img)


# --- Thumbnail --------------------------------------------------------------------------

THUMBNAIL_CASES: list[tuple[dict[str, t.Any], type]] = [
    ({"width": 100, "height": 100}, fk.SmartResize),
    ({"width": 100, "height": 60, "crop": True}, fk.ResizeToFill),
    ({"width": 100, "height": 60, "anchor": "tl"}, fk.ResizeToFill),
    ({"width": 100, "height": 60, "anchor": (0.2, 0.8), "crop": True}, fk.ResizeToFill),
    ({"width": 100, "height": 60, "anchor": "auto"}, fk.SmartResize),
    ({"width": 100, "height": 100, "crop": False}, fk.ResizeToFit),
    ({"width": 100}, fk.ResizeToFit),
    ({"height": 70}, fk.ResizeToFit),
    ({"width": 400, "height": 400}, fk.SmartResize),
    ({"width": 400, "height": 400, "upscale": True}, fk.SmartResize),
    ({"width": 500, "upscale": True}, fk.ResizeToFit),
    ({"width": 500}, fk.ResizeToFit),
    ({"width": 300, "height": 50, "anchor": "b", "upscale": True}, fk.ResizeToFill),
]


@pytest.mark.parametrize(("kwargs", "chosen"), THUMBNAIL_CASES)
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P"])
def test_thumbnail(kwargs: dict[str, t.Any], chosen: type, mode: str) -> None:
    ours = fk.Thumbnail(**kwargs)
    assert type(ours.processor) is chosen
    compare_with_pilkit(ours, pk.Thumbnail(**kwargs), sample(mode=mode))


def test_thumbnail_does_not_upscale_by_default() -> None:
    img = sample((80, 60))
    assert fk.Thumbnail(200).process(img).size == (80, 60)
    assert fk.Thumbnail(200, upscale=True).process(img).size == (200, 150)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"width": 100, "crop": True},
        {"height": 100, "crop": True},
        {"width": 100, "anchor": "c"},
        {"height": 100, "anchor": (0, 0)},
    ],
)
def test_thumbnail_crop_needs_both_dimensions(kwargs: dict[str, t.Any]) -> None:
    with pytest.raises(Exception, match="both a width and height"):
        pk.Thumbnail(**kwargs).process(sample())
    with pytest.raises(ImproperlyConfigured, match="both a width and a height"):
        fk.Thumbnail(**kwargs)


def test_thumbnail_anchor_with_crop_false() -> None:
    with pytest.raises(ImproperlyConfigured, match="anchor point needs crop=True"):
        fk.Thumbnail(100, 100, anchor="c", crop=False)


def test_thumbnail_needs_a_dimension() -> None:
    with pytest.raises(ImproperlyConfigured, match="a width, a height or both"):
        fk.Thumbnail()


def test_thumbnail_normalises_its_choice() -> None:
    assert fk.Thumbnail(100, 100) == fk.Thumbnail(100, 100, anchor="auto", crop=True)
    assert fk.Thumbnail(100, 100).upscale is False
    assert fk.Thumbnail(100, 100) != fk.Thumbnail(100, 100, crop=True)


# --- canvas and crops -------------------------------------------------------------------


@pytest.mark.parametrize("anchor", ALL_ANCHORS)
@pytest.mark.parametrize("size", [(300, 200), (100, 100), (400, 90)])
def test_resize_canvas(anchor: t.Any, size: tuple[int, int]) -> None:
    for mode in MODES:
        img = sample(mode=mode)
        ours = fk.ResizeCanvas(*size, (0, 128, 0), anchor).process(img)
        assert_identical(ours, pk.ResizeCanvas(*size, (0, 128, 0), anchor).process(img))


@pytest.mark.parametrize(("x", "y"), [(0, 0), (10, 5), (None, 7), (-20, -10)])
def test_resize_canvas_xy(x: int | None, y: int | None) -> None:
    img = sample()
    ours = fk.ResizeCanvas(260, 150, x=x, y=y)
    assert_identical(ours.process(img), pk.ResizeCanvas(260, 150, x=x, y=y).process(img))


def test_resize_canvas_anchor_and_xy_conflict() -> None:
    with pytest.raises(ImproperlyConfigured, match="either an anchor or x and y"):
        fk.ResizeCanvas(10, 10, anchor="c", x=1)


@pytest.mark.parametrize("thickness", [0, 5, (1, 2, 3, 4), [4, 0, 7, 1]])
@pytest.mark.parametrize("color", [None, (255, 0, 0), "#00ff00"])
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_add_border(thickness: t.Any, color: t.Any, mode: str) -> None:
    img = sample(mode=mode)
    ours = fk.AddBorder(thickness, color)
    assert_identical(ours.process(img), pk.AddBorder(thickness, color).process(img))


@pytest.mark.parametrize("anchor", ALL_ANCHORS)
@pytest.mark.parametrize("size", [(100, 100), (300, 60), (240, 160)])
def test_crop(anchor: t.Any, size: tuple[int, int]) -> None:
    for mode in MODES:
        img = sample(mode=mode)
        assert_identical(fk.Crop(*size, anchor).process(img), pk.Crop(*size, anchor).process(img))


def test_crop_xy() -> None:
    img = sample()
    assert_identical(
        fk.Crop(100, 100, x=10, y=20).process(img), pk.Crop(100, 100, x=10, y=20).process(img)
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", [(100, 100), (60, 150), (239, 160), (300, 10), (500, 500)])
def test_smart_crop(mode: str, size: tuple[int, int]) -> None:
    img = sample(mode=mode)
    assert_identical(fk.SmartCrop(*size).process(img), pk.SmartCrop(*size).process(img))


def test_smart_crop_keeps_the_busy_part() -> None:
    img = Image.new("RGB", (300, 100), (200, 200, 200))
    img.paste(sample((100, 100)), (200, 0))
    assert_identical(fk.SmartCrop(100, 100).process(img), img.crop((200, 0, 300, 100)))


def bordered(mode: str = "RGB") -> Image.Image:
    """Content framed in black at (30, 50, 150, 120), a faint square at (10, 10, 20, 20)."""
    img = Image.new("RGB", (200, 150), (250, 250, 250))
    img.paste(sample((120, 70)), (30, 50))
    ImageDraw.Draw(img).rectangle((30, 50, 149, 119), outline=(0, 0, 0))
    img.paste((210, 210, 210), (10, 10, 20, 20))
    return img.convert(mode)


def transparent_bordered(mode: str) -> Image.Image:
    """Opaque content on a fully transparent (0, 0, 0, 0) background."""
    img = Image.new("RGBA", (200, 150), (0, 0, 0, 0))
    img.paste(sample((120, 70)), (30, 50))
    img.paste((60, 60, 60, 40), (10, 10, 20, 20))
    return img.convert(mode)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
@pytest.mark.parametrize(
    ("tolerance", "box"),
    [
        (0, (10, 10, 150, 120)),
        (1, (10, 10, 150, 120)),  # pilkit ignores a tolerance of 1
        (0.1, (10, 10, 150, 120)),
        (0.3, (30, 50, 150, 120)),
    ],
)
@pytest.mark.parametrize("color", [None, (0, 0, 0, 0)])
@pytest.mark.parametrize("sides", [fk.Side.ALL, ("t", "l"), [fk.Side.BOTTOM]])
def test_trim_border_color(
    mode: str, tolerance: float, box: tuple[int, int, int, int], color: t.Any, sides: t.Any
) -> None:
    img = transparent_bordered(mode)
    result = fk.TrimBorderColor(color, tolerance, sides).process(img)
    left, top, right, bottom = box
    expected = (
        left if "l" in sides else 0,
        top if "t" in sides else 0,
        right if "r" in sides else img.width,
        bottom if "b" in sides else img.height,
    )
    assert_identical(result, img.crop(expected))
    if tolerance in (0, 1):
        # Transparent borders without tolerance: the case pilkit still gets right
        # (see test_trim_border_color_opaque).
        theirs = pk.TrimBorderColor(color, tolerance, sides).process(img)
        assert_identical(result, theirs)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
@pytest.mark.parametrize(
    ("kwargs", "box"),
    [
        ({}, (30, 50, 150, 120)),
        ({"tolerance": 0.1}, (10, 10, 150, 120)),
        ({"tolerance": 0}, (10, 10, 150, 120)),
        ({"tolerance": 1}, (10, 10, 150, 120)),
        ({"tolerance": 0.1, "sides": ("t", "l")}, (10, 10, 200, 150)),
        ({"tolerance": 0.1, "sides": [fk.Side.RIGHT]}, (0, 0, 150, 150)),
        ({"color": (0, 0, 0, 255)}, (0, 0, 200, 150)),
        ({"color": (250, 250, 250, 255), "sides": ("b",)}, (0, 0, 200, 120)),
    ],
)
def test_trim_border_color_opaque(
    mode: str, kwargs: dict[str, t.Any], box: tuple[int, int, int, int]
) -> None:
    img = bordered(mode)
    assert_identical(fk.TrimBorderColor(**kwargs).process(img), img.crop(box))
    # pilkit's getbbox() only sees the alpha difference: it never trims these.
    assert pk.TrimBorderColor(**kwargs).process(img).size == img.size


# --- tones, orientation and modes -------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"color": 0.0},
        {"brightness": 1.4},
        {"contrast": 0.5},
        {"sharpness": 2.0},
        {"color": 1.5, "brightness": 0.8, "contrast": 1.3, "sharpness": 0.3},
    ],
)
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
def test_adjust(kwargs: dict[str, float], mode: str) -> None:
    img = sample(mode=mode)
    assert_identical(fk.Adjust(**kwargs).process(img), pk.Adjust(**kwargs).process(img))


@pytest.mark.parametrize(
    "args", [("#FFFFFF", 0.5, 0.6), ("#000000", 0.3, 1.0), ("red", 1.0, 0.2), ("#FFF", 0.01)]
)
@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_reflection(args: tuple[t.Any, ...], mode: str) -> None:
    img = sample(mode=mode)
    assert_identical(fk.Reflection(*args).process(img), pk.Reflection(*args).process(img))


def test_reflection_of_size_zero() -> None:
    # pilkit divides by zero there; no reflection is the evident meaning.
    img = sample()
    result = fk.Reflection().process(img)
    assert_identical(result, img.convert("RGBA"))


@pytest.mark.parametrize(
    "methods",
    [
        (fk.Transpose.FLIP_HORIZONTAL,),
        (fk.Transpose.FLIP_VERTICAL,),
        (fk.Transpose.ROTATE_90,),
        (fk.Transpose.ROTATE_180,),
        (fk.Transpose.ROTATE_270,),
        (fk.Transpose.ROTATE_90, fk.Transpose.FLIP_HORIZONTAL),
    ],
)
def test_transpose_methods(methods: tuple[Image.Transpose, ...]) -> None:
    img = sample((120, 80))
    assert_identical(fk.Transpose(*methods).process(img), pk.Transpose(*methods).process(img))


def jpeg_with_orientation(orientation: int) -> Image.Image:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    buf = io.BytesIO()
    sample((120, 80)).save(buf, "JPEG", quality=95, exif=exif.tobytes())
    buf.seek(0)
    return Image.open(buf)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_transpose_auto(orientation: int) -> None:
    ours = fk.Transpose(fk.Transpose.AUTO).process(jpeg_with_orientation(orientation))
    theirs = pk.Transpose(pk.Transpose.AUTO).process(jpeg_with_orientation(orientation))
    assert_identical(ours, theirs)
    assert ours.size == ((120, 80) if orientation < 5 else (80, 120))
    if orientation > 1:
        # The orientation tag is gone: applying AUTO again changes nothing.
        assert ours.getexif().get(ORIENTATION) is None
        assert_identical(fk.Transpose().process(ours), ours)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_transpose_auto_reads_exif_of_any_image(orientation: int) -> None:
    img = sample((120, 80))
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    img.info["exif"] = exif.tobytes()
    steps = pk.Transpose._EXIF_ORIENTATION_STEPS[orientation]
    expected = pk.Transpose(*steps).process(img) if steps else img
    assert_identical(fk.Transpose().process(img), expected)


@pytest.mark.parametrize("orientation", range(2, 9))
def test_transpose_auto_corpus(orientation: int) -> None:
    path = CORPUS / f"hopper_orientation_{orientation}.jpg"
    if not path.exists():
        pytest.skip(f"{path} is not available")
    with Image.open(path) as a, Image.open(path) as b:
        assert_identical(fk.Transpose().process(a), pk.Transpose().process(b))


def test_transpose_auto_ignores_the_other_methods() -> None:
    assert fk.Transpose(fk.Transpose.ROTATE_90, fk.Transpose.AUTO) == fk.Transpose()
    img = sample()
    assert fk.Transpose(fk.Transpose.AUTO, fk.Transpose.ROTATE_90).process(img) is img


def test_transpose_unknown_method() -> None:
    with pytest.raises(ImproperlyConfigured, match="Unknown transpose method"):
        fk.Transpose(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "1", "CMYK"])
@pytest.mark.parametrize("target", ["RGB", "L", "RGBA"])
def test_convert(mode: str, target: str) -> None:
    img = sample(mode=mode)
    assert_identical(fk.Convert(target).process(img), pk.Convert(target).process(img))


@pytest.mark.parametrize("radius", [0, 1, 2.5])
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_gaussian_blur(radius: float, mode: str) -> None:
    img = sample(mode=mode)
    assert_identical(fk.GaussianBlur(radius).process(img), pk.GaussianBlur(radius).process(img))


# --- transparency and overlays ----------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("color", [(255, 255, 255), (0, 0, 0), "#123456"])
def test_make_opaque(mode: str, color: t.Any) -> None:
    img = sample(mode=mode)
    assert_identical(fk.MakeOpaque(color).process(img), pk.MakeOpaque(color).process(img))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
@pytest.mark.parametrize("args", [((255, 0, 0),), ("#00ff00", 0.2), ((0, 0, 255), 1.0)])
def test_color_overlay(mode: str, args: tuple[t.Any, ...]) -> None:
    img = sample(mode=mode)
    assert_identical(fk.ColorOverlay(*args).process(img), pk.ColorOverlay(*args).process(img))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA"])
@pytest.mark.parametrize("max_alpha", [0, 64, 128, 255])
def test_set_opacity(mode: str, max_alpha: int) -> None:
    img = sample(mode=mode)
    result = fk.SetOpacity(max_alpha).process(img)
    rgba = img.convert("RGBA")
    assert result.mode == "RGBA"
    assert result.convert("RGB").tobytes() == rgba.convert("RGB").tobytes()
    alpha = rgba.getchannel("A")
    max_a = alpha.getextrema()[1]
    expected_alpha = alpha.point(lambda a: int(a * max_alpha / max_a))
    assert result.getchannel("A").tobytes() == expected_alpha.tobytes()


@pytest.mark.parametrize("max_alpha", [0.5, 256, -1])
def test_set_opacity_invalid(max_alpha: t.Any) -> None:
    with pytest.raises(ImproperlyConfigured, match="max_alpha must be"):
        fk.SetOpacity(max_alpha)


def watermark() -> Image.Image:
    mark = Image.new("RGBA", (40, 20), (255, 0, 0, 200))
    ImageDraw.Draw(mark).rectangle((5, 5, 15, 15), fill=(0, 0, 255, 255))
    return mark


@pytest.mark.parametrize("anchor", [*NAMED_ANCHORS, *TUPLE_ANCHORS])
@pytest.mark.parametrize("opacity", [1.0, 0.5])
def test_image_overlay_anchor(anchor: t.Any, opacity: float) -> None:
    mark = watermark()
    # The same thing done with pilkit's ResizeCanvas placement.
    alpha = mark.getchannel("A").point(lambda a: round(a * opacity))
    layer = mark.copy()
    layer.putalpha(alpha)
    for mode in ["RGB", "RGBA", "L"]:
        img = sample(mode=mode)
        result = fk.ImageOverlay(mark, overlay_opacity=opacity, anchor=anchor).process(img)
        placed = pk.ResizeCanvas(*img.size, color=(0, 0, 0, 0), anchor=anchor).process(layer)
        composed = Image.alpha_composite(img.convert("RGBA"), placed)
        assert_identical(result, composed if mode == "RGBA" else composed.convert(mode))


@pytest.mark.parametrize("position", [(0, 0), (230, 150), (-10, -5), (500, 500), (-30, 150)])
def test_image_overlay_position(position: tuple[int, int]) -> None:
    img, mark = sample(), watermark()
    result = fk.ImageOverlay(mark, position).process(img)
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    layer.paste(mark, position)
    assert_identical(result, Image.alpha_composite(img.convert("RGBA"), layer).convert("RGB"))


def test_image_overlay_compares_pixels() -> None:
    mark = watermark()
    first, second = fk.ImageOverlay(mark), fk.ImageOverlay(watermark())
    assert first == second
    assert hash(first) == hash(second)
    mark.putpixel((0, 0), (0, 0, 0, 0))  # the processor kept its own copy
    assert fk.ImageOverlay(mark) != first
    assert first == second


# --- pipelines --------------------------------------------------------------------------


class Halve:
    """A processor that is not a dataclass: anything with ``process`` works."""

    def process(self, img: Image.Image) -> Image.Image:
        return img.resize((img.width // 2, img.height // 2))


def test_processor_pipeline() -> None:
    img = sample()
    ours = fk.ProcessorPipeline(
        [fk.Transpose(fk.Transpose.ROTATE_90), fk.ResizeToFill(50, 80, "tl"), Halve()]
    )
    theirs = pk.ProcessorPipeline(
        [pk.Transpose(pk.Transpose.ROTATE_90), pk.ResizeToFill(50, 80, "tl"), Halve()]
    )
    assert_similar(ours.process(img), theirs.process(img))
    assert len(ours) == 3
    assert isinstance(ours[2], Halve)
    assert [type(p) for p in ours] == [fk.Transpose, fk.ResizeToFill, Halve]
    assert isinstance(Halve(), fk.Processor)
    assert fk.ProcessorPipeline().process(img) is img


# --- the plan() fast-path contract ------------------------------------------------------

PLANNED: list[t.Any] = [
    fk.Resize(100, 60),
    fk.Resize(300, 300),
    fk.Resize(100, 60, upscale=False),
    fk.ResizeToCover(100, 100),
    fk.ResizeToCover(50, 90, upscale=False),
    fk.ResizeToFill(100, 100),
    fk.ResizeToFill(37, 91, Anchor.TOP_RIGHT),
    fk.ResizeToFill(300, 100, "b"),
    fk.ResizeToFill(64, 48, (0.3, 0.8), upscale=False),
    fk.ResizeToFit(100, 100),
    fk.ResizeToFit(None, 33),
    fk.ResizeToFit(350),
    fk.ResizeToFit(90, 90, upscale=False, mat_color=(255, 0, 0)),
    fk.ResizeToFit(90, 90, mat_color="#000", anchor="br"),
    fk.SmartResize(80, 80),
    fk.SmartResize(120, 30, upscale=False),
    fk.Thumbnail(100, 100),
    fk.Thumbnail(100, 50, anchor="tl"),
    fk.Thumbnail(100, 50, crop=True),
    fk.Thumbnail(64),
    fk.Thumbnail(None, 300, upscale=True),
    fk.ProcessorPipeline([fk.ResizeToFill(90, 90), fk.Adjust(contrast=1.2), Halve()]),
    fk.ProcessorPipeline([fk.ProcessorPipeline([fk.Thumbnail(100)]), fk.GaussianBlur(1)]),
]
PLAN_SIZES = [(240, 160), (160, 240), (400, 399), (91, 37), (50, 50), (333, 111)]


def resizer(processor: t.Any) -> t.Any:
    """The processor that does the resizing in ``processor``."""
    if isinstance(processor, fk.ProcessorPipeline):
        return resizer(processor[0])
    if isinstance(processor, fk.Thumbnail):
        return processor.processor
    return processor


@pytest.mark.parametrize("processor", PLANNED, ids=repr)
def test_plan_contract(processor: t.Any) -> None:
    for size in PLAN_SIZES:
        img = sample(size)
        expected = processor.process(img)
        plan = processor.plan(size)
        if plan is None:
            # Only when nothing is resized.
            assert resizer(processor).upscale is False, size
            continue
        assert isinstance(plan, ResizePlan)
        left, top, right, bottom = plan.box
        assert 0 <= left < right <= size[0], size
        assert 0 <= top < bottom <= size[1], size
        assert_similar(apply_plan(img, plan), expected, min_psnr=40, max_mean=0.5)
        assert_similar(plan.apply(img), expected, min_psnr=40, max_mean=0.5)


@pytest.mark.parametrize("size", [(200, 100), (90, 60), (100, 200)])
def test_plan_is_none_without_a_resize(size: tuple[int, int]) -> None:
    for processor in (
        fk.Resize(100, 60, upscale=False),
        fk.ResizeToFill(100, 100, upscale=False),
        fk.ResizeToFit(300, 300, upscale=False),
        fk.Thumbnail(300, 300),
    ):
        if size == (200, 100) and isinstance(processor, fk.Resize):
            continue  # larger in both dimensions: it does resize
        assert processor.plan(size) is None


def test_plan_of_resize_to_fill_crops_through_the_box() -> None:
    plan = fk.ResizeToFill(100, 100, Anchor.LEFT).plan((400, 200))
    assert plan is not None
    assert plan.size == (100, 100)
    assert plan.box == (0, 0, 200, 200)
    plan = fk.ResizeToFill(100, 100, Anchor.RIGHT).plan((400, 200))
    assert plan is not None
    assert plan.box == (200, 0, 400, 200)


def test_plan_processors() -> None:
    size = (240, 160)
    assert plan_processors([], size) is None
    assert plan_processors([fk.Adjust(), fk.Resize(10, 10)], size) is None
    assert plan_processors([Halve(), fk.Resize(10, 10)], size) is None
    assert plan_processors([fk.Resize(10, 10, upscale=False)], (5, 5)) is None
    blur = fk.GaussianBlur(2)
    plan = plan_processors([fk.ResizeToFit(120, 120, mat_color=(0, 0, 0)), blur, Halve()], size)
    assert plan is not None
    assert plan.size == (120, 80)
    assert plan.after[0] == fk.ResizeCanvas(120, 120, (0, 0, 0), "c")
    assert plan.after[1:] == (blur, plan.after[2])
    assert isinstance(plan.after[2], Halve)
    assert fk.ProcessorPipeline([fk.Resize(10, 10), blur]).plan(size) == ResizePlan(
        (0, 0, 240, 160), (10, 10), (blur,)
    )


@pytest.mark.parametrize(
    "processor",
    [fk.ResizeToFill(90, 60, "tl"), fk.Thumbnail(100), fk.SmartResize(50, 80)],
    ids=repr,
)
def test_plan_rescaled_for_a_jpeg_draft(processor: t.Any) -> None:
    buf = io.BytesIO()
    sample((400, 300)).save(buf, "JPEG", quality=95)
    with Image.open(buf) as full, Image.open(buf) as draft:
        expected = processor.process(full)
        plan = processor.plan(full.size)
        draft.draft("RGB", (200, 150))
        assert draft.size == (200, 150)
        result = plan.rescaled((400, 300), draft.size).apply(draft)
    assert_similar(result, expected, min_psnr=40, max_mean=1.0)


def test_shrinking_uses_reducing_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float | None] = []
    original = Image.Image.resize

    def spy(self: Image.Image, *args: t.Any, **kwargs: t.Any) -> Image.Image:
        calls.append(kwargs.get("reducing_gap"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", spy)
    img = sample((400, 300))
    for processor in (
        fk.Resize(40, 30),
        fk.ResizeToFill(50, 50),
        fk.ResizeToFit(60),
        fk.Thumbnail(50, 50),
    ):
        calls.clear()
        processor.process(img)
        assert fk.REDUCING_GAP in calls


def test_reducing_gap_is_not_used_where_pillow_cannot_reduce() -> None:
    img = Image.linear_gradient("L").resize((300, 300)).convert("I;16")
    assert_identical(fk.Resize(30, 30).process(img), pk.Resize(30, 30).process(img))


# --- deliberate differences from pilkit -------------------------------------------------


def test_palette_transparency_survives_resizing() -> None:
    img = sample(mode="P")
    img.info["transparency"] = img.getpixel((0, 0))
    result = fk.Resize(60, 40).process(img)
    assert result.mode == "RGBA"
    assert result.getpixel((0, 0))[3] == 0  # type: ignore[index]
    assert pk.Resize(60, 40).process(img).mode == "RGB"  # pilkit drops the transparency


def test_gaussian_blur_resolves_palettes() -> None:
    img = sample(mode="P")
    assert_identical(
        fk.GaussianBlur(2).process(img), pk.GaussianBlur(2).process(img.convert("RGB"))
    )


def test_degenerate_sizes_keep_one_pixel() -> None:
    assert fk.ResizeToFit(10).process(sample((400, 10))).size == (10, 1)


# --- values: comparable, hashable, validated, pure --------------------------------------

FACTORIES: list[t.Callable[[], t.Any]] = [
    lambda: fk.Resize(10, 20),
    lambda: fk.ResizeToCover(10, 20, False),
    lambda: fk.ResizeToFill(10, 20, [0.5, 0.25]),
    lambda: fk.ResizeToFit(10, 20, True, [1, 2, 3], "tl"),
    lambda: fk.ResizeToFit(None, 20),
    lambda: fk.SmartResize(10, 20),
    lambda: fk.ResizeCanvas(10, 20, [0, 0, 0], "c"),
    lambda: fk.AddBorder([1, 2, 3, 4], "red"),
    lambda: fk.Thumbnail(10, 20, "c"),
    lambda: fk.Crop(10, 20, "tl"),
    lambda: fk.SmartCrop(10, 20),
    lambda: fk.TrimBorderColor([1, 2, 3, 4], 0.2, ["t", "l"]),
    lambda: fk.Adjust(1.1, 0.9),
    lambda: fk.Reflection("#000", 0.4),
    lambda: fk.Transpose(fk.Transpose.ROTATE_90, fk.Transpose.FLIP_VERTICAL),
    lambda: fk.Transpose(),
    lambda: fk.MakeOpaque([1, 2, 3]),
    lambda: fk.SetOpacity(128),
    lambda: fk.ColorOverlay([1, 2, 3], 0.3),
    lambda: fk.ImageOverlay(watermark(), overlay_opacity=0.5, anchor="br"),
    lambda: fk.ImageOverlay(watermark(), [3, -4]),
    lambda: fk.Convert("L"),
    lambda: fk.GaussianBlur(2),
    lambda: fk.ProcessorPipeline([fk.Resize(1, 2), fk.Convert("L")]),
]


@pytest.mark.parametrize("factory", FACTORIES)
def test_processors_are_values(factory: t.Callable[[], t.Any]) -> None:
    first, second = factory(), factory()
    assert first == second
    assert hash(first) == hash(second)
    assert len({first, second}) == 1
    assert dataclasses.is_dataclass(first)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.width = 1
    for field in dataclasses.fields(first):
        value = getattr(first, field.name)
        assert not isinstance(value, (list, dict, set)), field.name


def test_defaults_are_stored_explicitly() -> None:
    assert fk.ResizeToFill(10, 20) == fk.ResizeToFill(10, 20, Anchor.CENTER)
    assert fk.ResizeToFit(10, 20, anchor=None) == fk.ResizeToFit(10, 20)
    assert fk.Crop(10, 20) == fk.Crop(10, 20, "c")
    assert fk.Crop(10, 20, x=3) == fk.Crop(10, 20, x=3, y=0)
    assert fk.ResizeCanvas(10, 20) == fk.ResizeCanvas(10, 20, (255, 255, 255, 0), "c")
    assert fk.Thumbnail(10, 20, crop=True) == fk.Thumbnail(10, 20, anchor="c")
    assert fk.Transpose() == fk.Transpose(fk.Transpose.AUTO)


def test_processors_differ_by_parameters() -> None:
    assert fk.Resize(10, 20) != fk.Resize(10, 21)
    assert fk.Resize(10, 20) != fk.ResizeToCover(10, 20)
    assert fk.ResizeToFill(10, 20, "c") != fk.ResizeToFill(10, 20, "tl")
    assert fk.AddBorder(2) != fk.AddBorder((2, 2, 2, 3))
    assert fk.ResizeToFit(10, 20, mat_color=(0, 0, 0)) != fk.ResizeToFit(10, 20)


@pytest.mark.parametrize("factory", FACTORIES)
def test_process_does_not_modify_its_input(factory: t.Callable[[], t.Any]) -> None:
    processor = factory()
    for mode in ["RGB", "RGBA", "P"]:
        img = sample((90, 70), mode)
        exif = Image.Exif()
        exif[ORIENTATION] = 6
        img.info["exif"] = exif.tobytes()
        before = (img.mode, img.size, img.tobytes(), dict(img.info), img.getpalette())
        processor.process(img)
        assert (img.mode, img.size, img.tobytes(), dict(img.info), img.getpalette()) == before


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: fk.ResizeToFill(10, 10, "middle"), "Unknown anchor 'middle'"),
        (lambda: fk.ResizeCanvas(10, 10, anchor="x"), "Unknown anchor"),
        (lambda: fk.Crop(10, 10, anchor=(1, 2, 3)), "Invalid anchor"),
        (lambda: fk.Thumbnail(10, 10, anchor="nowhere"), "Unknown anchor"),
        (lambda: fk.ImageOverlay(watermark(), anchor="zz"), "Unknown anchor"),
        (lambda: fk.ResizeToFit(10, mat_color=(0, 0, 0)), "both a width and a height"),
        (lambda: fk.ResizeToFit(), "a width, a height or both"),
        (lambda: fk.ResizeToFill(10), "both a width and a height"),
        (lambda: fk.Resize(0, 10), "positive number of pixels"),
        (lambda: fk.AddBorder((1, 2)), "top, right, bottom, left"),
        (lambda: fk.TrimBorderColor(sides=("x",)), "unknown sides"),
        (lambda: fk.ColorOverlay((0, 0, 0), 2), "between 0"),
        (lambda: fk.Convert("XYZ"), "unknown mode"),
        (lambda: fk.Reflection("notacolour"), "unknown background_color"),
    ],
)
def test_invalid_arguments(build: t.Callable[[], object], match: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=match):
        build()


def test_anchor_get_tuple() -> None:
    assert Anchor.get_tuple(Anchor.CENTER) == (0.5, 0.5)
    assert Anchor.get_tuple((0.1, 0.9)) == (0.1, 0.9)
    with pytest.raises(ImproperlyConfigured, match="Use one of"):
        Anchor.get_tuple("q")
