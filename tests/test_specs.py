"""Tests for flask_imagekit.specs: ImageSpec generation, sources, errors and the spec hash."""

from __future__ import annotations

import dataclasses
import enum
import functools
import io
import json
import logging
import os
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from flask import Flask
from PIL import Image, features
from werkzeug.datastructures import FileStorage

import flask_imagekit
from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.cachefiles import LazyGeneratedImageFile
from flask_imagekit.exceptions import (
    GenerationError,
    ImageKitError,
    ImproperlyConfigured,
    MissingSource,
    SourceError,
)
from flask_imagekit.processors import (
    Adjust,
    Anchor,
    Crop,
    ResizeCanvas,
    ResizeToFill,
    ResizeToFit,
    Thumbnail,
    Transpose,
)
from flask_imagekit.specs.hashing import canonical, digest

from .conftest import CORPUS, encode, photo, psnr, save_source

HAS_AVIF = features.check("avif")


class AvatarThumbnail(ImageSpec):
    """The spec of the seed documentation, verbatim."""

    processors = [ResizeToFill(100, 50)]
    format = "JPEG"
    options = {"quality": 60}


@functools.lru_cache(maxsize=8)
def jpeg_bytes(size: tuple[int, int] = (640, 480), quality: int = 90) -> bytes:
    return encode(photo(size), "JPEG", quality=quality)


def result(out: t.IO[bytes]) -> Image.Image:
    img = Image.open(out)
    img.load()
    return img


def spec_class(base: type[ImageSpec] = ImageSpec, **attrs: t.Any) -> type[ImageSpec]:
    return type("DerivedSpec", (base,), attrs)


# Generation ---------------------------------------------------------------------------


def test_generate_from_class_attributes() -> None:
    out = AvatarThumbnail(source=io.BytesIO(jpeg_bytes())).generate()
    assert isinstance(out, io.BytesIO)
    assert out.tell() == 0
    img = result(out)
    assert (img.format, img.size, img.mode) == ("JPEG", (100, 50), "RGB")


def test_generated_pixels_match_the_processors() -> None:
    source = photo((640, 480))
    spec = spec_class(processors=[ResizeToFill(160, 90, anchor="tl")], format="PNG")
    img = result(spec(source=io.BytesIO(encode(source, "PNG"))).generate())
    assert psnr(img, ResizeToFill(160, 90, anchor="tl").process(source)) >= 50


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("JPEG", "JPEG"),
        ("jpeg", "JPEG"),
        ("PNG", "PNG"),
        ("WEBP", "WEBP"),
        ("GIF", "GIF"),
        ("TIFF", "TIFF"),
        ("BMP", "BMP"),
        pytest.param(
            "AVIF", "AVIF", marks=pytest.mark.skipif(not HAS_AVIF, reason="no AVIF codec")
        ),
    ],
)
def test_output_format(fmt: str, expected: str) -> None:
    spec = spec_class(processors=[ResizeToFit(80, 80)], format=fmt)
    img = result(spec(source=io.BytesIO(jpeg_bytes())).generate())
    assert img.format == expected
    assert img.size == (80, 60)


def test_options_reach_the_encoder() -> None:
    low = spec_class(AvatarThumbnail, options={"quality": 5})
    high = spec_class(AvatarThumbnail, options={"quality": 95})
    small = low(source=io.BytesIO(jpeg_bytes())).generate().getvalue()
    big = high(source=io.BytesIO(jpeg_bytes())).generate().getvalue()
    assert len(small) < len(big)


def test_progressive_option() -> None:
    spec = spec_class(AvatarThumbnail, options={"quality": 80, "progressive": True})
    img = result(spec(source=io.BytesIO(jpeg_bytes())).generate())
    assert img.info.get("progressive") or img.info.get("progression")


def test_autoconvert_false_leaves_mode_alone() -> None:
    # ResizeToFill gives RGBA (pilkit semantics); JPEG cannot hold it unconverted.
    spec = spec_class(AvatarThumbnail, autoconvert=False)
    with pytest.raises(GenerationError) as info:
        spec(source=io.BytesIO(jpeg_bytes())).generate()
    assert "JPEG" in str(info.value)
    png = spec_class(AvatarThumbnail, autoconvert=False, format="PNG")
    assert result(png(source=io.BytesIO(jpeg_bytes())).generate()).mode == "RGBA"


class SizedThumbnail(ImageSpec):
    """A dynamic spec: its processors depend on the instance."""

    format = "PNG"

    def __init__(self, source: t.Any = None, width: int = 10, height: int = 10) -> None:
        super().__init__(source=source)
        self.width, self.height = width, height

    @property
    def processors(self) -> list[t.Any]:
        return [ResizeToFill(self.width, self.height)]


