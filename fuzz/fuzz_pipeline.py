#!/usr/bin/env python
"""Fuzz flask_imagekit's open -> process -> encode pipeline.

Usage::

    python fuzz/fuzz_pipeline.py --seconds 300            # fuzz for 5 minutes
    python fuzz/fuzz_pipeline.py --seconds 60 --engine mutate --seed 7
    python fuzz/fuzz_pipeline.py --replay tests/corpus/*  # re-run saved inputs
    python fuzz/fuzz_pipeline.py --corpus --spec adjust   # the hostile and Pillow corpora

Each input goes through the library's own entry points, chosen from a hash of
the input so that a saved input replays the same way: an ``ImageSpec`` of one of
the spec shapes of ``fuzz/pipeline.py`` (``ResizeToFill(100, 100)`` first,
``Adjust`` first, no processors) and one of its output formats (JPEG, PNG, WebP,
GIF, AVIF), generated with ``ImageCacheFile(...).generate()``, or ``open_image``
-> ``decode`` -> processors -> ``save_image`` with one of several processor lists
and output formats. An *escape* is an exception that is not an ``ImageKitError``,
more than 2 s or 256 MB for one input, a crash or hang of the process, an output
that is not a correct image, or a failure that leaves a file or a state behind
(see ``fuzz/pipeline.py``).

Engines: ``atheris`` (coverage-guided libFuzzer, if ``pip install atheris``
worked; Pillow's and flask_imagekit's Python code is instrumented) and
``mutate`` (built in: format-aware mutations of the seeds, guided by the
novelty of outcomes). ``auto`` picks atheris when it is installed. The seeds are
the generated hostile corpus (``fuzz/hostile.py``), Pillow's test images
(``tests/corpus/pillow``) and the regression inputs of ``tests/corpus/``.

The fuzzing runs in a worker process watched by this one: a worker that crashes
or hangs is restarted, and the input it was on is saved. Escaping inputs are
saved to ``--save-dir`` (default ``tests/corpus/``) as ``fuzz-<sha1>.<ext>``. The
exit status is 1 when an escape was found.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import typing as t
import warnings
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PILLOW_CORPUS = ROOT / "tests" / "corpus" / "pillow"
REGRESSIONS = ROOT / "tests" / "corpus"
KNOWN_ESCAPES = REGRESSIONS / "known_escapes.json"
#: A worker stuck this long on one input is killed and the input saved as a hang.
HANG_SECONDS = 20.0
#: Extra address space a worker may use; past it allocations fail with MemoryError.
ADDRESS_SPACE_HEADROOM = 4 << 30

_SIGNATURES = (
    (b"\xff\xd8", "jpg"),
    (b"\x89PNG", "png"),
    (b"GIF8", "gif"),
    (b"RIFF", "webp"),
    (b"BM", "bmp"),
    (b"II*\x00", "tif"),
    (b"MM\x00*", "tif"),
)


def extension_for(data: bytes) -> str:
    if data[4:12] in (b"ftypavif", b"ftypavis"):
        return "avif"
    return next((ext for magic, ext in _SIGNATURES if data.startswith(magic)), "bin")


def known_escapes() -> dict[str, dict[str, t.Any]]:
    """The regression inputs of tests/corpus/ that still escape (library bugs)."""
    if not KNOWN_ESCAPES.exists():
        return {}
    return t.cast(dict[str, dict[str, t.Any]], json.loads(KNOWN_ESCAPES.read_text("utf-8")))


def seed_inputs(*, include_known: bool = False) -> list[tuple[str, bytes]]:
    """Seeds: the generated hostile corpus, Pillow's test images, kept regressions."""
    from fuzz import hostile

    seeds: list[tuple[str, bytes]] = []
    for case in hostile.CASES:
        if case.heavy:
            continue
        with contextlib.suppress(Exception):
            seeds.append((f"hostile:{case.id}", case.build()))
    skip = set() if include_known else set(known_escapes())
    for directory in (PILLOW_CORPUS, REGRESSIONS):
        if directory.is_dir():
            for path in sorted(directory.iterdir()):
                if path.is_file() and path.suffix not in (".md", ".json", ".txt"):
                    if path.name not in skip and not path.name.startswith("LICENSE"):
                        seeds.append((f"{directory.name}:{path.name}", path.read_bytes()))
    return seeds


