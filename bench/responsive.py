"""Responsive candidates: the candidate set of one photo, encoder settings, blur previews.

``set`` (the default): the full candidate set of one 12 MP JPEG, 4 widths (480,
800, 1200, 1600) x AVIF/WebP/JPEG = 12 files, side by side and alternated:

* flask_imagekit: a spec ``ResizeToFit(1600, 1600)`` in JPEG declaring
  ``responsive_widths = [480, 800, 1200]`` and ``responsive_formats = ["AVIF",
  "WEBP"]``, its file and its 11 candidates generated together (one decode, the
  spec's resize once, one resize per width shared by the three formats);
* pyvips: ``thumbnail_buffer`` to 1600 (shrink-on-load, auto-rotate) kept in
  memory, one ``resize`` per width kept in memory, each encoded three times with
  the same encoder settings (AVIF through ``heifsave`` with AV1);
* 12 ordinary specs, each generated alone (a decode, a resize, an encode each);
* pilkit's way, 12 times: full decode, ``Transpose(AUTO)`` + ``ResizeToFit``,
  Pillow's encoder with the same settings.

Every contender writes to memory. Bytes and SSIM (mean over R, G, B, Gaussian
window of sigma 1.5, against a Lanczos resize of the full decode to the same
width) are reported per format, so the times compare the same work.

``sweep``: AVIF (quality x speed, subsampling) and WebP (quality x method)
settings on the two 12 MP photos at 480 to 1600 pixels: bytes, encode time and
SSIM, against JPEG (the defaults of ``ENCODER_DEFAULTS`` were chosen from it).

``previews``: blur placeholders, the tiny WebP of ``blur_preview`` against tiny
JPEG/PNG and BlurHash (the pure-Python ``blurhash`` package, when importable):
length of the data URI, time to make it, time to decode it.

SSIM and the pyvips column need pyvips (``pip install -e '.[bench]'``).

    python -m bench.responsive [set|sweep|previews] [--runs 7] [--quick] [--no-vips]
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import sys
import time
import typing as t
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image  # noqa: E402

from bench.common import (  # noqa: E402
    SINGLE_CORPUS,
    Target,
    alternate,
    check_idle,
    corpus,
    decode_bytes,
    fmt_ms,
    load_pyvips,
    log,
    photo_like,
    summarize,
    table,
    target_table,
    with_alpha,
    write_results,
)
from flask_imagekit import ImageSpec  # noqa: E402
from flask_imagekit.imaging import ENCODER_DEFAULTS, blur_preview  # noqa: E402
from flask_imagekit.processors import ResizeToFit  # noqa: E402
from flask_imagekit.sources import SourceFile  # noqa: E402
from flask_imagekit.specs import encode_threads, prepare_specs, set_encode_threads  # noqa: E402
from flask_imagekit.specs.responsive import Candidate, declared_candidates  # noqa: E402

WIDTHS = (480, 800, 1200, 1600)
FORMATS = ("AVIF", "WEBP", "JPEG")
OURS, VIPS, SEPARATE, PILKIT = "flask_imagekit", "pyvips", "12 specs alone", "pilkit-style"


class Photo(ImageSpec):
    """The spec of the set: 1600 px JPEG, with candidates at 480/800/1200 in AVIF/WebP/JPEG."""

    processors = [ResizeToFit(1600, 1600)]  # noqa: RUF012
    format = "JPEG"
    responsive_widths = [480, 800, 1200]  # noqa: RUF012
    responsive_formats = ["AVIF", "WEBP"]  # noqa: RUF012


def encoder_options(fmt: str) -> dict[str, t.Any]:
    """The settings flask_imagekit encodes ``fmt`` with (Pillow's names)."""
    return dict(ENCODER_DEFAULTS.get(fmt, {}))


def vips_options(fmt: str) -> dict[str, t.Any]:
    """The same settings in libvips' names (AV1 speed s is heifsave effort 9 - s)."""
    ours = encoder_options(fmt)
    if fmt == "AVIF":
        return {
            "compression": "av1",
            "Q": ours.get("quality", 75),
            "effort": 9 - ours.get("speed", 6),
            "keep": 8,
        }
    if fmt == "WEBP":
        return {"Q": ours.get("quality", 80), "effort": ours.get("method", 4), "keep": 8}
    return {"Q": ours.get("quality", 75), "optimize_coding": True, "keep": 8}


# SSIM ----------------------------------------------------------------------------------------


def ssim(pyvips: t.Any, a: Image.Image, b: Image.Image) -> float:
    """Mean SSIM of ``a`` against ``b`` over R, G and B (Wang et al.: Gaussian, sigma 1.5)."""

    def load(img: Image.Image) -> t.Any:
        rgb = img.convert("RGB")
        memory = pyvips.Image.new_from_memory(rgb.tobytes(), rgb.width, rgb.height, 3, "uchar")
        return memory.cast("float")

    x, y = load(a), load(b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(img: t.Any) -> t.Any:
        return img.gaussblur(1.5, precision="float")

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    num = (2 * mx * my + c1) * (2 * sxy + c2)
    return float((num / ((mx * mx + my * my + c1) * (sxx + syy + c2))).avg())


# The candidate set ------------------------------------------------------------------------------

Outputs = dict[tuple[int, str], bytes]


def ours(data: bytes, phases: dict[str, float] | None = None) -> Outputs:
    """flask_imagekit: the spec's file and its 11 candidates, generated together.

    With several encode threads the first ``generate()`` makes the other widths
    and encodes all 12 outputs at once; the others take theirs.
    """
    at_once = encode_threads() > 1
    started = time.perf_counter()
    base = Photo(source=SourceFile("photo.jpg", file=io.BytesIO(data)))
    specs: list[ImageSpec] = [base]
    specs += [Candidate(base, width, fmt) for width, fmt in declared_candidates(base, 1600)]
    prepare_specs(specs)
    if phases is not None:
        phases["decode + resize to 1600"] = time.perf_counter() - started
    found: Outputs = {}
    for index, spec in enumerate(specs):
        begun = time.perf_counter()
        fmt = spec.format or "JPEG"
        width = getattr(spec, "width", None) or 1600
        found[(width, fmt)] = spec.generate().getvalue()
        if phases is not None:
            if at_once:
                key = "other widths + 12 encodes at once" if index == 0 else "11 outputs taken"
            else:
                key = f"{fmt} (4 widths)"
            phases[key] = phases.get(key, 0.0) + time.perf_counter() - begun
    return found


def separate(data: bytes) -> Outputs:
    """12 ordinary specs, each generated alone: a decode, a resize and an encode each."""
    found: Outputs = {}
    for width in WIDTHS:
        for fmt in FORMATS:
            spec = type(
                "One", (ImageSpec,), {"processors": [ResizeToFit(width, width)], "format": fmt}
            )
            source = SourceFile("photo.jpg", file=io.BytesIO(data))
            found[(width, fmt)] = spec(source=source).generate().getvalue()
    return found


def pilkit_way(data: bytes) -> Outputs:
    """pilkit's pipeline 12 times: full decode, Transpose(AUTO), ResizeToFit, Pillow's save."""
    from pilkit import processors  # type: ignore[import-untyped]

    found: Outputs = {}
    for width in WIDTHS:
        for fmt in FORMATS:
            img = Image.open(io.BytesIO(data))
            img.load()
            pipeline = processors.ProcessorPipeline(
                [
                    processors.Transpose(processors.Transpose.AUTO),
                    processors.ResizeToFit(width, width),
                ]
            )
            out = io.BytesIO()
            pipeline.process(img).save(out, fmt, **encoder_options(fmt))
            found[(width, fmt)] = out.getvalue()
    return found


def vips_set(pyvips: t.Any, data: bytes) -> Outputs:
    """pyvips: one shrink-on-load thumbnail to 1600, one resize per width, 3 encodes each."""
    base = pyvips.Image.thumbnail_buffer(data, 1600, height=1600).copy_memory()
    found: Outputs = {}
    for width in WIDTHS:
        img = base if width == base.width else base.resize(width / base.width).copy_memory()
        for fmt in FORMATS:
            options = vips_options(fmt)
            if fmt == "AVIF":
                found[(width, fmt)] = img.heifsave_buffer(**options)
            elif fmt == "WEBP":
                found[(width, fmt)] = img.webpsave_buffer(**options)
            else:
                found[(width, fmt)] = img.jpegsave_buffer(**options)
    return found


def quality(
    pyvips: t.Any | None, outputs: Outputs, references: dict[int, Image.Image]
) -> dict[str, dict[str, float]]:
    """Per format: total bytes, mean SSIM over the widths, and the widths found."""
    report: dict[str, dict[str, float]] = {}
    for fmt in FORMATS:
        sizes = [len(outputs[(width, fmt)]) for width in WIDTHS]
        scores = []
        for width in WIDTHS:
            decoded = decode_bytes(outputs[(width, fmt)])
            assert decoded.width == width, (fmt, width, decoded.size)
            if pyvips is not None:
                scores.append(ssim(pyvips, decoded, references[width]))
        report[fmt] = {
            "bytes": float(sum(sizes)),
            "ssim": statistics.fmean(scores) if scores else float("nan"),
        }
    return report


def by_phase(data: bytes) -> dict[str, float]:
    """The time of each phase of :func:`ours`, in seconds: medians of 3 runs."""
    runs: list[dict[str, float]] = []
    for _ in range(3):
        phases: dict[str, float] = {}
        ours(data, phases)
        runs.append(phases)
    return {name: statistics.median(run[name] for run in runs) for name in runs[0]}


def run_set(args: argparse.Namespace, pyvips: t.Any | None) -> dict[str, t.Any]:
    """The candidate-set contest; prints its tables and returns the results."""
    key = args.source
    data = corpus({key: SINGLE_CORPUS[key]})[key].read_bytes()
    full = decode_bytes(data)
    references = {
        width: full.resize(
            (width, round(width * full.height / full.width)), Image.Resampling.LANCZOS
        )
        for width in WIDTHS
    }
    contenders: dict[str, t.Callable[[], Outputs]] = {
        OURS: lambda: ours(data),
        SEPARATE: lambda: separate(data),
    }
    if pyvips is not None:
        contenders[VIPS] = lambda: vips_set(pyvips, data)
    if not args.quick:
        contenders[PILKIT] = lambda: pilkit_way(data)
    check_idle("responsive set")
    log(f"  candidate set of {key}: {len(contenders)} contenders x {args.runs} runs")
    times = alternate(contenders, args.runs)
    threads = encode_threads()
    phases = by_phase(data)
    set_encode_threads(1)
    try:
        one_by_one = by_phase(data) if threads > 1 else {}
    finally:
        set_encode_threads(threads)
    results: dict[str, t.Any] = {}
    for name, make in contenders.items():
        results[name] = {
            "time": summarize(times[name]),
            "quality": quality(pyvips, make(), references),
        }
    rows = []
    base = results[VIPS]["time"]["median"] if VIPS in results else None
    for name, result in results.items():
        median = result["time"]["median"]
        row = [name, fmt_ms(median), f"{base / median:.2f}x" if base else "-"]
        for fmt in FORMATS:
            q = result["quality"][fmt]
            row.append(f"{q['bytes'] / 1000:.0f} kB / {q['ssim']:.4f}")
        rows.append(row)
    print(
        f"\nCandidate set of one 12 MP JPEG ({key}): 4 widths x AVIF/WebP/JPEG, "
        f"medians of {args.runs}"
    )
    headers = ["contender", "ms", "pyvips time / its time"]
    headers += [f"{fmt}: bytes / SSIM" for fmt in FORMATS]
    print(table(headers, rows, align="lrr" + "r" * len(FORMATS)))
    for count, found in ((threads, phases), (1, one_by_one)):
        if found:
            print(f"\nflask_imagekit by phase, {count} encode thread(s) (median of 3, ms):")
            print(table(["phase", "ms"], [[name, fmt_ms(value)] for name, value in found.items()]))
    targets = []
    if base:
        targets.append(
            Target(
                "candidate set of a 12 MP JPEG: flask_imagekit time / pyvips time",
                results[OURS]["time"]["median"] / base,
                1.0,
                "x",
                higher_is_better=False,
            )
        )
    print()
    print(target_table(targets))
    return {
        "results": results,
        "encode_threads": threads,
        "phases_ms": {k: v * 1000 for k, v in phases.items()},
        "phases_one_thread_ms": {k: v * 1000 for k, v in one_by_one.items()},
        "targets": targets,
    }


# Encoder sweep ---------------------------------------------------------------------------------


def sweep_settings(quick: bool) -> list[tuple[str, dict[str, t.Any]]]:
    """The encoder settings to measure."""
    found: list[tuple[str, dict[str, t.Any]]] = []
    for q in (50, 55, 60, 65) if not quick else (55, 60):
        for speed in (6, 7, 8, 9) if not quick else (6, 8):
            found.append(("AVIF", {"quality": q, "speed": speed}))
    found.append(("AVIF", {"quality": 60, "speed": 8, "subsampling": "4:4:4"}))
    for q in (75, 80, 85) if not quick else (80,):
        for method in (0, 1, 2, 4, 6) if not quick else (0, 4):
            found.append(("WEBP", {"quality": q, "method": method}))
    for q in (75, 80, 85):
        found.append(("JPEG", {"quality": q, "optimize": True}))
    return found


def run_sweep(args: argparse.Namespace, pyvips: t.Any | None) -> dict[str, t.Any]:
    """Bytes, encode time and SSIM of every setting, on both photos, at every width."""
    keys = ["jpeg_12mp", "jpeg_12mp_smooth"]
    files = corpus({key: SINGLE_CORPUS[key] for key in keys})
    images = {}
    for key in keys:
        full = decode_bytes(files[key].read_bytes())
        images[key] = {
            width: full.resize(
                (width, round(width * full.height / full.width)), Image.Resampling.LANCZOS
            )
            for width in WIDTHS
        }
    results = []
    runs = 1 if args.quick else 3
    for fmt, options in sweep_settings(args.quick):
        row: dict[str, t.Any] = {"format": fmt, "options": options, "photos": {}}
        for key in keys:
            per_width = {}
            for width in WIDTHS:
                img = images[key][width]
                spent = []
                for _ in range(runs):
                    out = io.BytesIO()
                    started = time.perf_counter()
                    img.save(out, fmt, **options)
                    spent.append(time.perf_counter() - started)
                data = out.getvalue()
                score = (
                    ssim(pyvips, decode_bytes(data), img) if pyvips is not None else float("nan")
                )
                per_width[width] = {
                    "bytes": len(data),
                    "ms": statistics.median(spent) * 1000,
                    "ssim": score,
                }
            row["photos"][key] = per_width
        results.append(row)
        log(f"  {fmt} {options}: done")
    for key in keys:
        jpeg75 = next(
            r for r in results if r["format"] == "JPEG" and r["options"]["quality"] == 75
        )
        reference = sum(jpeg75["photos"][key][w]["bytes"] for w in WIDTHS)
        rows = []
        for row in results:
            cells = row["photos"][key]
            total = sum(cells[w]["bytes"] for w in WIDTHS)
            rows.append(
                [
                    row["format"],
                    " ".join(f"{k}={v}" for k, v in row["options"].items()),
                    *(f"{cells[w]['bytes'] / 1000:.0f}k {cells[w]['ssim']:.3f}" for w in WIDTHS),
                    f"{total / reference:.2f}",
                    f"{sum(cells[w]['ms'] for w in WIDTHS):.0f}",
                ]
            )
        print(
            f"\nEncoder sweep on {key}: bytes and SSIM per width, bytes vs JPEG q75, "
            "ms for 4 widths"
        )
        headers = ["format", "options", *(f"{w} px" for w in WIDTHS), "bytes/JPEG75", "ms"]
        print(table(headers, rows, align="ll" + "r" * (len(WIDTHS) + 2)))
    return {"results": results, "targets": []}


# Blur previews -------------------------------------------------------------------------------


def data_uri(img: Image.Image, fmt: str, **options: t.Any) -> str:
    """``img`` encoded as ``fmt``, as a base64 data URI."""
    out = io.BytesIO()
    img.save(out, fmt, **options)
    mime = {"WEBP": "webp", "JPEG": "jpeg", "PNG": "png"}[fmt]
    return f"data:image/{mime};base64," + base64.b64encode(out.getvalue()).decode("ascii")


def tiny(img: Image.Image, side: int) -> Image.Image:
    """``img`` box-filtered to ``side`` pixels along its longer side."""
    scale = side / max(img.size)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.BOX)


def timed(make: t.Callable[[], t.Any], runs: int = 20) -> tuple[t.Any, float]:
    """The result of ``make()`` and its median time in ms."""
    spent = []
    result = None
    for _ in range(runs):
        started = time.perf_counter()
        result = make()
        spent.append(time.perf_counter() - started)
    return result, statistics.median(spent) * 1000


def run_previews(args: argparse.Namespace, pyvips: t.Any | None) -> dict[str, t.Any]:
    """Each way of making a placeholder, on the 480 px candidates of a few images."""
    try:
        import blurhash  # type: ignore[import-not-found]
    except ImportError:
        blurhash = None
        log("  the blurhash package is not importable: its rows are left out")
    data = corpus({"jpeg_12mp": SINGLE_CORPUS["jpeg_12mp"]})["jpeg_12mp"].read_bytes()
    photo = decode_bytes(data)
    images = {
        "photo 480x360": photo.resize((480, 360), Image.Resampling.LANCZOS),
        "photo 1600x1200": photo.resize((1600, 1200), Image.Resampling.LANCZOS),
        "alpha 480x320": with_alpha(photo_like((480, 320), 5)),
        "strip 4000x100": photo_like((4000, 100), 8),
    }
    rows = []
    results: dict[str, t.Any] = {}
    for label, img in images.items():
        ways: dict[str, t.Callable[[], str | None]] = {
            "blur_preview (WebP 16 px)": lambda img=img: blur_preview(img),
            "WebP 32 px q50": lambda img=img: data_uri(tiny(img, 32), "WEBP", quality=50),
            "JPEG 16 px q50": lambda img=img: data_uri(
                tiny(img.convert("RGB"), 16), "JPEG", quality=50
            ),
            "PNG 16 px": lambda img=img: data_uri(tiny(img, 16), "PNG", optimize=True),
        }
        if blurhash is not None:

            def hashed(img: Image.Image = img) -> str:
                small = tiny(img.convert("RGB"), 32)
                pixels = [
                    [small.getpixel((x, y)) for x in range(small.width)]
                    for y in range(small.height)
                ]
                return t.cast(str, blurhash.encode(pixels, components_x=4, components_y=3))

            def hash_to_png(img: Image.Image = img) -> str:
                code = hashed(img)
                decoded = blurhash.decode(code, 32, max(1, round(32 * img.height / img.width)))
                flat = bytes(
                    int(max(0, min(255, v))) for row in decoded for px in row for v in px[:3]
                )
                size = (32, len(decoded))
                return data_uri(Image.frombytes("RGB", size, flat), "PNG", optimize=True)

            ways["BlurHash 4x3 (the hash; needs a script)"] = hashed
            ways["BlurHash 4x3 decoded to a PNG URI"] = hash_to_png
        for way, make in ways.items():
            uri, ms = timed(make, runs=5 if "BlurHash" in way else 20)
            decode_ms = float("nan")
            if uri and uri.startswith("data:"):
                payload = base64.b64decode(uri.split(",", 1)[1])
                _, decode_ms = timed(lambda payload=payload: decode_bytes(payload))
            length = len(uri) if uri else 0
            rows.append([label, way, str(length), f"{ms:.2f}", f"{decode_ms:.3f}"])
            results.setdefault(label, {})[way] = {
                "length": length,
                "make_ms": ms,
                "decode_ms": decode_ms,
            }
    print("\nBlur placeholders: data URI length (characters), time to make it, time to decode it")
    print(table(["image", "way", "length", "make ms", "decode ms"], rows, align="llrrr"))
    return {"results": results, "targets": []}


# Main ------------------------------------------------------------------------------------------


def parse_args(argv: t.Sequence[str] | None) -> argparse.Namespace:
    """Command line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="?", default="set", choices=["set", "sweep", "previews"])
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each contender (>= 5)")
    parser.add_argument("--source", default="jpeg_12mp", choices=["jpeg_12mp", "jpeg_12mp_smooth"])
    parser.add_argument("--quick", action="store_true", help="fewer runs and settings")
    parser.add_argument("--no-vips", action="store_true", help="leave pyvips out (no SSIM)")
    return parser.parse_args(argv)


def main(argv: t.Sequence[str] | None = None) -> dict[str, t.Any]:
    """Run the chosen part; write ``bench/results/responsive[_part].json``."""
    args = parse_args(argv)
    if args.quick:
        args.runs = min(args.runs, 5)
    pyvips = None if args.no_vips else load_pyvips()
    if pyvips is None and not args.no_vips:
        log("pyvips is not installed (pip install -e '.[bench]'): no pyvips column, no SSIM")
    part = {"set": run_set, "sweep": run_sweep, "previews": run_previews}[args.what]
    outcome = part(args, pyvips)
    name = "responsive" if args.what == "set" else f"responsive_{args.what}"
    path = write_results(name, {"quick": args.quick, "runs": args.runs, **outcome})
    log(f"results: {path}")
    return outcome


if __name__ == "__main__":
    main()
