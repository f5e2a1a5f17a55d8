"""Run the whole benchmark suite and summarise the issue's targets.

In order: single generation, templates, pictures, on-request serving, memory,
batch, colour management, RQ workers, hostile inputs, responsive candidates (each
also runs alone: ``python -m bench.single`` and so on). Every script writes
``bench/results/<name>.json``; this one adds ``bench/results/summary.json``.

    python -m bench [--quick] [--only single,batch] [--wait-idle 300] [--strict]

``--quick``: fewest runs, 21 batch sources (about 3 minutes, once the corpus is
made). The default run takes about 10 minutes on a 2-core machine, plus about
3 minutes the first time to make the corpus under ``bench/.corpus/``.
``--strict`` exits with status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import sys
import time
import typing as t
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import (  # noqa: E402
    batch,
    hostile,
    icc,
    memory,
    onrequest,
    pictures,
    responsive,
    rq_jobs,
    single,
    templates,
)
from bench.common import Target, log, target_table, wait_for_idle, write_results  # noqa: E402

SCRIPTS: dict[str, t.Callable[[t.Sequence[str] | None], t.Any]] = {
    "single": single.main,
    "templates": templates.main,
    "pictures": pictures.main,
    "onrequest": onrequest.main,
    "memory": memory.main,
    "batch": batch.main,
    "icc": icc.main,
    "rq_jobs": rq_jobs.main,
    "hostile": hostile.main,
    "responsive": responsive.main,
}


def parse_args(argv: t.Sequence[str] | None) -> argparse.Namespace:
    """Command line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a quick run (about 3 minutes)")
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(SCRIPTS))
    parser.add_argument("--no-vips", action="store_true", help="leave pyvips out")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to this long for other work on the machine to stop",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    return parser.parse_args(argv)


def main(argv: t.Sequence[str] | None = None) -> None:
    """Run the selected scripts; print every target; write the summary."""
    args = parse_args(argv)
    selected = [name.strip() for name in args.only.split(",") if name.strip()] or list(SCRIPTS)
    unknown = sorted(set(selected) - set(SCRIPTS))
    if unknown:
        msg = f"unknown benchmark(s) {unknown}: choose among {', '.join(SCRIPTS)}"
        raise SystemExit(msg)
    if args.wait_idle:
        wait_for_idle(args.wait_idle)
    common_args = (["--quick"] if args.quick else []) + (["--no-vips"] if args.no_vips else [])
    found: list[Target] = []
    durations: dict[str, float] = {}
    started = time.perf_counter()
    for name in SCRIPTS:
        if name not in selected:
            continue
        script_args = list(common_args)
        if name in ("templates", "pictures") and args.no_vips:
            script_args.remove("--no-vips")
        log(f"=== {name} ===")
        begun = time.perf_counter()
        outcome = SCRIPTS[name](script_args)
        durations[name] = time.perf_counter() - begun
        found.extend(outcome["targets"])
        sys.stdout.flush()
    total = time.perf_counter() - started
    print(f"\n=== All targets ({total / 60:.1f} min) ===")
    print(target_table(found))
    path = write_results(
        "summary",
        {
            "quick": args.quick,
            "durations_s": durations,
            "targets": found,
        },
    )
    print(f"\nSummary: {path}")
    if args.strict and any(target.met is False for target in found):
        sys.exit(1)


if __name__ == "__main__":
    main()