# One input -----------------------------------------------------------------------------


#: Spec shapes and output formats an input may be routed to (fixed, so that a saved
#: input replays the same way; AVIF falls back to WebP where Pillow cannot write it).
ROUTE_SHAPES = ("fill", "adjust", "plain")
ROUTE_FORMATS = ("jpeg", "png", "webp", "gif", "avif")


def route(data: bytes) -> tuple[str, str, str]:
    """How an input is run, from its CRC: (entry point, processors id, output format).

    For the spec entry point the processors id is a spec shape (``fuzz.pipeline.SHAPES``).
    """
    from fuzz import pipeline

    h = zlib.crc32(data)
    if h % 4 < 2:
        shape = ROUTE_SHAPES[(h >> 4) % len(ROUTE_SHAPES)]
        fmt = ROUTE_FORMATS[(h >> 8) % len(ROUTE_FORMATS)]
        if fmt.upper() not in pipeline.FORMATS:
            fmt = "webp"
        return ("spec", shape, fmt)
    choice = pipeline.PROCESSOR_CHOICES[(h >> 4) % len(pipeline.PROCESSOR_CHOICES)]
    return ("low-level", choice[0], pipeline.OUTPUT_FORMATS[(h >> 12) % 4])


def run_one(env: t.Any, data: bytes, how: tuple[str, str, str] | None = None) -> t.Any:
    """Run ``data`` the way :func:`route` says (or ``how``) and return the Outcome."""
    from fuzz import pipeline

    entry, processors_id, fmt = how or route(data)
    if entry == "spec":
        name = f"fuzz/{env.count}.{extension_for(data)}"
        env.count += 1
        try:
            return env.generate(data, name, f"{processors_id}-{fmt}")
        finally:
            env.reset()
    _, processors, size, bound = next(
        choice for choice in pipeline.PROCESSOR_CHOICES if choice[0] == processors_id
    )
    return pipeline.run_low_level(data, processors, fmt, size=size, max_size=bound)


def signature(outcome: t.Any) -> str:
    """What kind of outcome this was, for novelty: kind, error type, message shape."""
    if outcome.error is None:
        return str(outcome.kind)
    message = "".join("#" if ch.isdigit() else ch for ch in str(outcome.error)[:80])
    cause = outcome.error.__cause__
    return f"{outcome.kind}:{type(outcome.error).__name__}:{type(cause).__name__}:{message}"


# The worker ----------------------------------------------------------------------------------


class Stats:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.inputs = 0
        self.kinds: dict[str, int] = {}
        self.escapes: list[dict[str, t.Any]] = []
        self.signatures: set[str] = set()
        self._written = 0.0

    def record(self, outcome: t.Any, data: bytes, save_dir: Path | None) -> None:
        self.inputs += 1
        self.kinds[outcome.kind] = self.kinds.get(outcome.kind, 0) + 1
        if outcome.escaped:
            from fuzz.pipeline import triage

            known = triage(data, outcome)
            saved = save_input(data, save_dir) if save_dir and not known else None
            self.escapes.append(
                {
                    "problems": outcome.problems,
                    "saved": str(saved) if saved else None,
                    "known": known,
                }
            )
            label = f"KNOWN ({known})" if known else "NEW"
            print(f"ESCAPE {label} {outcome.describe()} -> {saved}", flush=True)
        self.write()

    def write(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.path is None or (not force and now - self._written < 1.0):
            return
        self._written = now
        payload = {
            "inputs": self.inputs,
            "kinds": self.kinds,
            "escapes": self.escapes,
            "signatures": len(self.signatures),
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload), "utf-8")
        tmp.replace(self.path)


def save_input(data: bytes, save_dir: Path) -> Path:
    save_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(data).hexdigest()[:16]
    path = save_dir / f"fuzz-{digest}.{extension_for(data)}"
    if not path.exists():
        path.write_bytes(data)
    return path


def _limit_address_space() -> None:
    with contextlib.suppress(ValueError, OSError):
        with open("/proc/self/status", encoding="ascii") as status:
            vm = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
        limit = vm * 1024 + ADDRESS_SPACE_HEADROOM
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def _prepare_worker(stderr_path: Path | None) -> None:
    warnings.simplefilter("error")  # as under pytest: Pillow's warnings become errors
    faulthandler.enable()  # a native crash prints its Python stack
    if stderr_path is not None:
        # libtiff and friends print to stderr: keep it in a file, shown if the worker dies.
        fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 2)
        os.close(fd)
    _limit_address_space()