@pytest.mark.parametrize("size", [(30, 20), (64, 64), (10, 90)])
def test_processors_as_a_property(size: tuple[int, int]) -> None:
    spec = SizedThumbnail(source=io.BytesIO(jpeg_bytes()), width=size[0], height=size[1])
    assert result(spec.generate()).size == size


@pytest.mark.parametrize(
    ("src_fmt", "out_fmt"),
    [
        ("JPEG", "JPEG"),
        ("PNG", "PNG"),
        ("GIF", "GIF"),
        ("WEBP", "WEBP"),
        ("BMP", "PNG"),
        ("TIFF", "PNG"),
    ],
)
@pytest.mark.parametrize("processors", [[], [ResizeToFit(50, 50)]], ids=["none", "fit"])
def test_format_none_keeps_a_web_source_format(
    src_fmt: str, out_fmt: str, processors: list[t.Any]
) -> None:
    # A nameless stream: its sniffed format decides; formats browsers do not show
    # become PNG.
    spec = spec_class(processors=processors)
    source = io.BytesIO(encode(photo((100, 80)), src_fmt))
    img = result(spec(source=source).generate())
    assert img.format == out_fmt
    assert img.size == ((100, 80) if not processors else (50, 40))


def test_format_none_for_mpo_gives_jpeg() -> None:
    buf = io.BytesIO()
    photo((120, 80)).save(buf, "MPO", save_all=True, append_images=[photo((120, 80))])
    buf.seek(0)
    assert result(spec_class()(source=buf).generate()).format == "JPEG"


@pytest.mark.parametrize("source", [None, ""])
def test_no_source(source: t.Any) -> None:
    spec = AvatarThumbnail(source=source)
    assert not spec.source
    with pytest.raises(MissingSource) as info:
        spec.generate()
    assert "source" in str(info.value)
    assert isinstance(info.value, ImageKitError)


def test_no_source_default_argument() -> None:
    with pytest.raises(MissingSource):
        AvatarThumbnail().generate()


# Sources -----------------------------------------------------------------------------


def test_source_name_in_storage(ctx: Flask, media_root: Path) -> None:
    name = save_source(media_root, "photos/bulldog.jpg")
    spec = AvatarThumbnail(source=name)
    assert spec.source is not None
    assert spec.source.name == "photos/bulldog.jpg"
    assert result(spec.generate()).size == (100, 50)


def test_missing_name_in_storage(ctx: Flask) -> None:
    with pytest.raises(MissingSource) as info:
        AvatarThumbnail(source="photos/nope.jpg").generate()
    assert "photos/nope.jpg" in str(info.value)


def test_source_name_outside_storage_root_is_refused(ctx: Flask) -> None:
    with pytest.raises(ImageKitError):
        AvatarThumbnail(source="../../etc/passwd").generate()


def test_path_source(tmp_path: Path) -> None:
    path = tmp_path / "in.jpg"
    path.write_bytes(jpeg_bytes())
    spec = AvatarThumbnail(source=path)
    assert spec.source is not None
    assert spec.source.name == str(path)
    assert result(spec.generate()).size == (100, 50)


def test_missing_path_source(tmp_path: Path) -> None:
    with pytest.raises(MissingSource):
        AvatarThumbnail(source=tmp_path / "missing.jpg").generate()


def test_open_binary_file_is_left_open_at_its_position(tmp_path: Path) -> None:
    path = tmp_path / "in.jpg"
    path.write_bytes(jpeg_bytes())
    with open(path, "rb") as fp:
        fp.seek(123)
        spec = AvatarThumbnail(source=fp)
        assert result(spec.generate()).size == (100, 50)
        assert not fp.closed
        assert fp.tell() == 123
        # and again: the file is still usable
        assert result(AvatarThumbnail(source=fp).generate()).size == (100, 50)
        assert spec.source is not None
        assert spec.source.name == str(path)


def test_text_mode_file_is_reopened_in_binary(tmp_path: Path) -> None:
    path = tmp_path / "in.jpg"
    path.write_bytes(jpeg_bytes())
    with open(path, encoding="latin-1") as fp:
        assert result(AvatarThumbnail(source=fp).generate()).size == (100, 50)
        assert not fp.closed


def test_closed_file_is_reopened_by_name(tmp_path: Path) -> None:
    path = tmp_path / "in.jpg"
    path.write_bytes(jpeg_bytes())
    with open(path, "rb") as fp:
        pass
    assert fp.closed
    assert result(AvatarThumbnail(source=fp).generate()).size == (100, 50)


def test_filestorage_source() -> None:
    stream = io.BytesIO(jpeg_bytes())
    upload = FileStorage(stream, filename="bulldog.jpg", content_type="image/jpeg")
    spec = AvatarThumbnail(source=upload)
    assert spec.source is not None
    assert spec.source.name == "bulldog.jpg"
    assert result(spec.generate()).size == (100, 50)
    assert not stream.closed
    assert result(AvatarThumbnail(source=upload).generate()).size == (100, 50)


