"""Compare the template cost of this tree with an earlier revision, side by side.

The templates benchmark (``bench/templates.py``) runs alternately on a checkout of
``--base`` (a git worktree in a temporary folder) and on this working tree, in
fresh processes, ``--rounds`` times each. Per contender, each run gives its
fastest sample over the plain ``<img>`` page's fastest (the least disturbed by
other work on the machine) and its median over the plain median; the table
shows the medians of those across runs and the ratio this tree / base.

    python -m bench.versus --base HEAD [--rounds 5] [--redis]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import typing as t
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import log, table, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: t.Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD", help="git revision to compare with (HEAD)")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each tree (5)")
    parser.add_argument("--redis", action="store_true", help="include the Redis contenders")
    return parser.parse_args(argv)


def run_templates(tree: Path, redis: bool) -> dict[str, t.Any]:
    """One quick templates run with ``tree``'s package and benchmark; its JSON results."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    command = [sys.executable, "-m", "bench.templates", "--quick"]
    if not redis:
        command.append("--no-redis")
    subprocess.run(command, cwd=tree, env=env, check=True, capture_output=True)
    return t.cast(
        dict[str, t.Any],
        json.loads((tree / "bench" / "results" / "templates.json").read_text()),
    )


def overheads(result: dict[str, t.Any]) -> dict[str, tuple[str, float, float]]:
    """Per contender: label, fastest over plain's fastest, median over plain's median."""
    contenders = result["contenders"]
    plain = contenders["plain"]
    return {
        key: (
            value["label"],
            value["min_us_per_image"] - plain["min_us_per_image"],
            value["median_us_per_image"] - plain["median_us_per_image"],
        )
        for key, value in contenders.items()
        if key != "plain"
    }


def main(argv: t.Sequence[str] | None = None) -> dict[str, t.Any]:
    """Run both trees alternately; print and write the comparison."""
    args = parse_args(argv)
    base_dir = Path(tempfile.mkdtemp(prefix="imagekit-versus-"))
    base = base_dir / "tree"
    subprocess.run(
        ["git", "worktree", "add", "--detach", "--quiet", str(base), args.base],
        cwd=ROOT,
        check=True,
    )
    runs: dict[str, list[dict[str, tuple[str, float, float]]]] = {"base": [], "this": []}
    try:
        for round_number in range(args.rounds):
            log(f"versus: round {round_number + 1} of {args.rounds}")
            for name, tree in (("base", base), ("this", ROOT)):
                runs[name].append(overheads(run_templates(tree, args.redis)))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)
        shutil.rmtree(base_dir, ignore_errors=True)

    rows = []
    comparison: dict[str, dict[str, float]] = {}
    for key, (label, _, _) in runs["this"][0].items():
        if key not in runs["base"][0]:
            continue
        fastest = {name: statistics.median(run[key][1] for run in runs[name]) for name in runs}
        median = {name: statistics.median(run[key][2] for run in runs[name]) for name in runs}
        comparison[key] = {
            "base_fastest_over_plain_us": fastest["base"],
            "this_fastest_over_plain_us": fastest["this"],
            "base_median_over_plain_us": median["base"],
            "this_median_over_plain_us": median["this"],
        }
        rows.append(
            [
                label,
                f"{fastest['base']:+.2f}",
                f"{fastest['this']:+.2f}",
                f"{fastest['this'] / fastest['base']:.2f}x" if fastest["base"] > 0 else "-",
                f"{median['base']:+.2f}",
                f"{median['this']:+.2f}",
                f"{median['this'] / median['base']:.2f}x" if median["base"] > 0 else "-",
            ]
        )
    print(
        f"\nTemplates, us per image over plain <img>: {args.base} vs this tree, "
        f"medians of {args.rounds} alternating runs each"
    )
    print(
        table(
            [
                "contender",
                "base fastest",
                "this fastest",
                "ratio",
                "base median",
                "this median",
                "ratio",
            ],
            rows,
        )
    )
    outcome = {"benchmark": "versus", "base": args.base, "rounds": args.rounds}
    outcome["contenders"] = comparison
    path = write_results("versus", outcome)
    print(f"\nResults: {path}")
    return outcome


if __name__ == "__main__":
    main()