def _why_it_died(stderr_path: Path) -> str:
    """The end of a dead worker's stderr, from its last traceback or fatal error."""
    if not stderr_path.exists():
        return ""
    lines = stderr_path.read_text("utf-8", errors="replace").splitlines()
    starts = [
        i
        for i, line in enumerate(lines)
        if line.startswith(("Traceback", "Fatal Python error", "Timeout ("))
    ]
    return "\n".join(lines[starts[-1] :] if starts else lines[-5:])


def mutation_worker(
    seconds: float,
    seed: int,
    save_dir: Path | None,
    current: Path | None,
    stats_path: Path | None,
    max_inputs: int | None = None,
    hang_guard: bool = True,
) -> Stats:
    """The built-in engine: mutate seeds, keep inputs with new outcomes as seeds.

    With ``hang_guard``, the process exits (and the supervisor saves ``current``)
    when one input takes more than :data:`HANG_SECONDS`.
    """
    from fuzz.mutate import mutate
    from fuzz.pipeline import Env

    rng = random.Random(seed)
    pool = [data for _, data in seed_inputs()]
    stats = Stats(stats_path)
    deadline = time.monotonic() + seconds
    with Env() as env:
        while time.monotonic() < deadline and (max_inputs is None or stats.inputs < max_inputs):
            data = mutate(rng.choice(pool), rng, pool)
            if current is not None:
                current.write_bytes(data)
            if hang_guard:
                faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
            try:
                outcome = run_one(env, data)
            finally:
                if hang_guard:
                    faulthandler.cancel_dump_traceback_later()
            key = signature(outcome)
            if key not in stats.signatures:
                stats.signatures.add(key)
                if not outcome.escaped and len(pool) < 5000:
                    pool.append(data)
            elif outcome.kind == "image" and rng.random() < 0.02 and len(pool) < 5000:
                pool.append(data)
            stats.record(outcome, data, save_dir)
    stats.write(force=True)
    return stats


def atheris_worker(
    seconds: float, seed: int, save_dir: Path, current: Path | None, stats_path: Path | None
) -> None:
    """The coverage-guided engine (libFuzzer via atheris). Never returns."""
    import atheris

    with atheris.instrument_imports():
        import PIL.Image

        PIL.Image.init()
        import PIL.ImageCms  # noqa: F401
        import PIL.TiffImagePlugin  # noqa: F401

        import flask_imagekit.cachefiles
        import flask_imagekit.imaging
        import flask_imagekit.processors
        import flask_imagekit.specs  # noqa: F401
    from fuzz.pipeline import Env

    work = Path(tempfile.mkdtemp(prefix="imagekit-atheris-"))
    corpus = work / "corpus"
    corpus.mkdir()
    for label, data in seed_inputs():
        name = hashlib.sha1(label.encode()).hexdigest()[:16]
        (corpus / name).write_bytes(data)
    env = Env().__enter__()
    stats = Stats(stats_path)

    def test_one_input(data: bytes) -> None:
        outcome = run_one(env, data)
        stats.record(outcome, data, None)
        if outcome.escaped and not stats.escapes[-1]["known"]:
            stats.escapes[-1]["saved"] = "libFuzzer artifact"
            stats.write(force=True)
            msg = "; ".join(outcome.problems)
            raise RuntimeError(msg)

    save_dir.mkdir(parents=True, exist_ok=True)
    args = [
        sys.argv[0],
        f"-max_total_time={max(1, int(seconds))}",
        f"-seed={seed}",
        f"-timeout={int(HANG_SECONDS)}",
        "-rss_limit_mb=4096",
        "-max_len=1048576",
        "-print_final_stats=1",
        f"-artifact_prefix={save_dir}/fuzz-",
        str(corpus),
    ]
    atheris.Setup(args, test_one_input)
    atheris.Fuzz()


# The supervisor ------------------------------------------------------------------------------