@pytest.mark.parametrize("position", [0, 50])
def test_bytesio_without_name(position: int) -> None:
    buf = io.BytesIO(jpeg_bytes())
    buf.seek(position)
    spec = AvatarThumbnail(source=buf)
    assert spec.source is not None
    assert spec.source.name is None
    assert result(spec.generate()).size == (100, 50)
    assert buf.tell() == position
    assert len(spec.get_hash()) == 32


@pytest.mark.parametrize("bad", [io.StringIO("not an image"), 12345, object()])
def test_unusable_sources(bad: t.Any) -> None:
    with pytest.raises(SourceError) as info:
        AvatarThumbnail(source=bad)
    assert "binary" in str(info.value) or "source" in str(info.value)


@pytest.mark.parametrize(
    ("name", "word"),
    [("hopper.psd", "PSD"), ("zero_bb.eps", "EPS"), ("truncated_jpeg.jpg", "truncated")],
)
def test_source_errors_pass_through(name: str, word: str) -> None:
    with pytest.raises(SourceError) as info:
        AvatarThumbnail(source=io.BytesIO((CORPUS / name).read_bytes())).generate()
    assert word in str(info.value)


def _configured_app(app: Flask, **config: t.Any) -> Flask:
    app.config.update(config)
    ImageKit(app)
    return app


def test_app_pixel_cap_applies(app: Flask, media_root: Path) -> None:
    _configured_app(app, IMAGEKIT_MAX_SOURCE_PIXELS=640 * 480 - 1)
    name = save_source(media_root, "photos/big.jpg", photo((640, 480)))
    with app.app_context(), pytest.raises(SourceError) as info:
        AvatarThumbnail(source=name).generate()
    assert "IMAGEKIT_MAX_SOURCE_PIXELS" in str(info.value)


def test_app_allow_list_applies(app: Flask, media_root: Path) -> None:
    _configured_app(app, IMAGEKIT_ALLOWED_SOURCE_FORMATS=["PNG"])
    jpg = save_source(media_root, "photos/a.jpg")
    png = save_source(media_root, "photos/a.png")
    with app.app_context():
        with pytest.raises(SourceError):
            AvatarThumbnail(source=jpg).generate()
        assert result(AvatarThumbnail(source=png).generate()).size == (100, 50)


@pytest.mark.parametrize(
    "name", sorted(p.name for p in CORPUS.iterdir() if not p.name.startswith("LICENSE"))
)
def test_corpus_gives_output_or_imagekit_error(name: str) -> None:
    spec = spec_class(processors=[Thumbnail(40, 40)], format="PNG")
    try:
        out = spec(source=io.BytesIO((CORPUS / name).read_bytes())).generate()
    except ImageKitError:
        return
    img = result(out)
    assert img.format == "PNG"
    assert max(img.size) <= 40


# Several specs of one source ----------------------------------------------------------


def test_prepare_specs_decodes_once_for_several_specs(monkeypatch: pytest.MonkeyPatch) -> None:
    from flask_imagekit import specs as specs_module

    opened: list[t.Any] = []
    original = specs_module.open_image

    def spy(*args: t.Any, **kwargs: t.Any) -> Image.Image:
        img = original(*args, **kwargs)
        opened.append(img)
        return img

    monkeypatch.setattr(specs_module, "open_image", spy)
    source = photo((1600, 1200))
    buf = io.BytesIO(encode(source, "JPEG", quality=95))
    small = spec_class(processors=[ResizeToFill(100, 50)], format="PNG")(source=buf)
    large = spec_class(processors=[ResizeToFit(400, 400)], format="PNG")(source=buf)
    plain = spec_class(processors=[Adjust(contrast=1.0)], format="PNG")(source=buf)
    specs_module.prepare_specs([small, large, plain])
    assert len(opened) == 1
    outputs = [result(spec.generate()) for spec in (small, large, plain)]
    assert len(opened) == 1, "generate() after prepare_specs must not decode again"
    assert outputs[0].size == (100, 50)
    assert psnr(outputs[0], ResizeToFill(100, 50).process(source)) >= 40
    assert psnr(outputs[1], ResizeToFit(400, 400).process(source)) >= 40
    assert outputs[2].size == (1600, 1200)
    # A second generate() decodes afresh.
    assert result(small.generate()).size == (100, 50)
    assert len(opened) == 2


