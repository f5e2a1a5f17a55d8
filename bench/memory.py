"""Benchmark 4 - memory: peak RSS increase of one 300x200 thumbnail from a 50 MP source.

Each measurement is a fresh subprocess (forked from a small launcher process,
since ``ru_maxrss`` is inherited across ``exec``) that imports everything, reads
``ru_maxrss`` (the peak resident set so far), generates one fill 300x200 JPEG
from a source *path* (so the source bytes are streamed, not held), and reads
``ru_maxrss`` again; the increase is the peak memory the generation needed.

Sources: a 50 MP JPEG and a 50 MP PNG (8660 x 5773 = 49,994,180 pixels, just
under the default ``IMAGEKIT_MAX_SOURCE_PIXELS`` of 50,000,000). The pilkit way
and pyvips are measured the same way, for comparison.

    python -m bench.memory [--repeat 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import typing as t
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    MEMORY_CORPUS,
    REPO_ROOT,
    Target,
    check_idle,
    corpus,
    load_pyvips,
    log,
    subprocess_env,
    table,
    target_table,
    write_results,
)

OURS, PILKIT, VIPS = "flask_imagekit", "pilkit-style", "pyvips"
LIMIT_MB = 64.0
SIZE = (300, 200)


def _maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def child(contender: str, path: str) -> dict[str, t.Any]:
    """In a fresh process: generate one thumbnail of ``path``; report the peak RSS increase."""
    import io

    if contender == OURS:
        from flask_imagekit import ImageSpec
        from flask_imagekit.processors import ResizeToFill

        class Thumb(ImageSpec):
            processors = [ResizeToFill(*SIZE)]
            format = "JPEG"

        def generate() -> bytes:
            return Thumb(source=Path(path)).generate().getvalue()

    elif contender == PILKIT:
        from bench.common import pilkit_generate, pilkit_processors

        processors = pilkit_processors("fill", SIZE)

        def generate() -> bytes:
            with open(path, "rb") as fp:
                return pilkit_generate(fp, processors, "JPEG")

    else:
        from bench.common import vips_encode, vips_thumbnail

        pyvips = load_pyvips()

        def generate() -> bytes:
            return vips_encode(pyvips, vips_thumbnail(pyvips, path, "fill", SIZE), "JPEG")

    from PIL import Image

    Image.init()  # every plugin imported before the baseline
    io.BytesIO(b"")
    before, hwm_before = _maxrss_kib(), _vm_hwm_kib()
    started = time.perf_counter()
    data = generate()
    elapsed = time.perf_counter() - started
    after, hwm_after = _maxrss_kib(), _vm_hwm_kib()
    with Image.open(io.BytesIO(data)) as out:
        size = out.size
    return {
        "before_kib": before,
        "after_kib": after,
        "increase_mib": (after - before) / 1024,
        "vm_hwm_increase_mib": None
        if hwm_before is None or hwm_after is None
        else (hwm_after - hwm_before) / 1024,
        "seconds": elapsed,
        "output_size": list(size),
        "output_bytes": len(data),
    }


def _vm_hwm_kib() -> int | None:
    """The peak RSS of this process's address space (``VmHWM``), a cross-check."""
    try:
        with open("/proc/self/status", encoding="ascii") as fp:
            for line in fp:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def forked_child(contender: str, path: str) -> dict[str, t.Any]:
    """Run :func:`child` in a process forked from this small one and return its report.

    ``ru_maxrss`` survives ``exec``: a process started by a big one (this suite,
    after making the 50 MP corpus) starts with the big one's peak. A process
    forked from a small process starts from that small process's RSS.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the measuring process
        os.close(read_fd)
        status = 0
        try:
            report = json.dumps(child(contender, path)).encode()
        except BaseException as exc:  # report anything, exit without cleanup
            report = json.dumps({"error": repr(exc)}).encode()
            status = 1
        with os.fdopen(write_fd, "wb") as out:
            out.write(report)
        os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as inp:
        data = inp.read()
    os.waitpid(pid, 0)
    report = json.loads(data)
    if "error" in report:
        msg = f"measuring {contender} on {path} failed: {report['error']}"
        raise RuntimeError(msg)
    return t.cast(dict[str, t.Any], report)


def measure(contender: str, path: Path) -> dict[str, t.Any]:
    """Run :func:`child` in a fresh subprocess and return its report."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.memory", "--child", contender, str(path)],
        cwd=REPO_ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        msg = f"memory child {contender} {path.name} failed:\n{done.stderr[-3000:]}"
        raise RuntimeError(msg)
    return t.cast(dict[str, t.Any], json.loads(done.stdout.strip().splitlines()[-1]))


def parse_args(argv: t.Sequence[str] | None) -> argparse.Namespace:
    """Command line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=None, help="fresh processes per cell (3)")
    parser.add_argument("--quick", action="store_true", help="1 process per cell")
    parser.add_argument("--no-vips", action="store_true", help="leave pyvips out")
    parser.add_argument("--child", nargs=2, metavar=("CONTENDER", "PATH"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: t.Sequence[str] | None = None) -> dict[str, t.Any] | None:
    """Run the benchmark; print the table; write ``bench/results/memory.json``."""
    args = parse_args(argv)
    if args.child:
        print(json.dumps(forked_child(*args.child)))
        return None
    repeat = args.repeat or (1 if args.quick else 3)
    contenders = [OURS, PILKIT]
    if not args.no_vips and load_pyvips() is not None:
        contenders.append(VIPS)
    log("memory: preparing the 50 MP sources")
    files = corpus(MEMORY_CORPUS)
    busy = check_idle("memory")
    results: dict[str, dict[str, t.Any]] = {}
    rows = []
    for source, path in files.items():
        results[source] = {}
        for contender in contenders:
            log(f"memory: {source}: {contender} ({repeat} fresh processes)")
            reports = [measure(contender, path) for _ in range(repeat)]
            increases = [r["increase_mib"] for r in reports]
            results[source][contender] = {
                "median_increase_mib": statistics.median(increases),
                "max_increase_mib": max(increases),
                "median_seconds": statistics.median(r["seconds"] for r in reports),
                "baseline_mib": statistics.median(r["before_kib"] for r in reports) / 1024,
                "reports": reports,
            }
        for contender in contenders:
            entry = results[source][contender]
            rows.append(
                [
                    f"{source} ({path.stat().st_size / 1e6:.0f} MB file)",
                    contender,
                    f"{entry['median_increase_mib']:.1f}",
                    f"{entry['max_increase_mib']:.1f}",
                    f"{entry['baseline_mib']:.1f}",
                    f"{entry['median_seconds'] * 1000:.0f}",
                ]
            )
    found = [
        Target(
            "50 MP JPEG -> 300x200: peak RSS increase",
            results["jpeg_50mp"][OURS]["max_increase_mib"],
            LIMIT_MB,
            "MiB",
            False,
            f"max over {repeat} fresh processes",
        )
    ]
    print(f"\nMemory: peak RSS increase for one fill 300x200 JPEG ({repeat} fresh processes)")
    print(
        table(
            ["source", "contender", "median MiB", "max MiB", "RSS before MiB", "time ms"],
            rows,
            align="llrrrr",
        )
    )
    print("\nTargets")
    print(target_table(found))
    path = write_results(
        "memory",
        {
            "repeat": repeat,
            "cpu_busy_before": busy,
            "size": list(SIZE),
            "sources": results,
            "targets": found,
        },
    )
    print(f"\nResults: {path}")
    return {"name": "memory", "targets": found, "results": path}


if __name__ == "__main__":
    main()