def supervise(args: argparse.Namespace) -> int:
    """Run workers until ``--seconds`` have passed; report inputs tried and escapes."""
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401
        except ImportError:
            engine = "mutate"
        else:
            engine = "atheris"
    save_dir = Path(args.save_dir).resolve()
    deadline = time.monotonic() + args.seconds
    total_inputs, escapes, restarts = 0, [], 0
    kinds: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="imagekit-fuzz-run-") as tmp:
        current, stats_path = Path(tmp) / "current", Path(tmp) / "stats.json"
        stderr_path = Path(tmp) / "stderr.log"
        while (remaining := deadline - time.monotonic()) > 0.5:
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--worker",
                "--engine",
                engine,
                "--seconds",
                f"{remaining:.1f}",
                "--seed",
                str(args.seed + restarts),
                "--save-dir",
                str(save_dir),
                "--current",
                str(current),
                "--stats",
                str(stats_path),
                "--stderr",
                str(stderr_path),
            ]
            stats_path.unlink(missing_ok=True)
            current.unlink(missing_ok=True)
            try:
                proc = subprocess.run(
                    cmd,
                    timeout=remaining + HANG_SECONDS + 30,
                    stdout=None if args.verbose else subprocess.PIPE,
                    stderr=subprocess.STDOUT if not args.verbose else None,
                    text=True,
                    check=False,
                )
                returncode, output = proc.returncode, proc.stdout or ""
            except subprocess.TimeoutExpired as exc:
                returncode = -9
                raw = exc.stdout or b""
                output = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
            stats = json.loads(stats_path.read_text("utf-8")) if stats_path.exists() else {}
            total_inputs += stats.get("inputs", 0)
            for kind, count in stats.get("kinds", {}).items():
                kinds[kind] = kinds.get(kind, 0) + count
            escapes += stats.get("escapes", [])
            for line in output.splitlines():
                if line.startswith("ESCAPE NEW") or "Done " in line or "ERROR" in line:
                    print(line, flush=True)
            if returncode != 0 and (engine == "mutate" or not stats.get("escapes")):
                # A crash, a hang or a blown limit of the whole process.
                if engine == "mutate" and current.exists():
                    saved = str(save_input(current.read_bytes(), save_dir))
                else:
                    written = [ln for ln in output.splitlines() if "Test unit written to" in ln]
                    saved = written[-1].rsplit(" ", 1)[-1] if written else "?"
                why = _why_it_died(stderr_path)
                escapes.append(
                    {
                        "problems": [f"worker died (exit status {returncode})"],
                        "saved": saved,
                        "known": None,
                    }
                )
                print(f"ESCAPE NEW worker died with status {returncode} -> {saved}", flush=True)
                if why:
                    print(why, flush=True)
            restarts += 1
            if returncode == 0:
                break
    new = [escape for escape in escapes if not escape.get("known")]
    known: dict[str, int] = {}
    for escape in escapes:
        if escape.get("known"):
            known[escape["known"]] = known.get(escape["known"], 0) + 1
    print(
        f"fuzz_pipeline: engine={engine} seconds={args.seconds} inputs={total_inputs} "
        f"outcomes={json.dumps(kinds, sort_keys=True)} new_escapes={len(new)} "
        f"known_escapes={json.dumps(known, sort_keys=True)} restarts={restarts - 1}",
        flush=True,
    )
    for escape in new:
        print(f"  NEW escape: {'; '.join(escape['problems'])} -> {escape['saved']}", flush=True)
    return 1 if new else 0


# Replay ----------------------------------------------------------------------------------------


def routes_for(spec: str, data: bytes) -> list[tuple[str, str, str]]:
    """The routes ``--spec`` names, comma-separated (see ``--help``), for ``data``."""
    from fuzz import pipeline

    routes: list[tuple[str, str, str]] = []
    for item in spec.split(","):
        if item == "all":
            routes += [route(data), ("spec", "fill", "jpeg"), ("spec", "fill", "png")]
        elif item == "route":
            routes.append(route(data))
        elif item == "shapes":
            routes += [("spec", s, f.lower()) for s in pipeline.SHAPES for f in pipeline.FORMATS]
        elif item in pipeline.SHAPES:
            routes += [("spec", item, fmt.lower()) for fmt in pipeline.FORMATS]
        elif item in pipeline.SPECS:
            shape, _, fmt = item.rpartition("-")
            routes.append(("spec", shape or "fill", fmt))
        else:
            msg = f"unknown --spec {item!r}: use all, route, shapes, a shape or one of "
            msg += ", ".join(sorted(pipeline.SPECS))
            raise SystemExit(msg)
    return list(dict.fromkeys(routes))


