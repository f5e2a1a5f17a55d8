"""The app that ``flask imagekit generate`` runs in the batch benchmark.

Three specs share one source group, a directory of JPEGs walked like the
documentation's ``JpegsInADirectory`` example, so each source is decoded once
for all three::

    BENCH_MEDIA_ROOT=/tmp/media BENCH_SOURCES_DIR=bench/.corpus/v1/batch BENCH_SOURCES=200 \\
        python -m flask --app bench.batchapp:create_app imagekit generate --force --jobs 2

``BENCH_SOURCES`` limits the number of sources (the first N by name; 0 gives a
run with no source at all, which measures the command's fixed cost).
"""

from __future__ import annotations

import glob
import os
import typing as t

from flask import Flask

from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.processors import ResizeToFill, ResizeToFit


class JpegsInADirectory:
    """Every ``*.jpg`` of a directory, in name order, yielded as open files."""

    def __init__(self, directory: str, limit: int | None = None) -> None:
        self.directory = directory
        self.limit = limit

    def paths(self) -> list[str]:
        """The source paths, in name order, at most ``limit`` of them."""
        paths = sorted(glob.glob(os.path.join(self.directory, "*.jpg")))
        return paths if self.limit is None else paths[: self.limit]

    def files(self) -> t.Iterator[t.IO[bytes]]:
        """Yield each source opened in binary mode (the command closes it)."""
        for path in self.paths():
            yield open(path, "rb")  # noqa: SIM115 - closed by `flask imagekit generate`


class Fill300(ImageSpec):
    """300x200 crop, JPEG."""

    processors = [ResizeToFill(300, 200)]
    format = "JPEG"


class Fit1024(ImageSpec):
    """At most 1024x1024, JPEG."""

    processors = [ResizeToFit(1024, 1024)]
    format = "JPEG"


class Fill150Webp(ImageSpec):
    """150x150 crop, WebP."""

    processors = [ResizeToFill(150, 150)]
    format = "WEBP"


#: Generator id -> spec: the batch's three outputs per source.
SPECS: dict[str, type[ImageSpec]] = {
    "bench:fill300": Fill300,
    "bench:fit1024": Fit1024,
    "bench:fill150webp": Fill150Webp,
}


def create_app() -> Flask:
    """The benchmark app, configured from ``BENCH_*`` environment variables."""
    media_root = os.environ["BENCH_MEDIA_ROOT"]
    sources = os.environ.get("BENCH_SOURCES", "")
    instance_path = os.path.join(os.path.dirname(os.path.abspath(media_root)), "instance")
    app = Flask(__name__, instance_path=instance_path)
    app.config.update(IMAGEKIT_MEDIA_ROOT=media_root)
    kit = ImageKit(app)
    group = JpegsInADirectory(os.environ["BENCH_SOURCES_DIR"], int(sources) if sources else None)
    for generator_id, spec in SPECS.items():
        kit.register.generator(generator_id, spec)
        kit.register.source_group(generator_id, group)
    return app
