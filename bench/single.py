"""Benchmark 1 - single generation: flask_imagekit vs the pilkit way vs pyvips.

For each case, ``ImageSpec.generate()``, the pipeline django-imagekit runs
(full decode, pilkit ``Transpose(AUTO)`` + LANCZOS resize, pilkit save) and, if
installed, pyvips ``thumbnail`` (shrink-on-load) are run alternately on the same
bytes; the medians and their ratios are printed.

Quality is the PSNR of each output against one full-resolution reference,
before encoding (the pixels handed to the encoder) and after (the decoded
output file). The reference is a full decode, turned upright, and one exact
LANCZOS resize (no ``reducing_gap``) of the crop box flask_imagekit plans.
flask_imagekit's plans reproduce pilkit's geometry (resize to cover, integer
crop offsets), and pyvips ``crop="centre"`` has the same, so the reference is
the pilkit-style pixels to within rounding (``reference_vs_pilkit_db`` in the
JSON) and every contender is compared with it.

"decode only" times Pillow decoding the source at the size flask_imagekit
decodes it (the JPEG draft scale) and nothing else: the floor of the fast path.
The smooth 12 MP source (about 1.3 bits/pixel, the first corpus of
``bench/fastpath.py``) shows how much the gain depends on the source's entropy:
a reduced-scale decode still Huffman-decodes every coefficient.

    python -m bench.single [--runs 9] [--quick] [--case 12mp-fill ...] [--profile CASE]
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import pstats
import sys
import typing as t
from pathlib import Path

from PIL import Image, ImageOps

from flask_imagekit import ImageSpec
from flask_imagekit.imaging import decode, open_image
from flask_imagekit.processors import ResizeToFill, ResizeToFit

if __package__ in (None, ""):  # run as a file: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    RESULTS_DIR,
    SINGLE_CORPUS,
    Target,
    alternate,
    check_idle,
    corpus,
    decode_bytes,
    fmt_db,
    fmt_ms,
    load_pyvips,
    log,
    pilkit_generate,
    pilkit_image,
    pilkit_processors,
    psnr,
    summarize,
    table,
    target_table,
    vips_encode,
    vips_thumbnail,
    vips_to_pil,
    write_results,
)

DEFAULT_RUNS = 9
MIN_RUNS = 7


@dataclasses.dataclass(frozen=True)
class Case:
    """One single-generation case."""

    key: str
    label: str
    source: str
    kind: str  # "fill" or "fit"
    size: tuple[int, int]
    format: str = "JPEG"


CASES = (
    Case("12mp-fill", "12 MP JPEG -> fill 300x200 JPEG", "jpeg_12mp", "fill", (300, 200)),
    Case("24mp-fill", "24 MP JPEG -> fill 300x200 JPEG", "jpeg_24mp", "fill", (300, 200)),
    Case("2mp-fill", "2 MP JPEG -> fill 300x200 JPEG", "jpeg_2mp", "fill", (300, 200)),
    Case("12mp-fit", "12 MP JPEG -> fit 1024 JPEG", "jpeg_12mp", "fit", (1024, 1024)),
    Case("png-fill", "4 MP RGBA PNG -> fill 300x200 JPEG", "png_4mp_rgba", "fill", (300, 200)),
    Case(
        "12mp-smooth-fill",
        "12 MP smooth JPEG -> fill 300x200 JPEG",
        "jpeg_12mp_smooth",
        "fill",
        (300, 200),
    ),
    Case(
        "12mp-smooth-fit",
        "12 MP smooth JPEG -> fit 1024 JPEG",
        "jpeg_12mp_smooth",
        "fit",
        (1024, 1024),
    ),
    Case(
        "12mp-o6-fill",
        "12 MP JPEG, EXIF orient. 6 -> fill 300x200",
        "jpeg_12mp_o6",
        "fill",
        (300, 200),
    ),
)

OURS, PILKIT, VIPS = "flask_imagekit", "pilkit-style", "pyvips"
FLOOR = "decode only"


def make_processor(kind: str, size: tuple[int, int]) -> t.Any:
    """flask_imagekit's processor for a case."""
    return ResizeToFill(*size) if kind == "fill" else ResizeToFit(*size)