def corpus_inputs() -> list[tuple[str, str, t.Callable[[], bytes]]]:
    """The hostile corpus (light cases) and Pillow's test images: (label, name, build)."""
    from fuzz import hostile

    inputs = [(f"hostile:{c.id}", c.name, c.build) for c in hostile.CASES if not c.heavy]
    for path in sorted(PILLOW_CORPUS.iterdir()):
        if path.is_file() and not path.name.startswith("LICENSE"):
            inputs.append((f"pillow:{path.name}", f"uploads/{path.name}", path.read_bytes))
    return inputs


def replay(args: argparse.Namespace) -> int:
    """Run saved inputs (or the corpora) again, through the routes ``--spec`` names.

    Prints one line per run (JSON with ``--json``), then a summary line with the
    slowest run and the one whose peak memory grew most.
    """
    from fuzz.pipeline import Env

    warnings.simplefilter("error")
    failed = 0
    inputs: list[tuple[str, str | None, t.Callable[[], bytes]]] = [
        (file, args.name, Path(file).read_bytes) for file in args.replay or ()
    ]
    if args.corpus:
        inputs += corpus_inputs()
    slowest: tuple[float, str] = (0.0, "")
    largest: tuple[float, str] = (0.0, "")
    runs = 0
    with Env() as env:
        for label, name, build in inputs:
            data = build()
            for how in routes_for(args.spec, data):
                if how[0] == "spec" and name:
                    outcome = env.generate(data, name, f"{how[1]}-{how[2]}")
                    env.reset()
                else:
                    outcome = run_one(env, data, how)
                runs += 1
                failed += outcome.escaped
                where = f"{label} {'/'.join(how)}"
                slowest = max(slowest, (outcome.seconds, where))
                largest = max(largest, (outcome.megabytes or 0.0, where))
                if args.json:
                    print(
                        json.dumps({"file": label, "route": how, **outcome.to_json()}), flush=True
                    )
                else:
                    print(f"{where}: {outcome.describe()}", flush=True)
    print(
        f"replay: inputs={len(inputs)} runs={runs} escapes={failed} "
        f"slowest={slowest[0]:.3f}s ({slowest[1]}) "
        f"largest_memory={largest[0]:.1f}MB ({largest[1]})",
        flush=True,
    )
    return 1 if failed else 0


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to fuzz")
    parser.add_argument("--engine", choices=("auto", "atheris", "mutate"), default="auto")
    parser.add_argument("--seed", type=int, default=1, help="random seed (mutate engine)")
    parser.add_argument("--save-dir", default=str(REGRESSIONS), help="where escapes are saved")
    parser.add_argument("--verbose", action="store_true", help="show the workers' output")
    parser.add_argument("--replay", nargs="+", metavar="FILE", help="run saved inputs again")
    parser.add_argument(
        "--corpus",
        action="store_true",
        help="replay the generated hostile corpus and Pillow's test images",
    )
    parser.add_argument(
        "--spec",
        default="all",
        help=(
            "replay: comma-separated routes: all (the input's route and fill-jpeg, "
            "fill-png; the default), route, shapes (every shape and format), a shape "
            "(fill, adjust, plain: in every format) or a spec such as adjust-webp "
            "(jpeg and png mean fill-jpeg and fill-png)"
        ),
    )
    parser.add_argument("--name", help="replay: the source name to use with a spec")
    parser.add_argument("--json", action="store_true", help="replay: one JSON line per run")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--current", help=argparse.SUPPRESS)
    parser.add_argument("--stats", help=argparse.SUPPRESS)
    parser.add_argument("--stderr", help=argparse.SUPPRESS)
    parser.add_argument("--max-inputs", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.replay or args.corpus:
        return replay(args)
    if not args.worker:
        return supervise(args)
    current = Path(args.current) if args.current else None
    stats_path = Path(args.stats) if args.stats else None
    quiet = args.engine == "mutate" and os.environ.get("IMAGEKIT_FUZZ_QUIET_STDERR", "1") == "1"
    _prepare_worker(Path(args.stderr) if quiet and args.stderr else None)
    if args.engine == "atheris":
        atheris_worker(args.seconds, args.seed, Path(args.save_dir), current, stats_path)
        return 0
    mutation_worker(
        args.seconds, args.seed, Path(args.save_dir), current, stats_path, args.max_inputs
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
