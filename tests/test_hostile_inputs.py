"""Hostile and corrupt source images, through the pipeline as a user would send them.

Every input of the generated corpus (``fuzz/hostile.py``, built in memory by the
tests) and every file of Pillow's test images goes through an ``ImageSpec``
(``ResizeToFill(100, 100)``, JPEG output, and the same with PNG output) with
``ImageCacheFile(spec).generate()``, in an app whose media root is under tmp_path.
The outcome must be a correct output (it opens, is 100x100 and a single frame,
carries no trailing payload, EXIF, XMP or comment) or an ``ImageKitError`` whose
message names the source, in under 2 s and 256 MB of peak memory growth, with no
file left in the media root and no EXISTS/GENERATING state left behind. The
oracle is ``fuzz.pipeline`` (shared with the fuzzer); its own checks are tested
here too, so that it cannot pass vacuously.

Heavy inputs (decompression bombs) run in a fresh process, where the peak memory
growth is measured without the test process's own allocations.

Both corpora also go through every spec shape of ``fuzz.pipeline.SHAPES`` (resize
first, ``Adjust`` first, no processors) in every output format (JPEG, PNG, WebP,
GIF, and AVIF where Pillow writes it), one fresh process per shape: each input gives
an image or an ``ImageKitError`` within IMAGEKIT_MAX_DECODE_BYTES + 32 MiB of peak
memory growth and 1 s. The test prints the slowest input and the one whose memory
grew most (``python -m bench.hostile`` prints them too).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import typing as t
import warnings
from pathlib import Path

import pytest
from flask import Flask
from PIL import Image

from flask_imagekit.cachefiles import ImageCacheFile
from flask_imagekit.exceptions import ImageKitError
from flask_imagekit.imaging import DEFAULT_MAX_DECODE_BYTES
from flask_imagekit.sources import SourceFile
from fuzz import hostile
from fuzz.pipeline import (
    FORMATS,
    MAX_SECONDS,
    SHAPES,
    Env,
    JpegThumb,
    Outcome,
    PeakMemory,
    check_output,
    state_problems,
)

from .conftest import CORPUS

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "fuzz" / "fuzz_pipeline.py"

LIGHT = [case for case in hostile.CASES if not case.heavy]
#: Limits of one generation through the spec shapes: the default memory budget plus
#: slack, and time.
SHAPE_MEGABYTES = DEFAULT_MAX_DECODE_BYTES / 2**20 + 32
SHAPE_SECONDS = 1.0
HEAVY = [case for case in hostile.CASES if case.heavy]
SPECS = ["jpeg", "png"]

#: Pillow corpus files that must be refused (the rest may give an image or an error).
PILLOW_REFUSED = {
    "decompression_bomb.gif",
    "decompression_bomb.ico",
    "hopper.ico",
    "hopper.psd",
    "zero_bb.eps",
    "zero_width.gif",
    "broken.png",
    "truncated_image.png",
    "truncated_jpeg.jpg",
}
PILLOW_FILES = sorted(
    p.name for p in CORPUS.iterdir() if p.is_file() and not p.name.startswith("LICENSE")
)


@pytest.fixture
def env(ctx: Flask, media_root: Path) -> Env:
    return Env(ctx, media_root)


def assert_outcome(
    outcome: Outcome,
    expect: str,
    name: str,
    first_rgb: tuple[int, int, int] | None = None,
) -> None:
    assert not outcome.problems, outcome.describe()
    if expect == "image":
        assert outcome.output is not None, f"expected an image: {outcome.describe()}"
    elif expect == "error":
        assert outcome.error is not None, f"expected an ImageKitError: {outcome.describe()}"
    if outcome.error is not None:
        assert isinstance(outcome.error, ImageKitError)
        assert name in str(outcome.error), f"the message should name {name!r}: {outcome.error}"
    if first_rgb is not None and outcome.output is not None:
        with Image.open(io.BytesIO(outcome.output)) as img:
            centre = img.convert("RGB").getpixel((img.width // 2, img.height // 2))
        assert isinstance(centre, tuple)
        assert all(abs(a - b) <= 24 for a, b in zip(centre, first_rgb, strict=True)), (
            f"the output shows {centre}, not the first frame's {first_rgb}"
        )


# The generated corpus ---------------------------------------------------------------------


def test_the_generated_corpus_has_at_least_30_kinds() -> None:
    ids = [case.id for case in hostile.CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 30
    assert {case.expect for case in hostile.CASES} == {"image", "error", "either"}


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("case", LIGHT, ids=lambda case: case.id)
def test_generated_hostile_input(env: Env, case: hostile.Case, spec: str) -> None:
    outcome = env.generate(case.build(), case.name, spec)
    assert_outcome(outcome, case.expect, case.name, case.first_rgb)


def replay_in_subprocess(
    tmp_path: Path, data: bytes, name: str, spec: str = "jpeg", timeout: float = 60
) -> dict[str, t.Any]:
    """Generate in a fresh process; return its outcome (time and peak memory growth)."""
    return replay_all_in_subprocess(tmp_path, data, name, spec, timeout)[-1]


def replay_all_in_subprocess(
    tmp_path: Path, data: bytes, name: str, spec: str = "shapes", timeout: float = 120
) -> list[dict[str, t.Any]]:
    """Generate through every route ``spec`` names in one fresh process; the outcomes."""
    source = tmp_path / "input.bin"
    source.write_bytes(data)
    cmd = [sys.executable, str(HARNESS), "--replay", str(source), "--spec", spec]
    cmd += ["--name", name, "--json"]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT
        )
    except subprocess.TimeoutExpired:
        return [{"kind": "escape", "problems": [f"hang: no result in {timeout} s"]}]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no result (exit status {proc.returncode}): {proc.stderr[-2000:]}"
    return [t.cast(dict[str, t.Any], json.loads(line)) for line in lines]


@pytest.mark.slow
@pytest.mark.parametrize("case", HEAVY, ids=lambda case: case.id)
def test_heavy_hostile_input_in_a_fresh_process(tmp_path: Path, case: hostile.Case) -> None:
    # Every spec shape, in every output format.
    results = replay_all_in_subprocess(tmp_path, case.build(), case.name)
    assert len(results) == len(SHAPES) * len(FORMATS)
    for result in results:
        assert result["problems"] == [], result
        assert result["seconds"] < SHAPE_SECONDS, result
        assert result["megabytes"] < SHAPE_MEGABYTES, result
        if case.expect != "either":
            assert result["kind"] == case.expect, result


def test_peak_memory_is_measured() -> None:
    # The meter must see a large allocation, or the memory limit is checked vacuously.
    # The kernel raises the recorded peak (VmHWM) only at some points, so a block freed
    # before the end may not reach it; the meter's sampler sees a block that lives while
    # the GIL is let go, as Pillow does while it decodes, resizes and encodes.
    seen = []
    for _ in range(3):
        with PeakMemory() as meter:
            block = bytearray(64 << 20)
            block[:: 1 << 12] = b"\1" * len(block[:: 1 << 12])
            time.sleep(0.02)
            del block
        if not meter.exact:
            pytest.skip("this system cannot reset the peak RSS of a process")
        seen.append(meter.megabytes)
        if meter.megabytes >= 60:
            break
    assert max(seen) >= 60, seen


# Pillow's test images ---------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("name", PILLOW_FILES)
def test_pillow_corpus_file(env: Env, name: str, spec: str) -> None:
    outcome = env.generate((CORPUS / name).read_bytes(), f"uploads/{name}", spec)
    assert_outcome(outcome, "error" if name in PILLOW_REFUSED else "either", f"uploads/{name}")


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["decompression_bomb.gif", "decompression_bomb_extents.gif", "decompression_bomb.ico"]
)
def test_pillow_bombs_in_a_fresh_process(tmp_path: Path, name: str) -> None:
    result = replay_in_subprocess(tmp_path, (CORPUS / name).read_bytes(), name)
    assert result["problems"] == [], result


# Every spec shape, in every output format -------------------------------------------------


def replay_corpora(spec: str) -> tuple[list[dict[str, t.Any]], str]:
    """Both corpora through ``spec`` (a shape: every format) in one fresh process."""
    cmd = [sys.executable, str(HARNESS), "--corpus", "--spec", spec, "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    summary = [line for line in proc.stdout.splitlines() if line.startswith("replay:")]
    assert results, f"exit status {proc.returncode}: {proc.stderr[-3000:]}"
    assert summary, proc.stdout[-3000:]
    return results, summary[-1]


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_both_corpora_through_a_spec_shape_in_every_format(shape: str) -> None:
    results, summary = replay_corpora(shape)
    print(summary)
    expected: dict[str, str] = {f"hostile:{case.id}": case.expect for case in hostile.CASES}
    expected.update({f"pillow:{name}": "error" for name in PILLOW_REFUSED})
    inputs = len(LIGHT) + len(PILLOW_FILES)
    assert len(results) == inputs * len(FORMATS)
    assert {tuple(r["route"][1:]) for r in results} == {(shape, f.lower()) for f in FORMATS}
    for result in results:
        assert result["problems"] == [], result
        assert result["kind"] in ("image", "error"), result
        assert result["seconds"] < SHAPE_SECONDS, result
        if result["memory_exact"]:
            assert result["megabytes"] < SHAPE_MEGABYTES, result
        expect = expected.get(result["file"], "either")
        if expect != "either":
            assert result["kind"] == expect, result


# Multi-frame sources, warnings, retries ------------------------------------------------------


@pytest.mark.parametrize(
    "case_id", [case.id for case in hostile.CASES if case.first_rgb and not case.heavy]
)
def test_multi_frame_sources_use_their_first_frame(env: Env, case_id: str) -> None:
    case = hostile.by_id(case_id)
    outcome = env.generate(case.build(), case.name, "png")
    assert outcome.output is not None, outcome.describe()
    with Image.open(io.BytesIO(outcome.output)) as img:
        assert getattr(img, "n_frames", 1) == 1
    assert_outcome(outcome, "image", case.name, case.first_rgb)


EXIF_CASES = [case.id for case in hostile.CASES if case.id.startswith("exif-")]


@pytest.mark.parametrize("case_id", EXIF_CASES)
def test_broken_exif_with_default_warning_filters_gives_an_image(env: Env, case_id: str) -> None:
    # Under pytest's warnings-as-errors Pillow's "Corrupt EXIF" warnings may make the
    # source fail (with a SourceError); with Python's default filters, as in production,
    # the pixels are intact and the output must be made.
    case = hostile.by_id(case_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outcome = env.generate(case.build(), case.name, "jpeg")
    assert_outcome(outcome, "image", case.name)


RETRY_CASES = ["jpeg-cut-half", "png-idat-garbage", "png-ihdr-65535x65535", "eps-text", "empty"]


@pytest.mark.parametrize("case_id", RETRY_CASES)
def test_a_failed_generation_can_be_retried_once_the_source_is_fixed(
    ctx: Flask, media_root: Path, case_id: str
) -> None:
    # A stored source replaced under the same name: an explicit generate() retries.
    case = hostile.by_id(case_id)
    (media_root / "p").mkdir()
    (media_root / "p/a.jpg").write_bytes(case.build())
    bad = ImageCacheFile(JpegThumb(source="p/a.jpg"))
    with pytest.raises(ImageKitError):
        bad.generate()
    assert state_problems(bad) == []  # neither EXISTS nor the GENERATING lock
    (media_root / "p/a.jpg").write_bytes(hostile.jpeg())
    good = ImageCacheFile(JpegThumb(source="p/a.jpg"))
    assert good.name == bad.name
    good.generate()
    assert (media_root / good.name).is_file()
    assert check_output((media_root / good.name).read_bytes(), "JPEG") == []


def test_no_temporary_files_survive_a_failure_in_the_storage(
    ctx: Flask, media_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The encoder succeeded but the storage fails half-way: no temp file, no state.
    file = ImageCacheFile(JpegThumb(source=SourceFile("s.jpg", file=io.BytesIO(hostile.jpeg()))))

    def failing_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(ImageKitError):
        file.generate()
    monkeypatch.undo()
    assert [p for p in media_root.rglob("*") if p.is_file()] == []
    assert state_problems(file) == []


# The oracle itself ----------------------------------------------------------------------------


def _jpeg(**options: t.Any) -> bytes:
    return hostile.save(Image.new("RGB", (100, 100), (9, 9, 9)), "JPEG", **options)


@pytest.mark.parametrize(
    ("data", "fmt", "problem"),
    [
        (_jpeg() + b"PK\x03\x04payload", "JPEG", "after EOI"),
        (_jpeg(comment=b"<script>"), "JPEG", "<script"),
        (_jpeg(exif=Image.Exif().tobytes() or b"Exif\0\0II*\0"), "JPEG", "segments"),
        (
            hostile.save(Image.new("RGB", (100, 100)), "PNG") + b"<html>",
            "PNG",
            "after IEND",
        ),
        (hostile.png_with([(b"tEXt", b"k\0v")]), "PNG", "chunks"),
        (_jpeg(), "PNG", "not a readable PNG"),
        (hostile.save(Image.new("RGB", (99, 100)), "PNG"), "PNG", "not 100x100"),
    ],
    ids=["trailing-zip", "comment", "exif", "png-trailing", "png-text", "wrong-format", "size"],
)
def test_the_oracle_catches_bad_outputs(data: bytes, fmt: str, problem: str) -> None:
    problems = check_output(data, fmt)
    assert any(problem in p for p in problems), problems


def test_the_oracle_passes_a_clean_output() -> None:
    assert check_output(_jpeg(), "JPEG") == []
    assert check_output(hostile.save(Image.new("RGBA", (100, 100)), "PNG"), "PNG") == []


def test_the_oracle_flags_escapes_leftovers_and_limits(env: Env) -> None:
    outcome = Outcome(error=ValueError("boom"), seconds=MAX_SECONDS + 1, megabytes=1e4)
    outcome.judge_limits()
    outcome.judge_error()
    assert len(outcome.problems) == 3
    assert outcome.kind == "escape"


# Sources just under the pixel cap (7071 x 7071 < 50 Mpx) ----------------------------------

# Progressive JPEGs keep every DCT coefficient (2 bytes per pixel and component)
# whatever the draft scale: colour ones this large are refused by the decode budget.
UNDER_CAP: list[t.Any] = [
    pytest.param(
        lambda: hostile.png_raw(7071, 7071, bytes(7071), colour=0), ("image",), id="grey-png"
    ),
    pytest.param(
        lambda: hostile.png_raw(7071, 7071, bytes(884), depth=1, colour=0),
        ("image",),
        id="1bit-png",
    ),
    pytest.param(
        lambda: hostile.jpeg_scan_bomb(7071, 1, components=1), ("image",), id="progressive-grey"
    ),
    pytest.param(
        lambda: hostile.jpeg_scan_bomb(7071, 1, components=3),
        ("image", "error"),
        id="progressive-3-components",
    ),
    pytest.param(
        lambda: hostile.jpeg_scan_bomb(7071, 1, components=4),
        ("image", "error"),
        id="progressive-4-components",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("build", "allowed"), UNDER_CAP)
def test_sources_under_the_pixel_cap_stay_within_limits(
    tmp_path: Path, build: t.Callable[[], bytes], allowed: tuple[str, ...]
) -> None:
    # More files of this kind (WebP, AVIF, RGBA/LA PNG, a scan bomb) are kept in
    # tests/corpus/ and replayed by tests/test_fuzz.py. Resized first, they give
    # `allowed`; adjusted at full size or not resized, they are over a budget.
    results = replay_all_in_subprocess(tmp_path, build(), "big.img")
    assert len(results) == len(SHAPES) * len(FORMATS)
    for result in results:
        assert result["problems"] == [], result
        assert result["seconds"] < SHAPE_SECONDS, result
        assert result["megabytes"] < SHAPE_MEGABYTES, result
        fill = result["route"][1] == "fill"
        assert result["kind"] in (allowed if fill else ("image", "error")), result