def make_spec(case: Case) -> type[ImageSpec]:
    """An ImageSpec class for a case."""
    return type(
        f"Bench_{case.key.replace('-', '_')}",
        (ImageSpec,),
        {"processors": [make_processor(case.kind, case.size)], "format": case.format},
    )


def exact_reference(data: bytes, processor: t.Any) -> Image.Image:
    """Full decode, upright, one exact LANCZOS resize of flask_imagekit's crop box."""
    img = decode_bytes(data)
    img = ImageOps.exif_transpose(img)
    plan = processor.plan(img.size)
    if plan is None:  # pragma: no cover - every case here has a plan
        return t.cast(Image.Image, processor.process(img))
    out = img.resize(plan.size, Image.Resampling.LANCZOS, box=plan.box)
    for after in plan.after:
        out = after.process(out)
    return out


def fast_path_pixels(data: bytes, processor: t.Any) -> Image.Image:
    """The pixels flask_imagekit hands to the encoder (decode() + the remaining processors)."""
    img, remaining = decode(open_image(io.BytesIO(data)), [processor])
    for proc in remaining:
        img = proc.process(img)
    return img


def decoded_size(data: bytes, processor: t.Any) -> tuple[int, int]:
    """The size flask_imagekit decodes the source at (its JPEG draft scale), as stored."""
    seen: list[tuple[int, int]] = []
    original = Image.Image.resize

    def resize(self: Image.Image, *args: t.Any, **kwargs: t.Any) -> Image.Image:
        seen.append(self.size)
        return original(self, *args, **kwargs)

    Image.Image.resize = resize  # type: ignore[method-assign]
    try:
        fast_path_pixels(data, processor)
    finally:
        Image.Image.resize = original  # type: ignore[method-assign]
    return seen[0] if seen else Image.open(io.BytesIO(data)).size


def decode_floor(data: bytes, size: tuple[int, int]) -> None:
    """Only decode the source at ``size`` (Pillow's JPEG draft): the fast path's floor."""
    img = Image.open(io.BytesIO(data))
    if img.format == "JPEG" and size != img.size:
        img.draft(img.mode, size)
    img.load()


def run_case(case: Case, data: bytes, runs: int, pyvips: t.Any | None) -> dict[str, t.Any]:
    """Time and measure the quality of one case."""
    spec = make_spec(case)(source=io.BytesIO(data))
    pil_procs = pilkit_processors(case.kind, case.size)
    contenders: dict[str, t.Callable[[], bytes]] = {
        OURS: lambda: spec.generate().getvalue(),
        PILKIT: lambda: pilkit_generate(io.BytesIO(data), pil_procs, case.format),
    }
    if pyvips is not None:
        contenders[VIPS] = lambda: vips_encode(
            pyvips, vips_thumbnail(pyvips, data, case.kind, case.size), case.format
        )
    processor = make_processor(case.kind, case.size)
    draft_size = decoded_size(data, processor)
    timed: dict[str, t.Callable[[], object]] = dict(contenders)
    timed[FLOOR] = lambda: decode_floor(data, draft_size)
    times = alternate(timed, runs)
    outputs = {name: fn() for name, fn in contenders.items()}
    floor = summarize(times[FLOOR])
    reference = exact_reference(data, processor)
    pilkit_pixels = pilkit_image(io.BytesIO(data), pil_procs)
    pre: dict[str, Image.Image] = {
        OURS: fast_path_pixels(data, processor),
        PILKIT: pilkit_pixels,
    }
    if pyvips is not None:
        pre[VIPS] = vips_to_pil(vips_thumbnail(pyvips, data, case.kind, case.size))
    results: dict[str, t.Any] = {}
    for name in contenders:
        decoded = decode_bytes(outputs[name])
        results[name] = {
            **{f"{k}_ms": v * 1000 for k, v in summarize(times[name]).items() if k != "runs"},
            "iqr_rel": summarize(times[name])["iqr_rel"],
            "times_ms": [round(v * 1000, 3) for v in times[name]],
            "psnr_pre_db": psnr(pre[name], reference),
            "psnr_post_db": psnr(decoded, reference),
            "output_size": list(decoded.size),
            "output_bytes": len(outputs[name]),
        }
    base = results[PILKIT]["median_ms"]
    for name in contenders:
        results[name]["speedup_vs_pilkit"] = base / results[name]["median_ms"]
    if pyvips is not None:
        results[OURS]["speed_vs_pyvips"] = results[VIPS]["median_ms"] / results[OURS]["median_ms"]
    results[OURS]["decode_floor_ms"] = floor["median"] * 1000
    results[OURS]["over_decode_floor"] = results[OURS]["median_ms"] / (floor["median"] * 1000)
    return {
        "case": case.key,
        "decoded_size": list(draft_size),
        "label": case.label,
        "source_size": list(Image.open(io.BytesIO(data)).size),
        "source_bytes": len(data),
        "runs": runs,
        "reference_size": list(reference.size),
        "reference_vs_pilkit_db": psnr(reference, pilkit_pixels),
        "results": results,
    }


