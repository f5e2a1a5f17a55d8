"""``flask_imagekit.state``: one app's runtime state, and the one way to a cache file."""

from __future__ import annotations

import pickle
from pathlib import Path

from flask import Flask

from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.cachefiles.backends import RQ, Simple
from flask_imagekit.globals import current_state
from flask_imagekit.processors import ResizeToFill


class Thumb(ImageSpec):
    processors = [ResizeToFill(20, 10)]  # noqa: RUF012
    format = "JPEG"


class RQThumb(Thumb):
    cachefile_backend = "flask_imagekit.cachefiles.backends.RQ"


class SimpleClassThumb(Thumb):
    cachefile_backend = Simple


def make_app(tmp_path: Path, name: str) -> Flask:
    app = Flask(name, instance_path=str(tmp_path / name))
    app.config.update(TESTING=True, SECRET_KEY="s", IMAGEKIT_MEDIA_ROOT=str(tmp_path / name))
    imagekit = ImageKit(app)
    imagekit.register.generator("state:thumb", Thumb)
    imagekit.register.generator("state:rq", RQThumb)
    imagekit.register.generator("state:simple", SimpleClassThumb)
    return app


def test_cachefile_builds_the_registered_generator_for_this_app(tmp_path: Path) -> None:
    app = make_app(tmp_path, "one")
    with app.app_context():
        state = current_state()
        file = state.cachefile("state:thumb", source="a.jpg", html_attrs={"alt": "A"})
        assert isinstance(file.generator, Thumb)
        assert file.generator.source is not None
        assert file.generator.source.name == "a.jpg"
        assert file.generator_id == "state:thumb"
        assert file.html_attrs == {"alt": "A"}
        assert file.app_state is state
        # The spec reads its settings from the state it was built for.
        assert file.generator.app_state is state


def test_a_spec_backend_named_by_path_or_class_is_one_instance_per_app(tmp_path: Path) -> None:
    first, second = make_app(tmp_path, "first"), make_app(tmp_path, "second")
    backends = {}
    for app in (first, second):
        with app.app_context():
            state = current_state()
            rq = {state.cachefile("state:rq", source=f"{n}.jpg").cachefile_backend for n in "ab"}
            simple = {
                state.cachefile("state:simple", source=f"{n}.jpg").cachefile_backend for n in "ab"
            }
            assert len(rq) == 1
            assert len(simple) == 1
            backends[app.name] = (rq.pop(), simple.pop())
            assert isinstance(backends[app.name][0], RQ)
            assert isinstance(backends[app.name][1], Simple)
    # Each app keeps its own: a backend holds that app's connections.
    assert backends["first"][0] is not backends["second"][0]
    assert backends["first"][1] is not backends["second"][1]


def test_a_pickled_spec_leaves_its_app_state_behind(tmp_path: Path) -> None:
    app = make_app(tmp_path, "pickled")
    with app.app_context():
        file = current_state().cachefile("state:thumb", source="a.jpg")
        clone = pickle.loads(pickle.dumps(file))
        assert clone.generator.app_state is None
        assert clone.name == file.name