@pytest.mark.parametrize("orientation", [1, 6])
def test_prepare_specs_with_mixed_auto_orient(orientation: int) -> None:
    upright, data = _oriented(orientation)
    buf = io.BytesIO(data)
    turned = spec_class(processors=[ResizeToFit(150, 150)], format="PNG")(source=buf)
    raw = spec_class(processors=[ResizeToFit(150, 150)], format="PNG", auto_orient=False)(
        source=buf
    )
    from flask_imagekit.specs import prepare_specs

    prepare_specs([turned, raw])
    a, b = result(turned.generate()), result(raw.generate())
    assert psnr(a, ResizeToFit(150, 150).process(upright)) >= 35
    with Image.open(io.BytesIO(data)) as stored:
        stored.load()
        assert psnr(b, ResizeToFit(150, 150).process(stored)) >= 35


def test_prepare_specs_mixed_auto_orient_truncated_source() -> None:
    from flask_imagekit.specs import prepare_specs

    buf = io.BytesIO(jpeg_bytes()[:3000])
    a = spec_class(processors=[ResizeToFill(10, 10)])(source=buf)
    b = spec_class(processors=[ResizeToFill(10, 10)], auto_orient=False)(source=buf)
    with pytest.raises(SourceError):
        prepare_specs([a, b])


def test_prepare_specs_without_source() -> None:
    from flask_imagekit.specs import prepare_specs

    prepare_specs([])  # nothing to do
    with pytest.raises(MissingSource):
        prepare_specs([AvatarThumbnail(source=None)])


# Failures -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Exploding:
    """A processor that fails."""

    message: str = "kaboom"

    def process(self, img: Image.Image) -> Image.Image:
        raise ValueError(self.message)


@pytest.mark.parametrize(
    "processors",
    [[Exploding()], [ResizeToFill(50, 50), Exploding()], [Adjust(contrast=1.1), Exploding()]],
    ids=["first", "after-fast-path", "after-slow-processor"],
)
def test_processor_failure_is_a_generation_error(processors: list[t.Any]) -> None:
    spec = spec_class(processors=processors, format="PNG")
    with pytest.raises(GenerationError) as info:
        spec(source=io.BytesIO(jpeg_bytes())).generate()
    message = str(info.value)
    assert "Exploding" in message
    assert "kaboom" in message
    assert isinstance(info.value.__cause__, ValueError)


def test_imagekit_errors_from_processors_are_not_wrapped() -> None:
    class Refusing:
        def process(self, img: Image.Image) -> Image.Image:
            msg = "refused by processor"
            raise ImproperlyConfigured(msg)

    spec = spec_class(processors=[Refusing()], format="PNG")
    with pytest.raises(ImproperlyConfigured, match="refused by processor"):
        spec(source=io.BytesIO(jpeg_bytes())).generate()


def test_processor_returning_a_non_image() -> None:
    class Nothing:
        def process(self, img: Image.Image) -> None:
            return None

    spec = spec_class(processors=[Nothing()], format="PNG")
    with pytest.raises(GenerationError):
        spec(source=io.BytesIO(jpeg_bytes())).generate()


class _PlanRaises:
    def plan(self, size: tuple[int, int]) -> t.Any:
        msg = "plan exploded"
        raise ValueError(msg)

    def process(self, img: Image.Image) -> Image.Image:
        return img


class _UnrelatedPlan:
    """A user processor that happens to have a method called ``plan``."""

    def plan(self) -> str:
        return "premium"

    def process(self, img: Image.Image) -> Image.Image:
        return img.resize((10, 10))


def test_processor_plan_failure_falls_back_to_process() -> None:
    spec = spec_class(processors=[_PlanRaises()], format="PNG")
    source = jpeg_bytes()
    expected = Image.open(io.BytesIO(source)).size
    assert result(spec(source=io.BytesIO(source)).generate()).size == expected


def test_processor_with_an_unrelated_plan_method() -> None:
    spec = spec_class(processors=[_UnrelatedPlan()], format="PNG")
    assert result(spec(source=io.BytesIO(jpeg_bytes())).generate()).size == (10, 10)


@pytest.mark.parametrize(
    ("fmt", "options"),
    [
        ("JPEG", {"quality": "bad"}),
        ("PNG", {"compress_level": "high"}),
        ("WEBP", {"method": "fast"}),
    ],
    ids=["jpeg-quality", "png-level", "webp-method"],
)
def test_encoder_failure_is_a_generation_error(fmt: str, options: dict[str, t.Any]) -> None:
    spec = spec_class(processors=[ResizeToFit(40, 40)], format=fmt, options=options)
    with pytest.raises(GenerationError) as info:
        spec(source=io.BytesIO(jpeg_bytes())).generate()
    assert fmt in str(info.value)
    assert "options" in str(info.value) or "format" in str(info.value)


def test_unknown_format_is_a_configuration_error() -> None:
    # A programming error: it raises in every mode, never degrades to a placeholder.
    spec = spec_class(processors=[ResizeToFit(40, 40)], format="NOPE")
    with pytest.raises(ImproperlyConfigured, match="NOPE"):
        spec(source=io.BytesIO(jpeg_bytes())).generate()


