"""Benchmark 5 - colour management: the cost of converting outputs to sRGB.

Generates a 300x200 fill JPEG from the 12 MP JPEG of the single-generation
corpus, as stored (no ICC profile) and with an ICC profile inserted (the same
pixels: only an APP2 segment is added): sRGB itself (converted anyway, an
identity) and ColorMatch RGB (gamma 1.8, wide primaries; the profile of
``tests/corpus/pillow/xmp_tags_orientation.png``). The contenders run
alternately; the medians and their ratios to the run without a profile are
printed. The conversion runs after the resize, on the 300x200 image, so it should
cost little next to the decode. The conversion alone (a warm transform on the
output) and building a transform (a profile seen for the first time) are timed
too.

    python -m bench.icc [--runs 15] [--quick]
"""

from __future__ import annotations

import argparse
import io
import statistics
import struct
import sys
import time
import typing as t
from pathlib import Path

from PIL import Image, ImageCms

from flask_imagekit import ImageSpec, imaging
from flask_imagekit.imaging import colour
from flask_imagekit.processors import ResizeToFill

if __package__ in (None, ""):  # run as a file: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    REPO_ROOT,
    SINGLE_CORPUS,
    Target,
    alternate,
    check_idle,
    corpus,
    fmt_ms,
    log,
    summarize,
    table,
    target_table,
    write_results,
)

SIZE = (300, 200)
MIN_RUNS = 5
DEFAULT_RUNS = 15
#: Overhead allowed for a source with a profile, over the same source without one.
LIMIT_RATIO = 1.05
PROFILE_SOURCE = REPO_ROOT / "tests" / "corpus" / "pillow" / "xmp_tags_orientation.png"


class Thumb(ImageSpec):
    """The spec measured: a fill 300x200 JPEG."""

    processors = [ResizeToFill(*SIZE)]
    format = "JPEG"


def with_icc(jpeg: bytes, icc: bytes) -> bytes:
    """``jpeg`` with ``icc`` embedded in APP2 segments right after SOI."""
    chunk = 65519
    parts = [icc[i : i + chunk] for i in range(0, len(icc), chunk)]
    segments = b""
    for index, part in enumerate(parts, 1):
        payload = b"ICC_PROFILE\0" + bytes((index, len(parts))) + part
        segments += b"\xff\xe2" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + segments + jpeg[2:]


def profiles() -> dict[str, bytes]:
    """The profiles to embed, by label."""
    with Image.open(PROFILE_SOURCE) as img:
        colormatch = t.cast(bytes, img.info["icc_profile"])
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return {"sRGB profile": srgb, "ColorMatch RGB profile": colormatch}


def generate(data: bytes) -> bytes:
    """One generation from ``data``."""
    return Thumb(source=io.BytesIO(data)).generate().getvalue()


def time_conversion(source: bytes, icc: bytes, runs: int) -> dict[str, float]:
    """Median time of converting one output (warm), and of building a transform (cold)."""
    resized = imaging.decode(imaging.open_image(io.BytesIO(source)), Thumb.processors)[0]
    out = resized.convert("RGB")
    colour.manage_colour(out, icc)  # warm the transform memo
    warm = []
    for _ in range(runs * 10):
        started = time.perf_counter()
        colour.manage_colour(out, icc)
        warm.append(time.perf_counter() - started)
    cold = []
    for _ in range(runs):
        colour.TRANSFORMS.clear()
        started = time.perf_counter()
        colour.srgb_transform(icc, "RGB")
        cold.append(time.perf_counter() - started)
    return {"convert_s": statistics.median(warm), "build_transform_s": statistics.median(cold)}


def parse_args(argv: t.Sequence[str] | None) -> argparse.Namespace:
    """Command line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs", type=int, default=None, help=f"runs per contender (>= {MIN_RUNS})"
    )
    parser.add_argument("--quick", action="store_true", help=f"{MIN_RUNS} runs")
    parser.add_argument("--no-vips", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: t.Sequence[str] | None = None) -> dict[str, t.Any]:
    """Run the benchmark; print the table; write ``bench/results/icc.json``."""
    args = parse_args(argv)
    runs = args.runs or (MIN_RUNS if args.quick else DEFAULT_RUNS)
    log("icc: preparing the corpus")
    source = corpus({"jpeg_12mp": SINGLE_CORPUS["jpeg_12mp"]})["jpeg_12mp"].read_bytes()
    sources = {"no profile": source}
    embedded = profiles()
    for label, icc in embedded.items():
        sources[label] = with_icc(source, icc)
    busy = check_idle("icc")
    log(f"icc: 12 MP JPEG -> {SIZE[0]}x{SIZE[1]} JPEG, {runs} alternating runs each")
    times = alternate(
        {label: (lambda d=data: generate(d)) for label, data in sources.items()}, runs
    )
    base = statistics.median(times["no profile"])
    results: dict[str, dict[str, t.Any]] = {}
    rows = []
    for label, values in times.items():
        summary = summarize(values)
        ratio = summary["median"] / base
        results[label] = {**summary, "ratio": ratio}
        if label in embedded:
            results[label].update(time_conversion(source, embedded[label], runs))
        extra = results[label]
        rows.append(
            [
                label,
                fmt_ms(summary["median"]),
                f"{summary['iqr_rel'] * 100:.0f}%",
                f"{ratio:.3f}x",
                f"{extra['convert_s'] * 1e6:.0f}" if "convert_s" in extra else "-",
                f"{extra['build_transform_s'] * 1e3:.2f}" if "build_transform_s" in extra else "-",
            ]
        )
    print(f"\nColour management: 12 MP JPEG -> {SIZE[0]}x{SIZE[1]} JPEG ({runs} runs)")
    print(
        table(
            ["source", "median ms", "IQR", "vs no profile", "convert us", "build ms"],
            rows,
            align="lrrrrr",
        )
    )
    worst = max(results[label]["ratio"] for label in embedded)
    found = [
        Target(
            "icc: generation with a profile / without",
            worst,
            LIMIT_RATIO,
            "x",
            higher_is_better=False,
            note="12 MP JPEG -> 300x200, worst of the embedded profiles",
        )
    ]
    print()
    print(target_table(found))
    path = write_results(
        "icc", {"runs": runs, "cpu_busy_before": busy, "results": results, "targets": found}
    )
    print(f"\nResults: {path}")
    return {"targets": found, "results": results}


if __name__ == "__main__":
    main()
