"""Benchmark 6 - RQ workers: jobs per second with the app loaded once or per job.

Enqueues N thumbnail jobs (small stored JPEGs, so the job's own work is small and
the worker's overhead shows) and drains them with ``rq worker --burst`` using, in
turn, RQ's own forking ``Worker`` (each work horse builds the Flask app again),
``flask_imagekit.rqworker.Worker`` (the app built once, before forking) and
``flask_imagekit.rqworker.SimpleWorker`` (no fork). The workers alternate over
several rounds; medians of jobs per second are printed, with their ratios to
RQ's own worker. Needs the Redis server on 127.0.0.1:6379 (database 14 is used
and flushed).

    python -m bench.rq_jobs [--jobs 40] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import typing as t
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO_ROOT, Target, log, table, target_table, write_results  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/14"
QUEUE = "imagekit-bench"
WORKERS = {
    "rq.Worker (app per job)": None,
    "rqworker.Worker (app once)": "flask_imagekit.rqworker.Worker",
    "rqworker.SimpleWorker": "flask_imagekit.rqworker.SimpleWorker",
}
#: The forking worker that loads the app once must be at least this much faster.
MIN_SPEEDUP = 3.0

APP_SOURCE = textwrap.dedent(
    """
    import os

    from flask import Flask

    from flask_imagekit import ImageKit, ImageSpec
    from flask_imagekit.cachefiles.backends import RQ
    from flask_imagekit.processors import ResizeToFill


    class Thumb(ImageSpec):
        processors = [ResizeToFill(40, 30)]
        format = "JPEG"


    def create_app():
        redis_url = os.environ["BENCH_REDIS"]
        app = Flask("rqbench")
        app.config.update(
            SECRET_KEY="bench",
            IMAGEKIT_MEDIA_ROOT=os.environ["BENCH_MEDIA"],
            IMAGEKIT_CACHE_BACKEND={"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": redis_url},
            IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=RQ(redis_url=redis_url, queue_name=QUEUE),
        )
        ImageKit(app).register.generator("bench:thumb", Thumb)
        return app
    """
).replace("QUEUE", repr(QUEUE))


def parse_args(argv: t.Sequence[str] | None) -> argparse.Namespace:
    """Command line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=40, help="jobs per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per worker")
    parser.add_argument("--quick", action="store_true", help="20 jobs, 2 rounds")
    parser.add_argument("--no-vips", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _flush(redis: t.Any) -> None:
    redis.flushdb()


def _enqueue(app: t.Any, count: int, round_index: int) -> None:
    from flask_imagekit.cachefiles import LazyGeneratedImageFile

    with app.app_context():
        for index in range(count):
            file = LazyGeneratedImageFile("bench:thumb", source=f"src/{round_index}-{index}.jpg")
            assert file.cachefile_backend.enqueue(file)


def _drain(env: dict[str, str], worker_class: str | None) -> float:
    extra = ["--worker-class", worker_class] if worker_class else []
    command = [
        str(Path(sys.executable).parent / "rq"),
        "worker",
        "--burst",
        "--quiet",
        "--url",
        env["BENCH_REDIS"],
        "--serializer",
        "json",
        *extra,
        QUEUE,
    ]
    started = time.perf_counter()
    subprocess.run(command, env=env, cwd=env["BENCH_DIR"], check=True, capture_output=True)
    return time.perf_counter() - started


def main(argv: t.Sequence[str] | None = None) -> dict[str, t.Any]:
    """Run the benchmark; print the table; write ``bench/results/rq_jobs.json``."""
    args = parse_args(argv)
    jobs, rounds = (20, 2) if args.quick else (args.jobs, args.rounds)
    import redis
    from PIL import Image

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        log("rq_jobs: Redis is not running on 127.0.0.1:6379; skipped")
        return {"targets": []}
    with tempfile.TemporaryDirectory() as workdir:
        media = Path(workdir) / "media"
        (media / "src").mkdir(parents=True)
        for round_index in range(rounds * len(WORKERS)):
            for index in range(jobs):
                Image.new("RGB", (320, 240), (index * 5 % 255, 90, 160)).save(
                    media / "src" / f"{round_index}-{index}.jpg", quality=85
                )
        (Path(workdir) / "rqbenchapp.py").write_text(APP_SOURCE)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
        env.update(
            BENCH_MEDIA=str(media),
            BENCH_REDIS=REDIS_URL,
            BENCH_DIR=workdir,
            FLASK_APP="rqbenchapp:create_app",
            PYTHONPATH=os.pathsep.join([workdir, str(REPO_ROOT)]),
        )
        sys.path.insert(0, workdir)
        os.environ["BENCH_MEDIA"], os.environ["BENCH_REDIS"] = str(media), REDIS_URL
        import rqbenchapp  # type: ignore[import-not-found]

        app = rqbenchapp.create_app()
        rates: dict[str, list[float]] = {name: [] for name in WORKERS}
        round_index = 0
        _flush(client)
        for _ in range(rounds):
            for name, worker_class in WORKERS.items():
                _enqueue(app, jobs, round_index)
                round_index += 1
                rates[name].append(jobs / _drain(env, worker_class))
        _flush(client)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    base = medians["rq.Worker (app per job)"]
    rows = [
        [
            name,
            f"{medians[name]:.1f}",
            f"{1000 / medians[name]:.1f} ms",
            f"{medians[name] / base:.1f}x",
        ]
        for name in WORKERS
    ]
    print(f"\nRQ workers, {jobs} thumbnail jobs per round, {rounds} rounds (medians):")
    print(table(["worker", "jobs/s", "per job", "vs rq.Worker"], rows, align="lrrr"))
    targets = [
        Target(
            "rqworker.Worker jobs/s over rq.Worker",
            medians["rqworker.Worker (app once)"] / base,
            MIN_SPEEDUP,
            "x",
            higher_is_better=True,
            note="the forking worker that loads the app once",
        )
    ]
    print(target_table(targets))
    write_results("rq_jobs", {"jobs": jobs, "rounds": rounds, "rates": rates, "targets": targets})
    return {"targets": targets}


if __name__ == "__main__":
    main()