# Orientation and metadata through a spec --------------------------------------------


def _oriented(orientation: int, size: tuple[int, int] = (300, 200)) -> tuple[Image.Image, bytes]:
    stored_from_upright = {
        1: None,
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_90,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_270,
    }
    upright = photo(size)
    method = stored_from_upright[orientation]
    stored = upright if method is None else upright.transpose(method)
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "SecretCam"
    return upright, encode(stored, "JPEG", quality=95, exif=exif.tobytes())


@pytest.mark.parametrize("orientation", range(1, 9))
def test_spec_output_is_upright_and_has_no_orientation_tag(orientation: int) -> None:
    upright, data = _oriented(orientation)
    spec = spec_class(
        processors=[ResizeToFill(150, 60, anchor="tl")], format="JPEG", options={"quality": 95}
    )
    out = spec(source=io.BytesIO(data)).generate().getvalue()
    img = result(io.BytesIO(out))
    assert img.size == (150, 60)
    # JPEG (4:2:0 chroma) on saturated edges: ~31 dB; a wrong orientation gives ~5 dB.
    assert psnr(img, ResizeToFill(150, 60, anchor="tl").process(upright)) >= 28
    rotated = upright.transpose(Image.Transpose.ROTATE_180)
    assert psnr(img, ResizeToFill(150, 60, anchor="tl").process(rotated)) < 15
    assert 0x0112 not in img.getexif()
    assert b"SecretCam" not in out


@pytest.mark.parametrize("orientation", [1, 6])
def test_auto_orient_false(orientation: int) -> None:
    upright, data = _oriented(orientation)
    spec = spec_class(format="PNG", auto_orient=False)
    img = result(spec(source=io.BytesIO(data)).generate())
    with Image.open(io.BytesIO(data)) as stored:
        assert img.size == stored.size


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_transpose_auto_after_auto_orient_does_not_rotate_twice(orientation: int) -> None:
    upright, data = _oriented(orientation)
    spec = spec_class(processors=[Transpose(), ResizeToFit(150, 150)], format="PNG")
    img = result(spec(source=io.BytesIO(data)).generate())
    expected = ResizeToFit(150, 150).process(upright)
    assert img.size == expected.size
    assert psnr(img, expected) >= 35


def test_gps_does_not_leak_through_a_spec() -> None:
    data = (CORPUS / "exif_gps.jpg").read_bytes()
    for fmt in ("JPEG", "PNG", "WEBP"):
        out = spec_class(format=fmt)(source=io.BytesIO(data)).generate().getvalue()
        img = result(io.BytesIO(out))
        assert 0x8825 not in img.getexif()
        assert b"Exif\x00\x00" not in out


# The spec hash ------------------------------------------------------------------------


def test_hash_is_a_32_char_hex_digest() -> None:
    value = AvatarThumbnail(source="photos/bulldog.jpg").get_hash()
    assert len(value) == 32
    int(value, 16)


def test_digest_of_builtin_values_is_pinned() -> None:
    # Cache file names derive from these digests: they must not depend on the process,
    # the Python version or dict/set order (DESIGN section 4). Pinned on plain values
    # so that it only changes when the canonical form itself changes.
    values = (
        "photos/bulldog.jpg",
        [1, 2.5, "x", None, True, b"\x00", {"b": 1, "a": [1, 2]}, {3, 1}],
    )
    assert digest(*values) == "317d653ed1a72dcff8039bc233b0652b"


def test_equal_specs_have_equal_hashes() -> None:
    a = AvatarThumbnail(source="photos/bulldog.jpg").get_hash()
    b = AvatarThumbnail(source="photos/bulldog.jpg").get_hash()
    twin = spec_class(processors=[ResizeToFill(100, 50)], format="JPEG", options={"quality": 60})
    assert a == b == twin(source="photos/bulldog.jpg").get_hash()


def test_options_order_does_not_matter() -> None:
    first = spec_class(AvatarThumbnail, options={"quality": 60, "optimize": True, "dpi": (72, 72)})
    second = spec_class(
        AvatarThumbnail, options={"dpi": (72, 72), "optimize": True, "quality": 60}
    )
    assert first(source="a.jpg").get_hash() == second(source="a.jpg").get_hash()


def test_processors_list_or_tuple() -> None:
    as_tuple = spec_class(AvatarThumbnail, processors=(ResizeToFill(100, 50),))
    assert as_tuple(source="a.jpg").get_hash() == AvatarThumbnail(source="a.jpg").get_hash()


