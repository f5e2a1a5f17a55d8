"""Benchmark - on request: what the media route adds to a generation and to a plain hit.

(a) **First request.** The same cache file (a 300x200 JPEG crop of a 2 MP photo)
is made, from nothing, by:

* ``JustInTime render``: rendering ``{{ generateimage(...) }}`` in a request
  (generates the file inline, then gives the ``<img>``);
* ``OnRequest first GET``: a GET of the file's signed URL through the app (the
  token is read, the spec rebuilt, the file generated under the lock and sent);
* ``OnRequest render``: rendering the same page under OnRequest, for scale (no
  generation: the size comes from the source's header).

Before each timed run the file is deleted and every state cache emptied (not
timed). The added latency of the route is the first GET minus the render.

(b) **Plain hit.** The existing file, fetched ``--inner`` times per sample:

* ``send_from_directory``: a route of the same app doing
  ``flask.send_from_directory(media_root, path)`` (the baseline);
* ``media route``: the file's URL without its token;
* ``media route + ?ik=``: the OnRequest URL (the token is ignored for a file
  that exists).

Samples alternate between the contenders; medians are compared. All requests go
through Flask's test client (WSGI in the same process, no sockets).

    python -m bench.onrequest [--samples 15] [--inner 200] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import io
import shutil
import statistics
import sys
import tempfile
import time
import typing as t
from pathlib import Path

from flask import Flask, send_from_directory

from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.globals import current_state
from flask_imagekit.processors import ResizeToFill

if __package__ in (None, ""):  # run as a file: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    SIZE_2MP,
    alternate,
    check_idle,
    log,
    photo_like,
    summarize,
    table,
    write_results,
)

MIN_SAMPLES = 7
DEFAULT_SAMPLES = 15
DEFAULT_INNER = 200
SOURCE = "uploads/photo.jpg"
TEMPLATE = '{{ generateimage("bench:thumb", source=name) }}'
SECRET = "bench-onrequest"
ON_REQUEST = "flask_imagekit.cachefiles.strategies.OnRequest"


class Thumb(ImageSpec):
    """The spec of both apps: a 300x200 crop, JPEG."""

    processors = [ResizeToFill(300, 200)]  # noqa: RUF012
    format = "JPEG"


def make_app(work: Path, key: str, media_root: Path, **config: t.Any) -> Flask:
    """A Flask app with ImageKit on the shared media root."""
    app = Flask(f"bench-{key}", instance_path=str(work / f"instance-{key}"))
    app.config.update(SECRET_KEY=SECRET, IMAGEKIT_MEDIA_ROOT=str(media_root), **config)
    ImageKit(app).register.generator("bench:thumb", Thumb)

    @app.route("/plain/<path:filename>")
    def plain(filename: str) -> t.Any:
        return send_from_directory(media_root, filename, max_age=365 * 24 * 3600)

    return app


class FirstRequest:
    """The contenders of (a): each makes the same file from nothing."""

    def __init__(self, work: Path, media_root: Path) -> None:
        self.media_root = media_root
        self.jit = make_app(work, "jit", media_root)
        self.lazy = make_app(
            work, "onrequest", media_root, IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=ON_REQUEST
        )
        self.jit_template = self.jit.jinja_env.from_string(TEMPLATE)
        self.lazy_template = self.lazy.jinja_env.from_string(TEMPLATE)
        self.client = self.lazy.test_client()
        with self.lazy.test_request_context():
            file = current_state().cachefile("bench:thumb", source=SOURCE)
            self.name, self.url = file.name, file.url

    def reset(self) -> None:
        """Delete the file and forget every state (not timed)."""
        (self.media_root / self.name).unlink(missing_ok=True)
        for app in (self.jit, self.lazy):
            with app.app_context():
                state = current_state()
                state.state_cache.clear()
                state.file_memo.clear()

    def jit_render(self) -> None:
        with self.jit.test_request_context():
            html = self.jit_template.render(name=SOURCE)
        assert 'width="300"' in html, html

    def lazy_render(self) -> None:
        with self.lazy.test_request_context():
            html = self.lazy_template.render(name=SOURCE)
        assert "?ik=" in html, html

    def first_get(self) -> None:
        response = self.client.get(self.url)
        data = response.get_data()
        response.close()
        assert response.status_code == 200, response.status
        assert len(data) > 1000, len(data)


def time_first_requests(setup: FirstRequest, samples: int) -> dict[str, list[float]]:
    """Alternate the contenders of (a), each on a fresh start."""
    contenders = {
        "JustInTime render (generates)": setup.jit_render,
        "OnRequest first GET (generates)": setup.first_get,
        "OnRequest render (no generation)": setup.lazy_render,
    }
    for run in contenders.values():  # warm-up: imports, Jinja, Pillow plugins
        setup.reset()
        run()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for index in range(samples):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            setup.reset()
            gc.collect()
            started = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - started)
    return times


def time_hits(
    app: Flask, paths: dict[str, str], samples: int, inner: int
) -> dict[str, list[float]]:
    """Alternate ``inner`` GETs of each path (the file exists); per-request times."""
    client = app.test_client()

    def hits(path: str) -> t.Callable[[], None]:
        def run() -> None:
            for _ in range(inner):
                response = client.get(path)
                response.get_data()
                response.close()

        return run

    for path in paths.values():
        response = client.get(path)
        assert response.status_code == 200, (path, response.status)
        response.close()
    times = alternate({name: hits(path) for name, path in paths.items()}, samples)
    return {name: [value / inner for value in values] for name, values in times.items()}


def parse_args(argv: t.Sequence[str] | None) -> argparse.Namespace:
    """Command line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=None, help="samples per contender (15)")
    parser.add_argument("--inner", type=int, default=DEFAULT_INNER, help="hits per sample in (b)")
    parser.add_argument("--quick", action="store_true", help=f"{MIN_SAMPLES} samples")
    parser.add_argument("--no-vips", action="store_true", help="(ignored: no pyvips here)")
    return parser.parse_args(argv)


