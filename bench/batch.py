"""Benchmark 2 - batch: ``flask imagekit generate`` vs the pilkit way vs pyvips.

200 12 MP JPEG sources (every 10th with EXIF orientation 6) x 3 specs (fill
300x200 JPEG, fit 1024 JPEG, fill 150x150 WebP), in sources per second:

* ``flask imagekit generate --force`` and ``--jobs 2``, run as a user runs them
  (``python -m flask --app bench.batchapp:create_app ...`` in a subprocess; the
  wall time includes interpreter start-up and imports);
* the pilkit way in one process, as django-imagekit's ``generateimages`` does it:
  per spec, open the source, full decode, pilkit ``Transpose(AUTO)`` + resize,
  pilkit save, write the file;
* pyvips ``thumbnail`` in 2 worker processes (``bench/vipsbatch.py``, a
  subprocess too), if pyvips is installed;
* the command's fixed cost: ``flask imagekit generate`` with no source.

Each of the ``--rounds`` rounds (>= 7) runs every contender once, in an order
that rotates. The subprocess contenders do all the sources every round. The
pilkit way, at about 0.6 s a source, does a different 1/rounds slice of the
sources each round (so it does each source once over the run and the default
run stays near 10 minutes); its rate is in-process, with no start-up cost,
which only favours it. Medians of the per-round rates are compared.

    python -m bench.batch [--sources 200] [--rounds 7] [--quick] [--profile]
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    REPO_ROOT,
    RESULTS_DIR,
    Target,
    batch_corpus,
    check_idle,
    iter_chunks,
    load_pyvips,
    log,
    pilkit_generate,
    pilkit_processors,
    subprocess_env,
    table,
    target_table,
    write_results,
)

DEFAULT_SOURCES = 200
QUICK_SOURCES = 21
MIN_ROUNDS = 7
APP = "bench.batchapp:create_app"
SUMMARY = re.compile(r"^Generated (\d+) files?, (\d+) already there, (\d+) failed\.$", re.M)

#: The pilkit way's three outputs: (kind, size, format, suffix).
PILKIT_OUTPUTS = (
    ("fill", (300, 200), "JPEG", "fill300.jpg"),
    ("fit", (1024, 1024), "JPEG", "fit1024.jpg"),
    ("fill", (150, 150), "WEBP", "fill150.webp"),
)

CLI_J1, CLI_J2, VIPS2, PILKIT, STARTUP = (
    "flask imagekit generate",
    "flask imagekit generate --jobs 2",
    "pyvips, 2 processes",
    "pilkit-style, 1 process",
    "command fixed cost (0 sources)",
)


def run_cli(media_root: Path, sources_dir: Path, sources: int, jobs: int) -> float:
    """Run ``flask imagekit generate --force``; check its summary; return the wall time."""
    args = [sys.executable, "-m", "flask", "--app", APP, "imagekit", "generate", "--force"]
    if jobs > 1:
        args += ["--jobs", str(jobs)]
    env = subprocess_env(
        BENCH_MEDIA_ROOT=str(media_root),
        BENCH_SOURCES_DIR=str(sources_dir),
        BENCH_SOURCES=str(sources),
    )
    started = time.perf_counter()
    done = subprocess.run(
        args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    found = SUMMARY.findall(done.stdout)
    expected = (str(3 * sources), "0", "0")
    if done.returncode != 0 or found != [expected]:
        msg = (
            f"flask imagekit generate failed or did not generate {3 * sources} files "
            f"(exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
        raise RuntimeError(msg)
    return elapsed


def run_vips(out_dir: Path, sources_dir: Path, sources: int, jobs: int = 2) -> float:
    """Run ``bench/vipsbatch.py`` in a subprocess; return the wall time."""
    args = [
        sys.executable,
        "-m",
        "bench.vipsbatch",
        "--sources-dir",
        str(sources_dir),
        "--out",
        str(out_dir),
        "--sources",
        str(sources),
        "--jobs",
        str(jobs),
    ]
    started = time.perf_counter()
    done = subprocess.run(
        args, cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or f"Wrote {3 * sources} files" not in done.stdout:
        msg = f"pyvips batch failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
        raise RuntimeError(msg)
    return elapsed


def run_pilkit(out_dir: Path, paths: t.Sequence[str]) -> float:
    """The pilkit way over ``paths`` in this process; return the wall time."""
    outputs = [
        (pilkit_processors(kind, size), fmt, suffix) for kind, size, fmt, suffix in PILKIT_OUTPUTS
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        for processors, fmt, suffix in outputs:
            with open(path, "rb") as fp:
                data = pilkit_generate(fp, processors, fmt)
            with open(out_dir / f"{stem}_{suffix}", "wb") as out:
                out.write(data)
    return time.perf_counter() - started


def profile_cli(media_root: Path, sources_dir: Path, sources: int) -> Path:
    """cProfile one ``flask imagekit generate --force`` run; write the top of the stats."""
    import pstats

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    prof = RESULTS_DIR / "profile-batch.prof"
    args = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "flask", "--app", APP]
    args += ["imagekit", "generate", "--force"]
    env = subprocess_env(
        BENCH_MEDIA_ROOT=str(media_root),
        BENCH_SOURCES_DIR=str(sources_dir),
        BENCH_SOURCES=str(sources),
    )
    subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, check=True)
    path = RESULTS_DIR / "profile-batch.txt"
    with path.open("w", encoding="utf-8") as fp:
        fp.write(f"flask imagekit generate --force, {sources} sources x 3 specs, one process\n")
        stats = pstats.Stats(str(prof), stream=fp)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(40)
    return path


def parse_args(argv: t.Sequence[str] | None) -> argparse.Namespace:
    """Command line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=None, help="number of sources (200)")
    parser.add_argument("--rounds", type=int, default=MIN_ROUNDS, help="rounds (>= 7)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SOURCES} sources")
    parser.add_argument("--no-vips", action="store_true", help="leave pyvips out")
    parser.add_argument("--profile", action="store_true", help="also cProfile one serial run")
    return parser.parse_args(argv)


