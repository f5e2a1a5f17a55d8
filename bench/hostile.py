"""Hostile inputs: the slowest generation and the one whose memory grew most.

Every input goes through every spec shape of ``fuzz.pipeline.SHAPES`` (resize
first, ``Adjust`` first, no processors) in every output format (JPEG, PNG, WebP,
GIF, and AVIF where Pillow writes it), with ``fuzz/fuzz_pipeline.py --replay``:

* the generated hostile corpus and Pillow's test images (one process per shape);
* the heavy hostile cases (decompression bombs, one process each);
* the kept regression inputs of ``tests/corpus/`` (one process).

The peak memory growth of each generation is measured in its process (the peak is
reset before each one). Prints the worst cases and a summary line; writes
``bench/results/hostile.json``.

    python -m bench.hostile [--shapes fill,adjust,plain] [--no-heavy] [--top 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import typing as t
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO_ROOT, log, table, write_results  # noqa: E402
from flask_imagekit.imaging import DEFAULT_MAX_DECODE_BYTES  # noqa: E402
from fuzz import hostile, pipeline  # noqa: E402

HARNESS = REPO_ROOT / "fuzz" / "fuzz_pipeline.py"
KEPT = REPO_ROOT / "tests" / "corpus"
#: The limits the hostile-input tests hold every generation to.
LIMIT_MEGABYTES = DEFAULT_MAX_DECODE_BYTES / 2**20 + 32
LIMIT_SECONDS = 1.0


def replay(args: t.Sequence[str], timeout: float = 900) -> list[dict[str, t.Any]]:
    """Run the harness with ``args`` (plus ``--json``); its results, one per generation."""
    cmd = [sys.executable, str(HARNESS), *args, "--json"]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO_ROOT
    )
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if not results:
        msg = f"no result from {' '.join(args)} (exit status {proc.returncode}): "
        raise SystemExit(msg + proc.stderr[-2000:])
    return results


def run(shapes: t.Sequence[str], heavy: bool) -> list[dict[str, t.Any]]:
    """Every input through every shape; the results."""
    results: list[dict[str, t.Any]] = []
    for shape in shapes:
        log(f"hostile: both corpora, shape {shape!r}, every format")
        results += replay(["--corpus", "--spec", shape])
    spec = ",".join(shapes)
    if heavy:
        with tempfile.TemporaryDirectory(prefix="imagekit-hostile-") as tmp:
            for case in hostile.CASES:
                if not case.heavy:
                    continue
                log(f"hostile: heavy case {case.id}")
                path = Path(tmp) / case.id
                path.write_bytes(case.build())
                found = replay(["--replay", str(path), "--spec", spec, "--name", case.name])
                for result in found:
                    result["file"] = f"hostile:{case.id}"
                results += found
    kept = sorted(
        str(path)
        for path in KEPT.iterdir()
        if path.is_file() and path.suffix not in (".md", ".json", ".txt")
    )
    if kept:
        log(f"hostile: {len(kept)} kept regression inputs")
        found = replay(["--replay", *kept, "--spec", spec, "--name", "kept.img"])
        for result in found:
            result["file"] = f"kept:{Path(result['file']).name}"
        results += found
    return results


def describe(result: dict[str, t.Any]) -> list[t.Any]:
    what = result["kind"] if result["error"] is None else result["error"]
    return [
        result["file"],
        "/".join(result["route"][1:]),
        what,
        f"{result['seconds']:.3f}",
        f"{result['megabytes'] or 0:.1f}",
    ]


def main(argv: t.Sequence[str] | None = None) -> dict[str, t.Any]:
    """Run, print the worst cases and the summary, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default=",".join(pipeline.SHAPES), help="spec shapes")
    parser.add_argument("--no-heavy", action="store_true", help="leave the heavy cases out")
    parser.add_argument("--top", type=int, default=5, help="how many worst cases to show")
    parser.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-vips", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    shapes = [shape for shape in args.shapes.split(",") if shape]
    results = run(shapes, heavy=not args.no_heavy)
    slowest = sorted(results, key=lambda r: r["seconds"], reverse=True)[: args.top]
    largest = sorted(results, key=lambda r: r["megabytes"] or 0, reverse=True)[: args.top]
    headers = ["input", "spec", "outcome", "seconds", "peak growth (MB)"]
    print("\nSlowest generations")
    print(table(headers, [describe(r) for r in slowest]))
    print("\nLargest peak memory growth")
    print(table(headers, [describe(r) for r in largest]))
    escapes = [r for r in results if r["problems"]]
    over = [
        r
        for r in results
        if r["seconds"] >= LIMIT_SECONDS or (r["megabytes"] or 0) >= LIMIT_MEGABYTES
    ]
    kinds: dict[str, int] = {}
    for result in results:
        kinds[result["kind"]] = kinds.get(result["kind"], 0) + 1
    worst_time, worst_memory = slowest[0], largest[0]
    print(
        f"\nhostile: generations={len(results)} outcomes={json.dumps(kinds, sort_keys=True)} "
        f"escapes={len(escapes)} over_limits={len(over)} "
        f"worst_time={worst_time['seconds']:.3f}s ({worst_time['file']} "
        f"{'/'.join(worst_time['route'][1:])}) "
        f"worst_memory={worst_memory['megabytes'] or 0:.1f}MB ({worst_memory['file']} "
        f"{'/'.join(worst_memory['route'][1:])}) "
        f"limits={LIMIT_SECONDS:.0f}s/{LIMIT_MEGABYTES:.0f}MB"
    )
    payload = {
        "generations": len(results),
        "outcomes": kinds,
        "escapes": escapes,
        "over_limits": over,
        "slowest": slowest,
        "largest_memory": largest,
        "memory_exact": all(r["memory_exact"] for r in results),
    }
    write_results("hostile", payload)
    return {"targets": [], **payload}


if __name__ == "__main__":
    main()