def _floor_note(case: dict[str, t.Any]) -> str:
    ours = case["results"][OURS]
    width, height = case["decoded_size"]
    return (
        f"decoding alone at {width}x{height}: {ours['decode_floor_ms']:.1f} of "
        f"{ours['median_ms']:.1f} ms"
    )


def targets(cases: dict[str, dict[str, t.Any]], have_vips: bool) -> list[Target]:
    """The issue's single-generation targets."""
    found: list[Target] = []
    fill = cases.get("12mp-fill")
    if fill is not None:
        ours = fill["results"][OURS]
        found.append(
            Target(
                "12 MP fill 300x200: speed-up vs pilkit-style",
                ours["speedup_vs_pilkit"],
                5.0,
                "x",
                True,
                _floor_note(fill),
            )
        )
        found.append(
            Target(
                "12 MP fill 300x200: pyvips time / flask_imagekit time",
                ours.get("speed_vs_pyvips"),
                1.0,
                "x",
                True,
                "" if have_vips else "pyvips not installed",
            )
        )
        found.append(
            Target(
                "12 MP fill 300x200: PSNR before encoding", ours["psnr_pre_db"], 47.0, "dB", True
            )
        )
    fit = cases.get("12mp-fit")
    if fit is not None:
        found.append(
            Target(
                "12 MP fit 1024: speed-up vs pilkit-style",
                fit["results"][OURS]["speedup_vs_pilkit"],
                2.5,
                "x",
                True,
                _floor_note(fit),
            )
        )
    return found


def print_report(cases: list[dict[str, t.Any]], have_vips: bool, found: list[Target]) -> None:
    """Timing and quality tables."""
    names = [OURS, PILKIT] + ([VIPS] if have_vips else [])
    rows = []
    for case in cases:
        res = case["results"]
        width, height = case["source_size"]
        row = [
            case["label"],
            f"{case['source_bytes'] * 8 / (width * height):.2f}",
            fmt_ms(res[PILKIT]["median_ms"] / 1000),
            fmt_ms(res[OURS]["median_ms"] / 1000),
        ]
        row.append(fmt_ms(res[VIPS]["median_ms"] / 1000) if have_vips else "-")
        row.append(f"{res[OURS]['speedup_vs_pilkit']:.2f}x")
        row.append(f"{res[OURS]['speed_vs_pyvips']:.2f}x" if have_vips else "-")
        row.append(
            f"{res[OURS]['decode_floor_ms']:.1f} @{case['decoded_size'][0]}x"
            f"{case['decoded_size'][1]}"
        )
        row.append(f"{res[OURS]['over_decode_floor']:.2f}x")
        row.append(f"{max(res[n]['iqr_rel'] for n in names) * 100:.0f}%")
        rows.append(row)
    print(f"\nSingle generation: median of {cases[0]['runs']} alternating runs (ms)")
    print(
        table(
            [
                "case",
                "src bits/px",
                "pilkit-style",
                "flask_imagekit",
                "pyvips",
                "fik vs pilkit",
                "fik vs pyvips",
                "decode only",
                "fik/decode",
                "max IQR",
            ],
            rows,
        )
    )
    print(
        "(fik vs X = X's median / flask_imagekit's median: > 1 means flask_imagekit is faster;\n"
        " decode only = Pillow decoding the source at the size flask_imagekit decodes it,\n"
        " nothing else: the floor of the fast path)"
    )
    rows = []
    for case in cases:
        res = case["results"]
        row = [case["label"]]
        for name in names:
            row += [fmt_db(res[name]["psnr_pre_db"]), fmt_db(res[name]["psnr_post_db"])]
        row.append("/".join(str(res[name]["output_bytes"]) for name in names))
        rows.append(row)
    headers = ["case"]
    for name in names:
        headers += [f"{name} pre", "post"]
    headers.append("bytes " + "/".join(names))
    print(
        "\nQuality: PSNR (dB) against the exact full-resolution reference, before/after encoding"
    )
    print(table(headers, rows))
    print("\nTargets")
    print(target_table(found))


