"""An app whose cache files are generated on Celery or RQ workers, for the async tests.

Configured by environment variables so worker processes build the same app:
``IK_MEDIA`` (media root), ``IK_REDIS`` (Redis URL for state, broker and queue),
``IK_BACKEND`` (``rq`` or ``celery``), ``IK_QUEUE`` (queue name),
``IK_LOCK_TIMEOUT`` (seconds), ``IK_SLOW`` (seconds the slow spec sleeps),
``IK_LOAD_LOG`` (a file each process that builds the app writes its pid to),
``IK_SLOW_MARK`` (a file the slow spec creates when it starts sleeping).
Jobs are signed with ``SECRET_KEY``, the same in the test process and its workers.
"""

from __future__ import annotations

import os
import time
import typing as t
from pathlib import Path

from celery import Celery, Task
from flask import Flask
from PIL import Image

from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.cachefiles.backends import RQ
from flask_imagekit.cachefiles.backends import Celery as CeleryBackend
from flask_imagekit.jobs import init_celery
from flask_imagekit.processors import ResizeToFill


class Thumb(ImageSpec):
    processors = [ResizeToFill(60, 40)]
    format = "JPEG"


class Sleep:
    """A processor that takes its time, to kill a worker in the middle of a job."""

    def process(self, img: Image.Image) -> Image.Image:
        mark = os.environ.get("IK_SLOW_MARK")
        if mark:
            Path(mark).touch()
        time.sleep(float(os.environ.get("IK_SLOW", "3")))
        return img


class Slow(ImageSpec):
    processors = [Sleep(), ResizeToFill(30, 30)]
    format = "PNG"


class Pictures:
    """Every JPEG of a directory."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def files(self) -> t.Iterator[str]:
        for name in sorted(os.listdir(self.directory)):
            if name.endswith(".jpg"):
                yield f"pics/{name}"


def celery_init_app(app: Flask) -> Celery:
    """Flask's Celery pattern: tasks run in an app context."""

    class FlaskTask(Task):  # type: ignore[misc]
        def __call__(self, *args: t.Any, **kwargs: t.Any) -> t.Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(app.config["CELERY"])
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    init_celery(celery_app)
    return celery_app


def create_app() -> Flask:
    load_log = os.environ.get("IK_LOAD_LOG")
    if load_log:  # which processes built the app (one line each)
        with open(load_log, "a") as log:
            log.write(f"{os.getpid()}\n")
    redis_url = os.environ["IK_REDIS"]
    queue = os.environ.get("IK_QUEUE", "imagekit-tests")
    lock_timeout = int(os.environ.get("IK_LOCK_TIMEOUT", "60"))
    backend: t.Any
    if os.environ.get("IK_BACKEND", "rq") == "celery":
        backend = CeleryBackend(queue=queue, lock_timeout=lock_timeout)
    else:
        backend = RQ(redis_url=redis_url, queue_name=queue, lock_timeout=lock_timeout)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="imagekit-async-tests",
        IMAGEKIT_MEDIA_ROOT=os.environ["IK_MEDIA"],
        IMAGEKIT_CACHE_BACKEND={"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": redis_url},
        IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=backend,
        CELERY={
            "broker_url": redis_url,
            "task_ignore_result": True,
            "task_default_queue": queue,
            "broker_connection_retry_on_startup": True,
        },
    )
    imagekit = ImageKit(app)
    imagekit.register.generator("async:thumb", Thumb)
    imagekit.register.generator("async:slow", Slow)
    imagekit.register.source_group(
        "async:thumb", Pictures(os.path.join(os.environ["IK_MEDIA"], "pics"))
    )
    celery_init_app(app)
    return app