CHANGES: dict[str, dict[str, t.Any]] = {
    "width": {"processors": [ResizeToFill(101, 50)]},
    "height": {"processors": [ResizeToFill(100, 51)]},
    "anchor": {"processors": [ResizeToFill(100, 50, anchor=Anchor.TOP)]},
    "upscale": {"processors": [ResizeToFill(100, 50, upscale=False)]},
    "processor-class": {"processors": [ResizeToFit(100, 50)]},
    "extra-processor": {"processors": [ResizeToFill(100, 50), Adjust(contrast=1.1)]},
    "processor-order": {"processors": [Adjust(contrast=1.1), ResizeToFill(100, 50)]},
    "no-processors": {"processors": []},
    "format": {"format": "PNG"},
    "format-none": {"format": None},
    "quality": {"options": {"quality": 61}},
    "extra-option": {"options": {"quality": 60, "progressive": True}},
    "no-options": {"options": None},
    "autoconvert": {"autoconvert": False},
    "auto_orient": {"auto_orient": False},
    "canvas-color": {"processors": [ResizeToFill(100, 50), ResizeCanvas(120, 60, color="red")]},
}


@pytest.mark.parametrize("change", list(CHANGES), ids=list(CHANGES))
def test_any_parameter_change_changes_the_hash(change: str) -> None:
    changed = spec_class(AvatarThumbnail, **CHANGES[change])
    base = AvatarThumbnail(source="photos/bulldog.jpg").get_hash()
    assert changed(source="photos/bulldog.jpg").get_hash() != base


def test_all_changes_give_distinct_hashes() -> None:
    hashes = {
        spec_class(AvatarThumbnail, **attrs)(source="x.jpg").get_hash()
        for attrs in CHANGES.values()
    }
    assert len(hashes) == len(CHANGES)


@pytest.mark.parametrize("other", ["photos/bulldog.jpeg", "photos/Bulldog.jpg", "bulldog.jpg"])
def test_source_name_changes_the_hash(other: str) -> None:
    base = AvatarThumbnail(source="photos/bulldog.jpg").get_hash()
    assert AvatarThumbnail(source=other).get_hash() != base


def test_instance_attribute_override_changes_the_hash() -> None:
    spec = AvatarThumbnail(source="photos/bulldog.jpg")
    spec.format = "PNG"
    assert spec.get_hash() != AvatarThumbnail(source="photos/bulldog.jpg").get_hash()
    assert (
        spec.get_hash()
        == spec_class(AvatarThumbnail, format="PNG")(source="photos/bulldog.jpg").get_hash()
    )


def test_dynamic_spec_hashes_by_its_current_processors() -> None:
    a = SizedThumbnail(source="x.jpg", width=30, height=20)
    b = SizedThumbnail(source="x.jpg", width=30, height=20)
    c = SizedThumbnail(source="x.jpg", width=31, height=20)
    assert a.get_hash() == b.get_hash()
    assert a.get_hash() != c.get_hash()
    static = spec_class(processors=[ResizeToFill(30, 20)], format="PNG")
    assert a.get_hash() == static(source="x.jpg").get_hash()


class QualitySpec(ImageSpec):
    """Options that change with the instance (e.g. from a model column)."""

    processors = [ResizeToFill(100, 50)]
    format = "JPEG"

    def __init__(self, source: t.Any = None, quality: int = 60) -> None:
        super().__init__(source=source)
        self.quality = quality

    @property
    def options(self) -> dict[str, t.Any]:  # type: ignore[override]
        return {"quality": self.quality}


@pytest.mark.parametrize("case", ["options-property", "mutated-class-options"])
def test_dynamic_options_change_the_hash(case: str) -> None:
    if case == "options-property":
        first = QualitySpec(source="x.jpg", quality=60).get_hash()
        second = QualitySpec(source="x.jpg", quality=90).get_hash()
    else:
        spec = spec_class(processors=[ResizeToFill(10, 10)], options={"quality": 60})
        first = spec(source="x.jpg").get_hash()
        spec.options["quality"] = 90  # type: ignore[index]
        second = spec(source="x.jpg").get_hash()
    assert first != second