def main(argv: t.Sequence[str] | None = None) -> dict[str, t.Any]:
    """Run the benchmark; print the tables; write ``bench/results/onrequest.json``."""
    args = parse_args(argv)
    samples = args.samples or (MIN_SAMPLES if args.quick else DEFAULT_SAMPLES)
    work = Path(tempfile.mkdtemp(prefix="imagekit-bench-onrequest-"))
    try:
        media_root = work / "media"
        (media_root / "uploads").mkdir(parents=True)
        buffer = io.BytesIO()
        photo_like(SIZE_2MP, 5).save(buffer, "JPEG", quality=90)
        (media_root / SOURCE).write_bytes(buffer.getvalue())
        busy = check_idle("onrequest")
        setup = FirstRequest(work, media_root)
        log(f"onrequest: (a) {samples} first requests of each contender")
        first = time_first_requests(setup, samples)
        setup.first_get()  # the file exists from now on
        base = setup.url.split("?")[0]
        paths = {
            "send_from_directory": base.replace("/media/", "/plain/", 1),
            "media route": base,
            "media route + ?ik=": setup.url,
        }
        log(f"onrequest: (b) {samples} samples x {args.inner} hits of each contender")
        hits = time_hits(setup.lazy, paths, samples, args.inner)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    jit = statistics.median(first["JustInTime render (generates)"])
    get = statistics.median(first["OnRequest first GET (generates)"])
    plain = statistics.median(hits["send_from_directory"])
    rows_a = [
        [name, f"{statistics.median(v) * 1e3:.2f}", f"{statistics.median(v) / jit:.2f}x"]
        for name, v in first.items()
    ]
    rows_b = [
        [name, f"{statistics.median(v) * 1e6:.1f}", f"{statistics.median(v) / plain:.2f}x"]
        for name, v in hits.items()
    ]
    print(f"\n(a) Making a 300x200 JPEG of a 2 MP photo, median of {samples} runs")
    print(table(["contender", "ms", "vs JustInTime render"], rows_a))
    print(
        f"Added latency of the route (first GET - JustInTime render): {(get - jit) * 1e3:+.2f} ms"
        f" ({get / jit:.2f}x)"
    )
    print(f"\n(b) A hit of the existing file, median of {samples} x {args.inner} requests")
    print(table(["contender", "us/request", "vs send_from_directory"], rows_b))
    path = write_results(
        "onrequest",
        {
            "samples": samples,
            "inner": args.inner,
            "cpu_busy_before": busy,
            "first_request_s": {name: summarize(v) for name, v in first.items()},
            "added_latency_ms": (get - jit) * 1e3,
            "first_get_over_jit_render": get / jit,
            "hit_s": {name: summarize(v) for name, v in hits.items()},
            "hit_over_send_from_directory": {
                name: statistics.median(v) / plain for name, v in hits.items()
            },
            "targets": [],
        },
    )
    print(f"\nResults: {path}")
    return {"name": "onrequest", "targets": [], "results": path}


if __name__ == "__main__":
    main()
