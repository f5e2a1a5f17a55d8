"""Responsive candidates generated together, encoder settings, blur previews, and the CLI.

The candidates of one source (a spec's output at several widths, in several
formats) generated together cost one decode, one run of the spec's processors and
one resize per width, whatever the number of formats; each is the same file it
would be alone. A candidate records its spec's output size and a blur preview.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import multiprocessing
import os
import random
import re
import threading
import typing as t
import weakref
from pathlib import Path

import pytest
from click.testing import Result
from flask import Flask, current_app
from PIL import Image, JpegImagePlugin, features

import flask_imagekit.specs
from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.exceptions import GenerationError, SourceError
from flask_imagekit.generation import START_METHOD_ENV
from flask_imagekit.globals import current_state
from flask_imagekit.imaging import ENCODER_DEFAULTS, save_image
from flask_imagekit.imaging.preview import MAX_PREVIEW_LENGTH, blur_preview
from flask_imagekit.processors import Adjust, ResizeToFill, ResizeToFit
from flask_imagekit.sources import SourceFile
from flask_imagekit.specs import (
    decode_together,
    encode_threads,
    encoding_pool,
    prepare_specs,
    set_encode_threads,
)
from flask_imagekit.specs.responsive import Candidate, candidate_spec, declared_candidates

from .conftest import Recorder, encode, photo, psnr, save_source

if t.TYPE_CHECKING:
    from flask_imagekit.state import AppState

pytestmark = pytest.mark.skipif(not features.check("avif"), reason="Pillow without AVIF")

FORMATS = ("AVIF", "WEBP", "JPEG")
WIDTHS = (100, 200, 300)


@dataclasses.dataclass(frozen=True)
class Counted:
    """A pure processor that counts its runs (in ``RUNS``, by label)."""

    label: str = "counted"

    def process(self, img: Image.Image) -> Image.Image:
        RUNS[self.label] = RUNS.get(self.label, 0) + 1
        return img.copy()


RUNS: dict[str, int] = {}


@pytest.fixture(autouse=True)
def _reset_runs() -> None:
    RUNS.clear()


@dataclasses.dataclass(frozen=True)
class Failing:
    def process(self, img: Image.Image) -> Image.Image:
        msg = "no"
        raise ValueError(msg)


class Photo(ImageSpec):
    processors = [ResizeToFit(400, 400), Counted()]  # noqa: RUF012
    format = "JPEG"
    options = {"quality": 80}  # noqa: RUF012


def jpeg_source(size: tuple[int, int] = (800, 600), name: str = "photos/p.jpg") -> SourceFile:
    return SourceFile(name, file=io.BytesIO(encode(photo(size), "JPEG", quality=92)))


def opened(img: t.IO[bytes]) -> Image.Image:
    result = Image.open(img)
    result.load()
    return result


def candidates(
    spec: ImageSpec, widths: t.Sequence[int | None] = WIDTHS, formats: t.Sequence[str] = FORMATS
) -> list[Candidate]:
    return [Candidate(spec, width, fmt) for width in widths for fmt in formats]


@pytest.fixture
def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the sources decoded by specs from now on."""
    decoded: list[str] = []
    original = flask_imagekit.specs.open_image

    def spy(fp: t.Any, **kwargs: t.Any) -> Image.Image:
        decoded.append(str(kwargs.get("name")))
        return original(fp, **kwargs)

    monkeypatch.setattr(flask_imagekit.specs, "open_image", spy)
    return decoded


@pytest.fixture
def count_resizes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int | None, tuple[int, int]]]:
    """(width, input size) of each ResizeToFit.process from now on."""
    runs: list[tuple[int | None, tuple[int, int]]] = []
    original = ResizeToFit.process

    def spy(self: ResizeToFit, img: Image.Image) -> Image.Image:
        runs.append((self.width, img.size))
        return original(self, img)

    monkeypatch.setattr(ResizeToFit, "process", spy)
    return runs


# One decode, the spec's processors once, one resize per width ------------------------------


