"""A small Flask app using flask_imagekit: specs registered on the extension.

``create_app()`` is an app factory; ``python -m example_app.demo`` generates a
few thumbnails from procedurally drawn photos and prints their paths and URLs.
"""

from __future__ import annotations

import typing as t

from flask import Flask

from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.processors import ResizeToFill, ResizeToFit, Thumbnail

imagekit = ImageKit()


class AvatarThumbnail(ImageSpec):
    """The seed's spec: a 100x50 JPEG crop."""

    processors = [ResizeToFill(100, 50)]
    format = "JPEG"
    options = {"quality": 60}


class Display(ImageSpec):
    """A display-size copy that keeps the aspect ratio."""

    processors = [ResizeToFit(800, 800, upscale=False)]
    format = "JPEG"
    options = {"quality": 82}


class SquareWebP(ImageSpec):
    """A square WebP thumbnail centred on the middle of the photo."""

    processors = [Thumbnail(200, 200, crop=True)]
    format = "WEBP"
    options = {"quality": 80}


SPECS: dict[str, type[ImageSpec]] = {
    "example:avatar_thumbnail": AvatarThumbnail,
    "example:display": Display,
    "example:square_webp": SquareWebP,
}


def create_app(config: dict[str, t.Any] | None = None) -> Flask:
    """Build the example app."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_prefixed_env()
    app.config.update(config or {})
    imagekit.init_app(app)
    for spec_id, spec in SPECS.items():
        imagekit.register.generator(spec_id, spec)
    return app
