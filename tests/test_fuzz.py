"""The fuzz harness (``fuzz/fuzz_pipeline.py``): regression inputs and a short fuzz run.

* Every input kept in ``tests/corpus/`` is replayed in a fresh process through the
  route the fuzzer found it on and through both specs; those listed in
  ``tests/corpus/known_escapes.json`` are library bugs not fixed yet (strict xfail:
  the test fails as soon as the bug is fixed, so the entry gets removed).
* A short fuzz run (``@pytest.mark.fuzz``): 5 s by default, 60 s under ``CI=true``,
  or ``IMAGEKIT_FUZZ_SECONDS``. It fails on any new escape; escapes of the known
  bug classes (``fuzz.pipeline.KNOWN_BUGS``) are reported, not failed on.
* The mutators and the triage are tested too.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

from fuzz import fuzz_pipeline, hostile, mutate, pipeline

from .conftest import IN_CI

ROOT = Path(__file__).resolve().parents[1]
CORPUS_DIR = ROOT / "tests" / "corpus"
HARNESS = ROOT / "fuzz" / "fuzz_pipeline.py"
KNOWN = fuzz_pipeline.known_escapes()
KEPT = sorted(
    p.name
    for p in CORPUS_DIR.iterdir()
    if p.is_file() and p.suffix not in (".md", ".json", ".txt")
)


def fuzz_seconds() -> float:
    value = os.environ.get("IMAGEKIT_FUZZ_SECONDS")
    if value:
        return float(value)
    return 60.0 if IN_CI else 5.0


# Kept regression inputs ----------------------------------------------------------------------


def _replay(files: list[str], spec: str) -> dict[str, list[dict[str, t.Any]]]:
    if not files:
        return {}
    cmd = [sys.executable, str(HARNESS), "--replay", *files, "--spec", spec, "--json"]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, check=False, cwd=CORPUS_DIR
    )
    results: dict[str, list[dict[str, t.Any]]] = {name: [] for name in files}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            result = json.loads(line)
            results[result["file"]].append(result)
    missing = [name for name, found in results.items() if not found]
    assert not missing, f"no result for {missing} (exit {proc.returncode}): {proc.stderr[-3000:]}"
    return results


@pytest.fixture(scope="module")
def replayed() -> dict[str, list[dict[str, t.Any]]]:
    """All kept inputs, replayed in one fresh process (known escapes through one spec)."""
    known = [name for name in KEPT if name in KNOWN]
    others = [name for name in KEPT if name not in KNOWN]
    results = {**_replay(others, "all"), **_replay(known, "jpeg")}
    if not all(r["memory_exact"] for found in results.values() for r in found):
        # No peak reset here: only the first input of a process is measured exactly.
        for name in known:
            results.update(_replay([name], "jpeg"))
    return results


def _kept_param(name: str) -> t.Any:
    if name in KNOWN:
        reason = KNOWN[name]["reason"]
        return pytest.param(name, marks=[pytest.mark.xfail(strict=True, reason=reason)])
    return name


@pytest.mark.slow
@pytest.mark.parametrize("name", [_kept_param(name) for name in KEPT])
def test_kept_regression_input(replayed: dict[str, list[dict[str, t.Any]]], name: str) -> None:
    for result in replayed[name]:
        assert result["problems"] == [], result
        assert result["seconds"] < pipeline.MAX_SECONDS
        assert result["megabytes"] is None or result["megabytes"] < pipeline.MAX_MEGABYTES


def test_known_escapes_are_kept_files_of_a_known_bug_class() -> None:
    assert set(KNOWN) <= set(KEPT)
    for entry in KNOWN.values():
        assert entry["bug"] in pipeline.KNOWN_BUGS
        assert entry["reason"].startswith("bug: ")


def test_known_escapes_are_triaged_to_their_bug() -> None:
    # Empty once every kept escape is fixed; the check stays for new ones.
    for name in sorted(KNOWN):
        data = (CORPUS_DIR / name).read_bytes()
        outcome = pipeline.Outcome(problems=["memory blow-up: peak grew by 999 MB > 256 MB"])
        assert pipeline.triage(data, outcome) == KNOWN[name]["bug"]


def test_triage_leaves_other_problems_new() -> None:
    data = (CORPUS_DIR / sorted(KNOWN)[0]).read_bytes() if KNOWN else hostile.jpeg()
    escape = pipeline.Outcome(problems=["escape: ValueError: boom at x.py:1"])
    assert pipeline.triage(data, escape) is None
    slow_small = pipeline.Outcome(problems=["too slow: 3.00 s > 2.0 s"])
    assert pipeline.triage(hostile.jpeg(), slow_small) is None


# The short fuzz run ------------------------------------------------------------------------------


@pytest.mark.fuzz
@pytest.mark.timeout(fuzz_seconds() + 240)
def test_short_fuzz_run_finds_no_new_escape(tmp_path: Path) -> None:
    seconds = fuzz_seconds()
    cmd = [sys.executable, str(HARNESS), "--seconds", str(seconds), "--engine", "mutate"]
    cmd += ["--seed", "1", "--save-dir", str(tmp_path / "escapes")]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=seconds + 200, check=False, cwd=ROOT
    )
    summary = [line for line in proc.stdout.splitlines() if line.startswith("fuzz_pipeline:")]
    assert summary, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(summary[-1])
    inputs = int(re.search(r"inputs=(\d+)", summary[-1]).group(1))  # type: ignore[union-attr]
    assert inputs > 0
    saved = sorted(p.name for p in (tmp_path / "escapes").glob("*"))
    assert proc.returncode == 0, f"new escapes, saved as {saved}:\n{proc.stdout[-5000:]}"


def test_the_worker_runs_inputs_in_process(tmp_path: Path) -> None:
    # A bounded in-process run of the built-in engine: it must try inputs and judge them.
    stats = fuzz_pipeline.mutation_worker(
        seconds=30,
        seed=3,
        save_dir=tmp_path,
        current=None,
        stats_path=None,
        max_inputs=40,
        hang_guard=False,
    )
    assert stats.inputs == 40
    assert sum(stats.kinds.values()) == 40
    assert len(stats.signatures) > 3


# Mutators and routing ---------------------------------------------------------------------------


def test_mutations_are_deterministic_and_bounded() -> None:
    seeds = [hostile.jpeg(), hostile.png(), b"GIF89a" + bytes(20)]
    first = [mutate.mutate(seeds[i % 3], random.Random(i), seeds) for i in range(200)]
    again = [mutate.mutate(seeds[i % 3], random.Random(i), seeds) for i in range(200)]
    assert first == again
    assert all(len(data) <= mutate.MAX_INPUT for data in first)
    assert len(set(first)) > 150
    assert mutate.mutate(b"", random.Random(0))


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 12])
def test_mutations_of_tiny_inputs_never_fail(size: int) -> None:
    rng = random.Random(size)
    tiny = [b"\xff\xd8\xff\xda"[:size], mutate.PNG_SIGNATURE[:size], bytes(size)]
    for i in range(3000):
        data = tiny[i % 3]
        for _ in range(3):
            data = mutate.mutate(data, rng, tiny)


def test_png_mutations_keep_valid_crcs() -> None:
    rng = random.Random(5)
    data = hostile.png()
    for _ in range(50):
        mutated = mutate.png_chunk_mutation(data, rng, [data])
        chunks = hostile.png_chunks(mutated)
        assert hostile.png_join(chunks) == mutated


def test_routes_cover_both_entry_points() -> None:
    rng = random.Random(0)
    routes = {fuzz_pipeline.route(rng.randbytes(64))[0] for _ in range(100)}
    assert routes == {"spec", "low-level"}


def test_seeds_include_both_corpora() -> None:
    labels = [label for label, _ in fuzz_pipeline.seed_inputs()]
    assert any(label.startswith("hostile:") for label in labels)
    assert any(label.startswith("pillow:") for label in labels)
    assert not any(label.split(":", 1)[1] in KNOWN for label in labels)