def test_candidates_generated_together_share_the_decode_the_processors_and_each_width(
    count_decodes: list[str], count_resizes: list[tuple[int | None, tuple[int, int]]]
) -> None:
    source = jpeg_source()
    base = Photo(source=source)
    group = [base, *candidates(Photo(source=source), [None], ("AVIF", "WEBP"))]
    group += candidates(Photo(source=source))
    decode_together(group)
    outputs = {(getattr(s, "width", None), s.format): opened(s.generate()) for s in group}

    assert count_decodes == ["photos/p.jpg"]
    assert RUNS == {"counted": 1}, "the spec's processors run once for every candidate"
    # One resize per width, from the spec's output (400x300), shared by the 3 formats.
    assert sorted(count_resizes) == [(width, (400, 300)) for width in WIDTHS]
    assert outputs[(None, "JPEG")].size == (400, 300)
    for width in WIDTHS:
        for fmt in FORMATS:
            img = outputs[(width, fmt)]
            assert (img.format, img.size) == (fmt, (width, width * 3 // 4))


def test_prepare_specs_shares_the_image_of_specs_with_equal_processors(
    count_decodes: list[str],
) -> None:
    source = jpeg_source()
    specs = [
        type("S", (ImageSpec,), {"processors": [Adjust(contrast=1.1), Counted()], "format": fmt})(
            source=source
        )
        for fmt in ("PNG", "WEBP", "JPEG")
    ]
    prepare_specs(specs)
    formats = [opened(spec.generate()).format for spec in specs]
    assert formats == ["PNG", "WEBP", "JPEG"]
    assert count_decodes == ["photos/p.jpg"]
    assert RUNS == {"counted": 1}


def test_specs_that_differ_keep_their_own_images() -> None:
    source = jpeg_source()
    a = type("A", (ImageSpec,), {"processors": [Counted("a")], "format": "PNG"})(source=source)
    b = type("B", (ImageSpec,), {"processors": [Counted("b")], "format": "PNG"})(source=source)
    c = type("C", (ImageSpec,), {"processors": [Counted("a")], "auto_orient": False})(
        source=source
    )
    prepare_specs([a, b, c])
    for spec in (a, b, c):
        spec.generate()
    assert RUNS == {"a": 2, "b": 1}


def test_a_candidate_is_the_same_file_together_or_alone() -> None:
    data = encode(photo((900, 700)), "JPEG", quality=92)

    def source() -> SourceFile:
        return SourceFile("photos/p.jpg", file=io.BytesIO(data))

    together = candidates(Photo(source=source()))
    decode_together(together)
    for shared in together:
        alone = Candidate(Photo(source=source()), shared.width, shared.format)
        assert shared.generate().getvalue() == alone.generate().getvalue(), shared


def test_widths_are_computed_from_the_specs_output(
    count_resizes: list[tuple[int | None, tuple[int, int]]],
) -> None:
    class Cropped(ImageSpec):
        processors = [ResizeToFill(600, 300)]  # noqa: RUF012
        format = "PNG"

    group = candidates(Cropped(source=jpeg_source((1600, 1200))), [150, 450], ["PNG"])
    prepare_specs(group)
    sizes = [opened(spec.generate()).size for spec in group]
    assert sizes == [(150, 75), (450, 225)]
    assert sorted(count_resizes) == [(150, (600, 300)), (450, (600, 300))]


def test_a_spec_without_processors_gives_narrow_candidates_from_a_reduced_decode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drafts: list[t.Any] = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self: Image.Image, mode: str | None, size: tuple[int, int] | None) -> t.Any:
        found = original(self, mode, size)  # type: ignore[arg-type]
        drafts.append(found)
        return found

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    plain = type("Plain", (ImageSpec,), {"format": "JPEG"})
    group = candidates(plain(source=jpeg_source((2400, 1800))), [300, 500], ["WEBP", "JPEG"])
    prepare_specs(group)
    assert [opened(spec.generate()).size for spec in group] == [(300, 225)] * 2 + [(500, 375)] * 2
    # Decoded at 1/2 or less (the widest candidate keeps its margin), not at full size.
    assert drafts
    assert drafts[0] is not None
    assert drafts[0][1][2] <= 1200


def test_a_failing_shared_step_fails_the_specs_that_need_it_and_no_other() -> None:
    source = jpeg_source()
    broken = type("Broken", (ImageSpec,), {"processors": [Failing()], "format": "PNG"})
    fine = type("Fine", (ImageSpec,), {"processors": [ResizeToFit(50)], "format": "PNG"})
    group = [*candidates(broken(source=source), [100], ["PNG", "JPEG"]), fine(source=source)]
    prepare_specs(group)
    for spec in group[:2]:
        with pytest.raises(GenerationError, match="Failing"):
            spec.generate()
    assert opened(group[2].generate()).size == (50, 38)


def test_shared_images_are_released_once_every_spec_is_done() -> None:
    group = candidates(Photo(source=jpeg_source()), [100, 200], ["WEBP", "JPEG"])
    prepare_specs(group)
    share = group[0].__dict__["_share"]
    for spec in group:
        spec.generate()
    assert share.alive() == 0


def test_candidates_let_go_without_generating_release_their_images() -> None:
    group = candidates(Photo(source=jpeg_source()), [100, 200], ["WEBP", "JPEG"])
    prepare_specs(group)
    share = group[0].__dict__["_share"]
    for spec in group[:2]:
        spec.generate()  # the spec's output and the 100 px image are made
    for spec in group[2:]:
        spec.discard()
    assert share.alive() == 0
    assert RUNS == {"counted": 1}


# Encoded at once ----------------------------------------------------------------------------


@pytest.fixture
def threads() -> t.Iterator[t.Callable[[int], None]]:
    """Set how many threads encode the outputs of specs decoded together (restored after)."""
    before = encode_threads()
    yield set_encode_threads
    set_encode_threads(before)


Encoded = list[tuple[int, str, tuple[int, int], "weakref.ref[t.IO[bytes]]"]]


@pytest.fixture
def encodes(monkeypatch: pytest.MonkeyPatch) -> Encoded:
    """(thread, format, size, output) of each encode of a spec from now on."""
    found: Encoded = []
    lock = threading.Lock()
    original = flask_imagekit.specs.save_image

    def spy(img: Image.Image, out: t.IO[bytes], fmt: str, *args: t.Any, **kw: t.Any) -> t.Any:
        with lock:
            found.append((threading.get_ident(), fmt, img.size, weakref.ref(out)))
        return original(img, out, fmt, *args, **kw)

    monkeypatch.setattr(flask_imagekit.specs, "save_image", spy)
    return found


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the encoding threads started from now on."""
    names: list[str] = []
    start = threading.Thread.start

    def spy(thread: threading.Thread) -> None:
        if thread.name.startswith("imagekit-encode"):  # resizes have threads of their own
            names.append(thread.name)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", spy)
    return names


def test_the_outputs_of_specs_decoded_together_are_encoded_at_once_slowest_first(
    threads: t.Callable[[int], None], monkeypatch: pytest.MonkeyPatch, encodes: Encoded
) -> None:
    threads(2)
    # The first two encodes wait for each other: they get past only if they run at once.
    barrier = threading.Barrier(2, timeout=5)
    spied = flask_imagekit.specs.save_image

    def meet(img: Image.Image, *args: t.Any, **kw: t.Any) -> t.Any:
        found = spied(img, *args, **kw)
        if len(encodes) <= 2:
            barrier.wait()
        return found

    monkeypatch.setattr(flask_imagekit.specs, "save_image", meet)
    base = Photo(source=jpeg_source())
    group = [base, *candidates(base, [100, 200])]
    decode_together(group)
    outputs = {(getattr(s, "width", None), s.format): opened(s.generate()) for s in group}

    assert len(encodes) == len(group), "each output encoded once"
    assert len({thread for thread, *_ in encodes}) == 2
    assert {(fmt, size) for _, fmt, size, _ in encodes[:2]} == {
        ("AVIF", (200, 150)),
        ("AVIF", (100, 75)),
    }, "the slowest first"
    assert outputs[(None, "JPEG")].size == (400, 300)
    for width in (100, 200):
        for fmt in FORMATS:
            assert (outputs[(width, fmt)].format, outputs[(width, fmt)].width) == (fmt, width)


def test_outputs_encoded_at_once_are_the_bytes_encoded_one_by_one(
    threads: t.Callable[[int], None], encodes: Encoded
) -> None:
    data = encode(photo((900, 700)), "JPEG", quality=92)
    found: dict[int, list[tuple[bytes, t.Any]]] = {}
    for count in (1, 4):
        threads(count)
        base = Photo(source=SourceFile("photos/p.jpg", file=io.BytesIO(data)))
        group = [base, *candidates(base, [100, 200, 300]), Candidate(base, None, "AVIF")]
        decode_together(group)
        found[count] = [(s.generate().getvalue(), getattr(s, "picture_info", None)) for s in group]
    assert found[1] == found[4]
    assert len({thread for thread, *_ in encodes}) > 1


def test_one_thread_or_a_spec_alone_encodes_in_its_own_generate_without_threads(
    threads: t.Callable[[int], None], started: list[str], encodes: Encoded
) -> None:
    threads(4)
    assert opened(Photo(source=jpeg_source()).generate()).size == (400, 300)
    threads(1)
    base = Photo(source=jpeg_source())
    group = [base, *candidates(base, [100, 200])]
    decode_together(group)
    for spec in group:
        before = len(encodes)
        spec.generate()
        assert len(encodes) == before + 1, "encoded by its own generate(), not ahead"
    assert started == []
    assert {thread for thread, *_ in encodes} == {threading.get_ident()}


def test_outputs_encoded_at_once_see_the_app_context_of_the_generate(
    ctx: Flask, threads: t.Callable[[int], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Configured(ImageSpec):
        processors = [ResizeToFit(300)]  # noqa: RUF012

        @property
        def options(self) -> dict[str, t.Any]:  # type: ignore[override]
            return {"quality": current_app.config["PHOTO_QUALITY"]}

    threads(2)
    ctx.config["PHOTO_QUALITY"] = 50
    # The first two encodes wait for each other: one of them runs in another thread.
    barrier = threading.Barrier(2, timeout=5)
    save = flask_imagekit.specs.save_image
    calls: list[str] = []

    def meet(img: Image.Image, out: t.IO[bytes], fmt: str, *args: t.Any, **kw: t.Any) -> t.Any:
        calls.append(fmt)
        if len(calls) <= 2:
            barrier.wait()
        return save(img, out, fmt, *args, **kw)

    monkeypatch.setattr(flask_imagekit.specs, "save_image", meet)
    group = [Configured(source=jpeg_source()) for _ in FORMATS]
    for spec, fmt in zip(group, FORMATS, strict=True):
        spec.format = fmt
    prepare_specs(group)
    assert [opened(spec.generate()).format for spec in group] == list(FORMATS)


def test_an_encoding_error_stays_with_its_spec(threads: t.Callable[[int], None]) -> None:
    class Broken(Photo):
        format_options = {"AVIF": {"quality": 1000}}  # noqa: RUF012

    threads(2)
    base = Broken(source=jpeg_source())
    group = [base, *candidates(base, [100, 200])]
    decode_together(group)
    for spec in group:
        if spec.format == "AVIF":
            with pytest.raises(GenerationError, match="as AVIF"):
                spec.generate()
        else:
            assert opened(spec.generate()).format == spec.format


def test_a_failing_step_fails_its_specs_when_encoded_at_once(
    threads: t.Callable[[int], None],
) -> None:
    threads(2)
    source = jpeg_source()
    broken = type("Broken", (ImageSpec,), {"processors": [Failing()], "format": "PNG"})
    fine = type("Fine", (ImageSpec,), {"processors": [ResizeToFit(50)], "format": "PNG"})
    group = [*candidates(broken(source=source), [100], ["PNG", "JPEG"]), fine(source=source)]
    group.append(fine(source=source))
    group[-1].format = "WEBP"
    prepare_specs(group)
    for spec in group[:2]:
        with pytest.raises(GenerationError, match="Failing"):
            spec.generate()
    assert [opened(spec.generate()).format for spec in group[2:]] == ["PNG", "WEBP"]


def test_outputs_never_taken_are_let_go_with_their_spec(
    threads: t.Callable[[int], None], encodes: Encoded
) -> None:
    threads(2)
    group = candidates(Photo(source=jpeg_source()), [100, 200], ["WEBP", "JPEG"])
    prepare_specs(group)
    share = group[0].__dict__["_share"]
    group[0].generate()
    assert len(encodes) == 4, "the first generate() encodes every output"
    outputs = {(fmt, size[0]): output for _, fmt, size, output in encodes}
    assert outputs[("JPEG", 100)]() is not None
    group[1].discard()
    assert outputs[("JPEG", 100)]() is None, "discard() drops its output"
    dropped = group.pop(1)
    assert outputs[("WEBP", 200)]() is not None
    dropped = group.pop(1)
    del dropped
    assert outputs[("WEBP", 200)]() is None, "a spec let go drops its output with it"
    assert opened(group[1].generate()).size == (200, 150)
    assert len(encodes) == 4
    assert share.alive() == 0


def test_a_candidate_as_wide_as_its_specs_output_is_not_encoded_ahead(
    threads: t.Callable[[int], None], encodes: Encoded
) -> None:
    threads(2)
    base = Photo(source=jpeg_source())  # 400 px wide
    wide = [Candidate(base, 400, "AVIF"), Candidate(base, 640, "WEBP")]
    group = [base, *candidates(base, [100], ["AVIF", "WEBP"]), *wide]
    decode_together(group)
    base.generate()
    assert sorted((fmt, size) for _, fmt, size, _ in encodes) == [
        ("AVIF", (100, 75)),
        ("JPEG", (400, 300)),
        ("WEBP", (100, 75)),
    ], "picture() and the CLI drop candidates that would not be narrower"
    assert opened(wide[1].generate()).size == (400, 300), "generated anyway, it is encoded then"
    assert len(encodes) == 4


def test_encoded_at_once_the_preview_is_still_made_from_the_smallest_image(
    threads: t.Callable[[int], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    threads(2)
    previewed: list[tuple[int, int]] = []
    preview = flask_imagekit.specs.sharing.blur_preview

    def spy_preview(img: Image.Image) -> str | None:
        previewed.append(img.size)
        return preview(img)

    monkeypatch.setattr(flask_imagekit.specs.sharing, "blur_preview", spy_preview)
    # The walk that makes the images stops after the 200 px one (the lock let go)
    # until an output of the spec's width is encoded: the 100 px one comes later.
    encoded = threading.Event()
    save = flask_imagekit.specs.save_image
    order = encoding_pool.encode_order

    def spy_save(*args: t.Any, **kw: t.Any) -> t.Any:
        found = save(*args, **kw)
        encoded.set()
        return found

    def spy_order(fmt: str, size: tuple[int, int]) -> tuple[int, int]:
        if size == (200, 150):
            assert encoded.wait(timeout=5)
        return order(fmt, size)

    monkeypatch.setattr(flask_imagekit.specs, "save_image", spy_save)
    monkeypatch.setattr(encoding_pool, "encode_order", spy_order)
    base = Photo(source=jpeg_source())
    group = [base, Candidate(base, None, "WEBP"), *candidates(base, [200, 100], ["AVIF"])]
    decode_together(group)
    for spec in group:
        spec.generate()
    assert previewed == [(100, 75)], "one preview, from the narrowest image"
    infos = {spec.picture_info for spec in group[1:]}
    assert len(infos) == 1
    assert next(iter(infos))[0] == (400, 300)


@dataclasses.dataclass(frozen=True)
class NoteThreads:
    """A pure processor that notes, in a file, the encode threads of the process it runs in."""

    path: str

    def process(self, img: Image.Image) -> Image.Image:
        with open(self.path, "a", encoding="utf-8") as fp:
            fp.write(f"{os.getpid()} {encode_threads()}\n")
        return img


def test_worker_processes_of_jobs_encode_one_output_at_a_time(
    media_root: Path,
    tmp_path: Path,
    threads: t.Callable[[int], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("the worker processes must fork to share the spec defined here")
    monkeypatch.setenv(START_METHOD_ENV, "fork")
    threads(3)
    notes = tmp_path / "notes.txt"
    noted = type(
        "Noted", (Responsive,), {"processors": [ResizeToFit(300, 300), NoteThreads(str(notes))]}
    )
    names = [save_source(media_root, f"s/{i}.jpg", photo((600, 400))) for i in range(4)]
    app = Flask("jobs", instance_path=str(tmp_path / "instance"))
    app.config.update(TESTING=True, IMAGEKIT_MEDIA_ROOT=str(media_root))
    kit = ImageKit(app)
    kit.register.generator("myapp:noted", noted)
    kit.register.source_group("myapp:noted", Group(names))

    result = invoke(app, "generate", "--jobs", "2")
    assert result.exit_code == 0, result.output
    assert summary(result) == (36, 0, 0)
    lines = [line.split() for line in notes.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 4
    assert {pid for pid, _ in lines}.isdisjoint({str(os.getpid())})
    assert {count for _, count in lines} == {"1"}, "the processes already use every core"
    assert encode_threads() == 3, "this process keeps its own setting"


# Encoders -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "AVIF", "PNG", "GIF"])
def test_encoding_never_changes_the_image_it_is_given(fmt: str) -> None:
    img = photo((64, 48)).convert("RGBA")
    exif = Image.Exif()
    exif[0x0112] = 6
    img.info.update({"exif": exif.tobytes(), "comment": b"x", "transparency": 0})
    info, pixels = dict(img.info), img.tobytes()
    save_image(img, io.BytesIO(), fmt)
    assert img.info == info
    assert img.tobytes() == pixels
    assert not hasattr(img, "encoderinfo"), "Pillow's save left its state on the shared image"


@pytest.mark.parametrize("fmt", ["AVIF", "WEBP"])
def test_the_web_encoders_use_the_measured_defaults(fmt: str) -> None:
    img = photo((320, 240))
    assert set(ENCODER_DEFAULTS[fmt]) >= {"quality"}
    ours = save_image(img, io.BytesIO(), fmt).getvalue()
    expected = io.BytesIO()
    img.save(expected, fmt, **ENCODER_DEFAULTS[fmt])
    assert ours == expected.getvalue()
    lower = save_image(img, io.BytesIO(), fmt, {"quality": 20}).getvalue()
    assert len(lower) < len(ours), "options win over the defaults"


@pytest.mark.parametrize("fmt", ["AVIF", "WEBP"])
def test_alpha_is_kept(fmt: str) -> None:
    img = photo((120, 80)).convert("RGBA")
    img.putalpha(Image.linear_gradient("L").resize((120, 80)))
    spec = type("Alpha", (ImageSpec,), {"processors": [ResizeToFit(60)], "format": "PNG"})
    source = SourceFile("a.png", file=io.BytesIO(encode(img, "PNG")))
    out = opened(Candidate(spec(source=source), None, fmt).generate())
    assert out.format == fmt
    assert out.mode == "RGBA"
    low, high = out.getchannel("A").getextrema()
    assert t.cast(int, low) < 20
    assert t.cast(int, high) > 235


def test_candidate_options_come_from_the_spec_for_its_format_and_format_options_for_others() -> (
    None
):
    class Tuned(ImageSpec):
        processors = [ResizeToFit(200)]  # noqa: RUF012
        format = "JPEG"
        options = {"quality": 40}  # noqa: RUF012
        format_options = {"AVIF": {"quality": 30, "speed": 9}, "JPEG": {"quality": 99}}  # noqa: RUF012

    source = jpeg_source()
    assert Candidate(Tuned(source=source), 100, "JPEG").options == {"quality": 40}
    assert Candidate(Tuned(source=source), 100, None).options == {"quality": 40}
    assert Candidate(Tuned(source=source), 100, "avif").options == {"quality": 30, "speed": 9}
    assert not Candidate(Tuned(source=source), 100, "WEBP").options


def test_the_name_of_a_candidate_covers_its_own_options_only(ctx: Flask) -> None:
    def spec(format_options: dict[str, t.Any]) -> ImageSpec:
        cls = type("S", (ImageSpec,), {"processors": [], "format_options": format_options})
        return cls(source=jpeg_source())

    one, other = {"AVIF": {"quality": 30}}, {"AVIF": {"quality": 31}}
    for fmt, changes in (("AVIF", True), ("WEBP", False), (None, False)):
        a = Candidate(spec(one), 100, fmt).cachefile_name
        b = Candidate(spec(other), 100, fmt).cachefile_name
        assert (a != b) is changes, fmt
    assert spec(one).cachefile_name == spec(other).cachefile_name


def test_a_candidate_in_the_specs_own_format_is_the_same_file_however_it_is_named(
    ctx: Flask,
) -> None:
    plain = type("Plain", (ImageSpec,), {"processors": [ResizeToFit(300)]})
    source = jpeg_source()
    assert candidate_spec(plain(source=source), 100, "JPEG").cachefile_name == (
        candidate_spec(plain(source=source), 100, None).cachefile_name
    )
    assert candidate_spec(plain(source=source), None, "jpeg") is not None
    assert candidate_spec(plain(source=source), None, "JPEG").cachefile_name == (
        plain(source=source).cachefile_name
    )


# Budgets ------------------------------------------------------------------------------------


def minimum_budget(make: t.Callable[[AppState], list[ImageSpec]], state: AppState) -> int:
    """The least IMAGEKIT_MAX_DECODE_BYTES (to 1/8 MiB) that admits the specs ``make`` builds."""
    low, high = 0, 1024 * 2**20
    while high - low > 2**17:
        middle = (low + high) // 2
        try:
            prepare_specs(make(dataclasses.replace(state, max_decode_bytes=middle)))
        except SourceError as exc:
            refusal = str(exc)
            low = middle
        else:
            refusal = ""
            high = middle
        assert not refusal or "IMAGEKIT_MAX_DECODE_BYTES" in refusal, refusal
    return high


def test_images_kept_for_the_other_candidates_count_against_the_memory_budget(
    ctx: Flask,
) -> None:
    data = encode(photo((1500, 1000)), "PNG", compress_level=1)
    spec = type("Big", (ImageSpec,), {"processors": [ResizeToFit(1200)], "format": "PNG"})

    def group(state: AppState) -> list[ImageSpec]:
        base = spec(source=SourceFile("big.png", file=io.BytesIO(data)))
        base.app_state = state
        return [base, *candidates(base, [600, 900, 1100])]

    state = current_state()
    members = len(group(state))
    alone = max(
        minimum_budget(lambda state, i=i: [group(state)[i]], state)  # type: ignore[misc]
        for i in range(members)
    )
    together = minimum_budget(group, state)
    # While the widest candidate is encoded as AVIF (the largest step), the other
    # widths kept for their other formats (900 and 600 wide: 3.1 MB) count too.
    assert together >= alone + 2.5 * 2**20, (alone / 2**20, together / 2**20)
    with pytest.raises(SourceError, match="IMAGEKIT_MAX_DECODE_BYTES"):
        prepare_specs(group(dataclasses.replace(state, max_decode_bytes=together - 2**18)))
    admitted = group(dataclasses.replace(state, max_decode_bytes=together))
    prepare_specs(admitted)
    for member in admitted:
        member.generate()


def test_encoders_run_at_once_only_as_far_as_the_memory_budget_allows(
    ctx: Flask, threads: t.Callable[[int], None], started: list[str]
) -> None:
    threads(4)
    data = encode(photo((1500, 1000)), "PNG", compress_level=1)
    spec = type("Big", (ImageSpec,), {"processors": [ResizeToFit(1200)], "format": "PNG"})

    def group(state: AppState) -> list[ImageSpec]:
        base = spec(source=SourceFile("big.png", file=io.BytesIO(data)))
        base.app_state = state
        return [base, *candidates(base, [600, 900])]

    state = current_state()
    tight = group(dataclasses.replace(state, max_decode_bytes=minimum_budget(group, state)))
    prepare_specs(tight)
    assert all(member.generate() for member in tight)
    assert started == [], "no room for a second encoder: one at a time"
    roomy = group(dataclasses.replace(state, max_decode_bytes=None))
    prepare_specs(roomy)
    assert all(member.generate() for member in roomy)
    assert started == ["imagekit-encode"] * 3


# Blur previews ------------------------------------------------------------------------------


def noise(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    data = random.Random(size[0] * 7 + size[1]).randbytes(size[0] * size[1] * 4)
    return Image.frombytes("RGBA", size, data).convert(mode)


def preview_image(uri: str) -> Image.Image:
    assert uri.startswith("data:image/"), uri[:40]
    head, payload = uri.split(",", 1)
    assert head.endswith(";base64"), head
    return opened(io.BytesIO(base64.b64decode(payload)))


PREVIEW_CASES = [
    photo((1600, 1200)),
    photo((400, 300), "L"),
    photo((300, 400)).convert("P"),
    photo((300, 300)).convert("CMYK"),
    photo((64, 64)).convert("I;16"),
    noise((800, 600)),
    noise((800, 600), "RGBA"),
    noise((4000, 100)),
    noise((100, 4000)),
    noise((10000, 3)),
    noise((1, 1)),
    noise((3, 1)),
    noise((31, 29), "LA"),
]


@pytest.mark.parametrize("img", PREVIEW_CASES, ids=lambda img: f"{img.mode}-{img.size}")
def test_a_blur_preview_is_a_small_data_uri_of_the_same_shape(img: Image.Image) -> None:
    uri = blur_preview(img)
    assert uri is not None
    assert len(uri) <= MAX_PREVIEW_LENGTH <= 1024
    shown = preview_image(uri)
    assert max(shown.size) <= 64
    ratio, shown_ratio = img.width / img.height, shown.width / shown.height
    if min(shown.size) > 2:
        assert abs(shown_ratio / ratio - 1) < 0.35, (img.size, shown.size)
    assert (shown.mode in ("RGBA", "LA")) == (img.mode in ("RGBA", "LA"))


def test_a_blur_preview_looks_like_the_image() -> None:
    img = photo((640, 480))
    shown = preview_image(t.cast(str, blur_preview(img))).convert("RGB")
    small = img.resize(shown.size, Image.Resampling.BOX)
    assert psnr(shown, small) > 20


@pytest.mark.parametrize("mode", ["F", "I", "1", "YCbCr", "HSV"])
def test_a_preview_of_any_mode_is_made_or_none(mode: str) -> None:
    uri = blur_preview(Image.new(mode, (40, 30)))
    assert uri is None or len(uri) <= MAX_PREVIEW_LENGTH


def test_a_candidate_records_the_specs_output_size_and_a_preview() -> None:
    spec = Candidate(Photo(source=jpeg_source()), 100, "WEBP")
    spec.generate()
    size, preview = spec.picture_info
    assert size == (400, 300)
    assert preview is not None
    assert len(preview) <= 1024
    shown = preview_image(preview)
    assert abs(shown.width / shown.height - 4 / 3) < 0.2


def test_candidates_generated_together_share_one_preview(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[tuple[int, int]] = []
    original = flask_imagekit.specs.sharing.blur_preview

    def spy(img: Image.Image) -> str | None:
        made.append(img.size)
        return original(img)

    monkeypatch.setattr(flask_imagekit.specs.sharing, "blur_preview", spy)
    group = [*candidates(Photo(source=jpeg_source()), [100, 200, None], ["AVIF", "WEBP"])]
    decode_together(group)
    for spec in group:
        spec.generate()
    infos = {spec.picture_info for spec in group}
    assert len(infos) == 1
    assert next(iter(infos))[0] == (400, 300)
    assert made == [(100, 75)], "one preview, from the smallest image at hand"


def test_the_preview_is_made_from_what_was_generated_not_decoded_again(
    count_decodes: list[str],
) -> None:
    spec = Candidate(Photo(source=jpeg_source()), None, "AVIF")
    spec.generate()
    assert spec.picture_info[0] == (400, 300)
    assert count_decodes == ["photos/p.jpg"]


# The CLI ------------------------------------------------------------------------------------

SUMMARY = re.compile(r"^Generated (\d+) files?, (\d+) already there, (\d+) failed\.$", re.M)


class Responsive(ImageSpec):
    processors = [ResizeToFit(300, 300)]  # noqa: RUF012
    format = "JPEG"
    responsive_widths = [100, 200, 300, 640]  # noqa: RUF012
    responsive_formats = ["AVIF", "WEBP"]  # noqa: RUF012


class Group:
    def __init__(self, names: t.Sequence[str]) -> None:
        self.names = list(names)

    def files(self) -> t.Iterator[str]:
        yield from self.names


def format_and_width(path: Path) -> tuple[str | None, int]:
    with Image.open(path) as img:
        return img.format, img.width


def invoke(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["imagekit", *args])


def summary(result: Result) -> tuple[int, int, int]:
    found = SUMMARY.findall(result.stdout)
    assert len(found) == 1, result.output
    return t.cast(tuple[int, int, int], tuple(int(value) for value in found[0]))


def test_declared_candidates_stop_at_the_specs_output() -> None:
    spec = Responsive(source=jpeg_source())
    assert declared_candidates(spec, 300) == [
        (None, "AVIF"),
        (None, "WEBP"),
        *((width, fmt) for width in (100, 200) for fmt in ("AVIF", "WEBP", "JPEG")),
    ]
    assert declared_candidates(ImageSpec(source=jpeg_source()), 300) == []


def responsive_app(media_root: Path, names: list[str]) -> Flask:
    app = Flask("responsive", instance_path=str(media_root.parent / "instance"))
    app.config.update(TESTING=True, IMAGEKIT_MEDIA_ROOT=str(media_root))
    imagekit = ImageKit(app)
    imagekit.register.generator("myapp:responsive", Responsive)
    imagekit.register.source_group("myapp:responsive", Group(names))
    return app


def test_generate_makes_every_candidate_from_one_decode(
    media_root: Path, count_decodes: list[str]
) -> None:
    names = [save_source(media_root, f"s/{i}.jpg", photo((600, 400))) for i in range(2)]
    app = responsive_app(media_root, names)

    result = invoke(app, "generate")
    assert result.exit_code == 0, result.output
    # The spec's file, 2 formats at its own width, 2 widths x 3 formats: 9 per source.
    assert summary(result) == (18, 0, 0)
    assert sorted(count_decodes) == sorted(names)
    files = sorted((media_root / "CACHE").rglob("*.*"))
    found = sorted(format_and_width(path) for path in files)
    expected = [("JPEG", 300), ("AVIF", 300), ("WEBP", 300)]
    expected += [(fmt, width) for width in (100, 200) for fmt in ("AVIF", "WEBP", "JPEG")]
    assert found == sorted(expected * 2)
    with app.app_context():
        state = current_state()
        for name in names:
            for width, fmt in declared_candidates(Responsive(source=name), 300):
                file = state.cachefile("myapp:responsive", source=name, candidate=(width, fmt))
                assert file.storage.exists(file.name), (width, fmt)

    count_decodes.clear()
    again = invoke(app, "generate")
    assert summary(again) == (0, 18, 0)
    assert count_decodes == [], "nothing is decoded when every file is there"

    # Another process, whose state does not know the files: one of them is gone.
    files[0].unlink()
    fresh = responsive_app(media_root, names)
    count_decodes.clear()
    assert summary(invoke(fresh, "generate")) == (1, 17, 0)
    assert len(count_decodes) == 1

    count_decodes.clear()
    forced = invoke(app, "generate", "--force")
    assert summary(forced) == (18, 0, 0)
    assert sorted(count_decodes) == sorted(names)


def test_generate_lists_a_failing_candidate_with_its_width_and_format(
    app: Flask, imagekit: ImageKit, media_root: Path
) -> None:
    class Broken(Responsive):
        format_options = {"AVIF": {"quality": 1000}}  # noqa: RUF012

    name = save_source(media_root, "s/0.jpg", photo((600, 400)))
    imagekit.register.generator("myapp:broken", Broken)
    imagekit.register.source_group("myapp:broken", Group([name]))
    result = invoke(app, "generate")
    assert result.exit_code == 1
    assert summary(result) == (6, 0, 3)
    assert "myapp:broken AVIF" in result.stderr or "AVIF" in result.stderr, result.stderr


# Declared candidates: formats this Pillow writes and browsers show, never wider than the source


def test_declared_candidates_leave_out_a_format_this_pillow_cannot_encode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Image.init()
    monkeypatch.delitem(Image.SAVE, "AVIF", raising=False)  # a Pillow built without libavif
    spec = Responsive(source=jpeg_source())
    assert declared_candidates(spec, 300) == [
        (None, "WEBP"),
        *((width, fmt) for width in (100, 200) for fmt in ("WEBP", "JPEG")),
    ]


def test_declared_candidates_refuse_a_format_browsers_do_not_show() -> None:
    from flask_imagekit.exceptions import ImproperlyConfigured

    tiff = type("Tiff", (Responsive,), {"responsive_formats": ["WEBP", "TIFF"]})
    with pytest.raises(ImproperlyConfigured, match=r"Tiff\.responsive_formats.*TIFF"):
        declared_candidates(tiff(source=jpeg_source()), 300)


def test_declared_candidates_stop_at_a_source_narrower_than_the_output() -> None:
    spec = Responsive(source=jpeg_source())
    # A 150 px source the spec upscales to 300: its own width ends the list, in every format.
    assert declared_candidates(spec, 300, source_width=150) == [
        (width, fmt) for width in (100, 150) for fmt in ("AVIF", "WEBP", "JPEG")
    ]
    assert declared_candidates(spec, 300, source_width=300) == declared_candidates(spec, 300)
    # The output's width still unknown: the source's width is listed too, for the case
    # the output turns out wider (the caller drops what is as wide as the output or wider).
    assert declared_candidates(spec, None, source_width=150) == [
        (None, "AVIF"),
        (None, "WEBP"),
        *((width, fmt) for width in (100, 150) for fmt in ("AVIF", "WEBP", "JPEG")),
    ]


class UpscalingResponsive(ImageSpec):
    """Scales any source to 1000 px wide (ResizeToFit upscales by default)."""

    processors = [ResizeToFit(1000, 1000)]  # noqa: RUF012
    format = "JPEG"
    responsive_widths = [200, 480, 800]  # noqa: RUF012
    responsive_formats = ["WEBP"]  # noqa: RUF012


def test_generate_makes_no_candidate_wider_than_a_small_source(
    app: Flask, imagekit: ImageKit, media_root: Path
) -> None:
    name = save_source(media_root, "s/small.jpg", photo((300, 200)))
    imagekit.register.generator("myapp:up", UpscalingResponsive)
    imagekit.register.source_group("myapp:up", Group([name]))
    result = invoke(app, "generate")
    assert result.exit_code == 0, result.output
    found = sorted(format_and_width(path) for path in (media_root / "CACHE").rglob("*.*"))
    # The spec's own file is 1000 px; its candidates stop at the source's 300 px.
    assert found == sorted(
        [("JPEG", 1000), ("WEBP", 200), ("JPEG", 200), ("WEBP", 300), ("JPEG", 300)]
    )
    assert summary(invoke(app, "generate")) == (0, 5, 0)


def test_generate_enqueue_sends_every_candidate_of_a_new_source(
    media_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [save_source(media_root, "s/0.jpg", photo((600, 400)))]
    backend = Recorder()
    monkeypatch.setattr(Responsive, "cachefile_backend", backend, raising=False)
    app = responsive_app(media_root, names)
    app.config.update(SECRET_KEY="enqueue")
    result = invoke(app, "generate", "--enqueue")
    assert result.exit_code == 0, result.output
    widths = [(job.get("candidate") or [None, None])[0] for job in backend.sent]
    # The spec's file (300 px, foreseen from the source's header), 2 formats at its
    # width, and 2 narrower widths in 3 formats: none left out silently.
    assert len(backend.sent) == 9, result.output
    assert widths.count(None) == 3
    assert widths.count(100) == 3
    assert widths.count(200) == 3
    assert not list((media_root / "CACHE").rglob("*.*")), "enqueued, not generated"