def main(argv: t.Sequence[str] | None = None) -> dict[str, t.Any]:
    """Run the benchmark; print the tables; write ``bench/results/batch.json``."""
    args = parse_args(argv)
    sources = args.sources or (QUICK_SOURCES if args.quick else DEFAULT_SOURCES)
    rounds = args.rounds
    if rounds < MIN_ROUNDS:
        log(f"note: {rounds} rounds is below the suite's minimum of {MIN_ROUNDS}")
    if sources < rounds:
        msg = f"--sources ({sources}) must be at least --rounds ({rounds})"
        raise SystemExit(msg)
    have_vips = not args.no_vips and load_pyvips() is not None
    if not have_vips and not args.no_vips:
        log("pyvips is not installed (pip install -e '.[bench]'): its row is left out")
    log(f"batch: preparing {sources} sources")
    sources_dir = batch_corpus(sources)
    paths = sorted(glob.glob(str(sources_dir / "*.jpg")))[:sources]
    for path in paths:  # into the page cache, for every contender alike
        Path(path).read_bytes()
    slices = list(iter_chunks(paths, rounds))
    busy = check_idle("batch")

    work = Path(tempfile.mkdtemp(prefix="imagekit-bench-batch-"))
    try:
        dirs = {name: work / f"out{i}" for i, name in enumerate((CLI_J1, CLI_J2, VIPS2, PILKIT))}
        contenders: dict[str, t.Callable[[int], float]] = {
            CLI_J1: lambda r: run_cli(dirs[CLI_J1], sources_dir, sources, 1),
            CLI_J2: lambda r: run_cli(dirs[CLI_J2], sources_dir, sources, 2),
            PILKIT: lambda r: run_pilkit(dirs[PILKIT], slices[r]),
            STARTUP: lambda r: run_cli(work / "empty", sources_dir, 0, 1),
        }
        if have_vips:
            contenders[VIPS2] = lambda r: run_vips(dirs[VIPS2], sources_dir, sources)
        counts = {name: sources for name in contenders}
        counts[STARTUP] = 0
        log("batch: warm-up (2 sources each)")
        run_cli(work / "warm", sources_dir, 2, 1)
        run_cli(work / "warm", sources_dir, 2, 2)
        run_pilkit(work / "warm", paths[:2])
        if have_vips:
            run_vips(work / "warm", sources_dir, 2)
        names = list(contenders)
        times: dict[str, list[float]] = {name: [] for name in names}
        rates: dict[str, list[float]] = {name: [] for name in names}
        for r in range(rounds):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                elapsed = contenders[name](r)
                count = len(slices[r]) if name == PILKIT else counts[name]
                times[name].append(elapsed)
                rates[name].append(count / elapsed if count else 0.0)
                log(f"batch: round {r + 1}/{rounds}: {name}: {elapsed:.2f}s")
        profile = (
            profile_cli(work / "profile", sources_dir, min(sources, 30)) if args.profile else None
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    base = statistics.median(rates[PILKIT])
    summary: dict[str, dict[str, t.Any]] = {}
    for name in names:
        entry: dict[str, t.Any] = {
            "sources_per_round": [len(s) for s in slices] if name == PILKIT else counts[name],
            "median_s": statistics.median(times[name]),
            "times_s": [round(v, 3) for v in times[name]],
        }
        if name != STARTUP:
            median_rate = statistics.median(rates[name])
            entry.update(
                median_sources_per_s=median_rate,
                min_sources_per_s=min(rates[name]),
                max_sources_per_s=max(rates[name]),
                rates=[round(v, 3) for v in rates[name]],
                vs_pilkit=median_rate / base,
            )
        summary[name] = entry
    startup = summary[STARTUP]["median_s"]
    for name in (CLI_J1, CLI_J2):
        steady = sources / (summary[name]["median_s"] - startup)
        summary[name]["sources_per_s_without_fixed_cost"] = steady

    found = [
        Target(
            "batch: --jobs 2 vs pilkit-style 1 process",
            summary[CLI_J2]["vs_pilkit"],
            6.0,
            "x",
            True,
        ),
        Target(
            "batch: --jobs 2 vs pyvips 2 processes (rate ratio)",
            summary[CLI_J2]["median_sources_per_s"] / summary[VIPS2]["median_sources_per_s"]
            if have_vips
            else None,
            1.0,
            "x",
            True,
            "" if have_vips else "pyvips not installed",
        ),
    ]
    rows = []
    for name in (PILKIT, CLI_J1, CLI_J2, VIPS2, STARTUP):
        if name not in summary:
            continue
        entry = summary[name]
        if name == STARTUP:
            rows.append([name, f"{entry['median_s']:.2f}", "-", "-", "-", "-"])
            continue
        per_round = entry["sources_per_round"]
        per_round = (
            f"{min(per_round)}-{max(per_round)}" if isinstance(per_round, list) else per_round
        )
        rows.append(
            [
                name,
                f"{entry['median_s']:.2f}",
                per_round,
                f"{entry['median_sources_per_s']:.2f}",
                f"{entry['min_sources_per_s']:.2f}-{entry['max_sources_per_s']:.2f}",
                f"{entry['vs_pilkit']:.2f}x",
            ]
        )
    print(f"\nBatch: {sources} sources x 3 specs, median of {rounds} alternating rounds")
    print(
        table(
            ["contender", "median s", "sources/round", "sources/s", "range", "vs pilkit"],
            rows,
        )
    )
    for name in (CLI_J1, CLI_J2):
        print(
            f"{name}: {summary[name]['sources_per_s_without_fixed_cost']:.2f} sources/s "
            f"without the {startup:.2f}s fixed cost"
        )
    print("\nTargets")
    print(target_table(found))
    payload: dict[str, t.Any] = {
        "sources": sources,
        "rounds": rounds,
        "cpu_busy_before": busy,
        "specs": ["fill 300x200 JPEG", "fit 1024 JPEG", "fill 150x150 WebP"],
        "contenders": summary,
        "targets": found,
    }
    if profile is not None:
        payload["profile"] = str(profile)
        print(f"\nProfile of one serial run: {profile}")
    results = write_results("batch", payload)
    print(f"\nResults: {results}")
    return {"name": "batch", "targets": found, "results": results}


if __name__ == "__main__":
    main()