def profile_case(case: Case, data: bytes, iterations: int = 30) -> Path:
    """cProfile flask_imagekit's generate() on one case; write the stats, return the path."""
    spec = make_spec(case)(source=io.BytesIO(data))
    spec.generate()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(iterations):
        spec.generate()
    profiler.disable()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"profile-single-{case.key}.txt"
    with path.open("w", encoding="utf-8") as fp:
        fp.write(f"{iterations} x ImageSpec.generate() on {case.label}\n")
        stats = pstats.Stats(profiler, stream=fp)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(25)
    return path


def parse_args(argv: t.Sequence[str] | None) -> argparse.Namespace:
    """Command line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs", type=int, default=None, help=f"runs per contender (>= {MIN_RUNS})"
    )
    parser.add_argument("--quick", action="store_true", help=f"{MIN_RUNS} runs")
    parser.add_argument("--case", action="append", choices=[c.key for c in CASES])
    parser.add_argument("--no-vips", action="store_true", help="leave pyvips out")
    parser.add_argument(
        "--profile",
        choices=[c.key for c in CASES],
        default=None,
        help="also cProfile flask_imagekit on this case",
    )
    return parser.parse_args(argv)


def main(argv: t.Sequence[str] | None = None) -> dict[str, t.Any]:
    """Run the benchmark; print the tables; write ``bench/results/single.json``."""
    args = parse_args(argv)
    runs = args.runs or (MIN_RUNS if args.quick else DEFAULT_RUNS)
    if runs < MIN_RUNS:
        log(f"note: {runs} runs is below the suite's minimum of {MIN_RUNS}")
    pyvips = None if args.no_vips else load_pyvips()
    if pyvips is None and not args.no_vips:
        log("pyvips is not installed (pip install -e '.[bench]'): its column is left out")
    log("single generation: preparing the corpus")
    files = corpus(SINGLE_CORPUS)
    busy = check_idle("single generation")
    selected = [c for c in CASES if not args.case or c.key in args.case]
    results = []
    for case in selected:
        log(f"single generation: {case.label} ({runs} runs each)")
        results.append(run_case(case, files[case.source].read_bytes(), runs, pyvips))
    by_key = {r["case"]: r for r in results}
    found = targets(by_key, pyvips is not None)
    print_report(results, pyvips is not None, found)
    payload: dict[str, t.Any] = {
        "runs": runs,
        "cpu_busy_before": busy,
        "cases": results,
        "targets": found,
    }
    if args.profile:
        case = next(c for c in CASES if c.key == args.profile)
        path = profile_case(case, files[case.source].read_bytes())
        payload["profile"] = str(path)
        print(f"\nProfile of {case.label}: {path}")
    path = write_results("single", payload)
    print(f"\nResults: {path}")
    return {"name": "single", "targets": found, "results": path}


if __name__ == "__main__":
    main()