HASH_SCRIPT = """
import json
from flask_imagekit import ImageSpec
from flask_imagekit.processors import (
    Adjust, ResizeCanvas, ResizeToFill, SmartResize, Thumbnail, Transpose,
)

class AvatarThumbnail(ImageSpec):
    processors = [ResizeToFill(100, 50)]
    format = "JPEG"
    options = {"quality": 60}

class Rich(ImageSpec):
    processors = [
        Transpose(Transpose.ROTATE_90, Transpose.FLIP_HORIZONTAL),
        SmartResize(80, 60),
        ResizeCanvas(100, 100, color=(1, 2, 3, 4), anchor=(0.25, 0.75)),
        Adjust(contrast=1.25, sharpness=0.5),
        Thumbnail(50, 50, anchor="tl"),
    ]
    format = "WEBP"
    options = {
        "quality": 70,
        "extra": {"tags": frozenset({"alpha", "beta", "gamma", "delta"}), "n": (1, 2.5)},
        "names": {"zeta", "eta", "theta"},
    }

class Dynamic(ImageSpec):
    format = "PNG"
    @property
    def processors(self):
        return [ResizeToFill(len(self.source.name), 7)]

def hashes():
    return {
        "avatar": AvatarThumbnail(source="photos/bulldog.jpg").get_hash(),
        "avatar-other": AvatarThumbnail(source="photos/other.jpg").get_hash(),
        "rich": Rich(source="photos/bulldog.jpg").get_hash(),
        "dynamic": Dynamic(source="photos/bulldog.jpg").get_hash(),
    }
"""


def _hashes_in_subprocess(seed: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONHASHSEED=seed)
    code = HASH_SCRIPT + "\nprint(json.dumps(hashes()))\n"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return t.cast(dict[str, str], json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def in_process_hashes() -> dict[str, str]:
    namespace: dict[str, t.Any] = {"__name__": "hash_script"}
    exec(HASH_SCRIPT, namespace)  # noqa: S102 - our own constant
    return t.cast(dict[str, str], namespace["hashes"]())


@pytest.mark.parametrize("seed", ["0", "4242"])
def test_hash_is_stable_across_processes(seed: str, in_process_hashes: dict[str, str]) -> None:
    assert _hashes_in_subprocess(seed) == in_process_hashes


def test_hash_script_values_are_meaningful(in_process_hashes: dict[str, str]) -> None:
    assert len(set(in_process_hashes.values())) == len(in_process_hashes)
    assert in_process_hashes["avatar"] == AvatarThumbnail(source="photos/bulldog.jpg").get_hash()


# canonical() ---------------------------------------------------------------------------


class Colour(enum.Enum):
    RED = 1
    GREEN = 2


class Mood(enum.Enum):
    RED = 1


@dataclasses.dataclass(frozen=True)
class Point:
    x: float
    y: float


@dataclasses.dataclass(frozen=True)
class OtherPoint:
    x: float
    y: float


class Plain:
    def __init__(self, a: t.Any, b: t.Any) -> None:
        self.a = a
        self.b = b


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a: t.Any, b: t.Any) -> None:
        self.a = a
        self.b = b


def test_canonical_nested_structures_ignore_order() -> None:
    one = {
        "b": {"y": {3, 1, 2}, "x": (Colour.RED, Point(1.0, 2.0))},
        "a": [frozenset({"q", "p"}), {"k2": None, "k1": True}],
    }
    two = {
        "a": [frozenset({"p", "q"}), {"k1": True, "k2": None}],
        "b": {"x": (Colour.RED, Point(1.0, 2.0)), "y": {2, 3, 1}},
    }
    assert canonical(one) == canonical(two)
    assert digest(one) == digest(two)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (1, "1"),
        (1, 1.0),
        (True, 1),
        (None, "None"),
        (b"x", "x"),
        (Colour.RED, Colour.GREEN),
        (Colour.RED, Mood.RED),
        (Colour.RED, 1),
        (Point(1, 2), Point(2, 1)),
        (Point(1, 2), OtherPoint(1, 2)),
        ({"a": 1}, {"a": 2}),
        ({"a": 1}, {"b": 1}),
        ([1, 2], [2, 1]),
        ({1, 2}, {1, 3}),
        ({1: 2}, {2: 1}),
        (Plain(1, 2), Plain(2, 1)),
        (Slotted(1, 2), Slotted(1, 3)),
        (Plain, Slotted),
        (ResizeToFill(10, 10), ResizeToFit(10, 10)),
        ("a,b", ["a", "b"]),
    ],
)
def test_canonical_distinguishes(a: t.Any, b: t.Any) -> None:
    assert canonical(a) != canonical(b)


def test_canonical_equal_values() -> None:
    assert canonical(Point(1.5, 2)) == canonical(Point(1.5, 2))
    assert canonical(Plain({"b": 1, "a": 2}, [Colour.GREEN])) == canonical(
        Plain({"a": 2, "b": 1}, [Colour.GREEN])
    )
    assert canonical(Slotted(1, "x")) == canonical(Slotted(1, "x"))
    assert canonical(ResizeToFill(10, 20, anchor="tl")) == canonical(
        ResizeToFill(10, 20, anchor=Anchor.TOP_LEFT)
    )
    assert canonical({3, 2, 1}) == canonical(frozenset({1, 2, 3}))


def test_canonical_names_types_by_import_path() -> None:
    text = canonical(Point(1, 2))
    assert f"{Point.__module__}.Point" in text
    assert canonical(Colour.RED).endswith("Colour.RED")
    assert canonical(ResizeToFill).startswith("class:flask_imagekit.")


def test_canonical_images_by_content() -> None:
    a = photo((16, 16))
    assert canonical(a) == canonical(a.copy())
    b = a.copy()
    b.putpixel((0, 0), (1, 2, 3))
    assert canonical(a) != canonical(b)


def test_canonical_of_processor_lists() -> None:
    crop_a, crop_b = Crop(10, 10, anchor="tl"), Crop(10, 10, anchor="br")
    assert canonical([crop_a]) != canonical([crop_b])


@pytest.mark.parametrize(
    "value",
    [object(), [1, object()], {"k": object()}],
    ids=["object", "in-list", "in-dict"],
)
def test_canonical_refuses_values_without_stable_form(value: t.Any) -> None:
    with pytest.raises(ImproperlyConfigured) as info:
        canonical(value)
    assert "stable" in str(info.value)


def test_spec_with_unhashable_parameter_raises_improperly_configured() -> None:
    spec = spec_class(processors=[ResizeToFill(10, 10)], options={"sentinel": object()})
    with pytest.raises(ImproperlyConfigured):
        spec(source="x.jpg").get_hash()


def _double(x: int) -> int:
    return 2 * x


def _triple(x: int) -> int:
    return 3 * x


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (_double, _triple),
        (functools.partial(int, base=2), functools.partial(int, base=8)),
    ],
    ids=["functions", "partials"],
)
def test_canonical_callables_do_not_collide(a: t.Any, b: t.Any) -> None:
    try:
        left, right = canonical(a), canonical(b)
    except ImproperlyConfigured:
        return
    assert left != right


# End to end through the app ---------------------------------------------------------


@pytest.fixture
def avatar(ctx: Flask, media_root: Path) -> LazyGeneratedImageFile:
    save_source(media_root, "photos/bulldog.jpg", photo((640, 480)))
    flask_imagekit.register.generator("myapp:profile:avatar_thumbnail", AvatarThumbnail)
    return LazyGeneratedImageFile("myapp:profile:avatar_thumbnail", source="photos/bulldog.jpg")


def test_lazy_generated_image_file(avatar: LazyGeneratedImageFile, media_root: Path) -> None:
    avatar.generate()
    assert avatar.name.startswith("CACHE/images/photos/bulldog/")
    assert avatar.name.endswith(".jpg")
    assert AvatarThumbnail(source="photos/bulldog.jpg").get_hash() in avatar.name
    assert avatar.url == "/media/" + avatar.name
    assert (avatar.width, avatar.height) == (100, 50)
    stored = (media_root / avatar.name).read_bytes()
    assert stored[:3] == b"\xff\xd8\xff"
    img = result(io.BytesIO(stored))
    assert (img.format, img.size) == ("JPEG", (100, 50))


def test_served_with_long_max_age_and_conditional_get(
    avatar: LazyGeneratedImageFile, ctx: Flask, media_root: Path
) -> None:
    avatar.generate()
    client = ctx.test_client()
    response = client.get(avatar.url)
    try:
        assert response.status_code == 200
        assert response.mimetype == "image/jpeg"
        assert response.data == (media_root / avatar.name).read_bytes()
        cache_control = response.cache_control
        assert cache_control.max_age is not None
        assert cache_control.max_age >= 30 * 24 * 3600
        etag = response.headers["ETag"]
        last_modified = response.headers["Last-Modified"]
    finally:
        response.close()
    again = client.get(avatar.url, headers={"If-None-Match": etag})
    try:
        assert again.status_code == 304
        assert again.data == b""
    finally:
        again.close()
    since = client.get(avatar.url, headers={"If-Modified-Since": last_modified})
    try:
        assert since.status_code == 304
    finally:
        since.close()
    stale = client.get(avatar.url, headers={"If-None-Match": '"not-the-etag"'})
    try:
        assert stale.status_code == 200
    finally:
        stale.close()


def test_url_generates_just_in_time(avatar: LazyGeneratedImageFile, media_root: Path) -> None:
    assert not (media_root / "CACHE").exists()
    url = avatar.url  # JustInTime: existence required -> generated
    assert url.endswith(".jpg")
    assert (media_root / avatar.name).is_file()


def test_generation_does_not_lose_the_state_cache(
    avatar: LazyGeneratedImageFile, caplog: pytest.LogCaptureFixture
) -> None:
    # Regression: float timeouts made cachelib warn (an error under this suite's
    # filterwarnings), and the backend silently went on without its state and lock.
    with caplog.at_level(logging.WARNING, logger="flask_imagekit"):
        avatar.generate()
        assert avatar.url
    failures = [r.getMessage() for r in caplog.records if "state cache" in r.getMessage()]
    assert failures == []
