"""Generation jobs for workers: the payload, and running it on Celery or RQ.

A job is a JSON-safe dict, never a pickled object::

    {"generator_id": "myapp:profile:avatar_thumbnail",
     "source": {"name": "avatars/a.jpg", "path": null, "instance": null, "attname": null},
     "kwargs": {}, "name": "CACHE/images/avatars/a/<hash>.jpg",
     "force": false, "token": "<lock token>"}

The worker rebuilds the generator from its own app's registry and generates
under the lock the scheduler took. Jobs are idempotent: a duplicate or late job
for a file that exists does nothing, and a job whose source vanished ends with a
logged :class:`~flask_imagekit.exceptions.MissingSource` (no retry).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import typing as t
import uuid

from .config import current_state
from .exceptions import ImageKitError, ImproperlyConfigured, MissingSource
from .sources import SourceFile

if t.TYPE_CHECKING:
    from flask import Flask

    from .cachefiles import ImageCacheFile

__all__ = ["CELERY_TASK_NAME", "init_celery", "job_payload", "rq_generate", "run_job"]

logger = logging.getLogger(__name__)

#: The name of the Celery task workers run.
CELERY_TASK_NAME = "flask_imagekit.generate"


def _generator_id(file: ImageCacheFile) -> str:
    generator_id = getattr(file, "generator_id", None)
    if generator_id:
        return str(generator_id)
    registry = file.app_state.registry
    factory = type(file.generator)
    for candidate in registry.generator_ids():
        if registry.generator_factory(candidate) is factory:
            return candidate
    msg = (
        f"{file.generator!r} is not registered, so a worker cannot rebuild it. Register it "
        "with register.generator(id, Spec) to generate it on a worker."
    )
    raise ImproperlyConfigured(msg)


def job_payload(file: ImageCacheFile, *, force: bool = False) -> dict[str, t.Any]:
    """The JSON-safe job that generates ``file`` on a worker."""
    source = getattr(file.generator, "source", None)
    payload: dict[str, t.Any] = {
        "generator_id": _generator_id(file),
        "source": None,
        "kwargs": dict(file.generator_kwargs or {}),
        "name": file.name,
        "force": force,
        "token": uuid.uuid4().hex,
    }
    if source:
        ref = source._instance_ref
        if ref is None and source._instance is not None:
            from .sources import _instance_ref

            ref = _instance_ref(source._instance)
        payload["source"] = {
            "name": source.name,
            "path": source._path,
            "instance": _encode_ref(ref),
            "attname": source.attname,
        }
    try:
        json.dumps(payload)
    except (TypeError, ValueError) as exc:
        msg = (
            f"The generator arguments of {file!r} are not JSON-safe ({exc}); pass plain "
            "values (str, int, float, bool, lists, dicts) to generate on a worker."
        )
        raise ImproperlyConfigured(msg) from exc
    return payload


def _source_from(data: dict[str, t.Any] | None) -> SourceFile | None:
    if not data:
        return None
    source = SourceFile(data["name"], path=data.get("path"), attname=data.get("attname"))
    instance = data.get("instance")
    if instance:
        module, qualname, identity = instance
        source._instance_ref = (module, qualname, tuple(_decode_key(v) for v in identity))
    return source


_JSON_SCALARS = (str, int, float, bool, type(None))


def _encode_ref(ref: tuple[str, str, tuple[t.Any, ...]] | None) -> list[t.Any] | None:
    """A model row reference as JSON: primary keys of plain types, or UUIDs, travel.

    Other keys (dates, composite objects) do not: the job then carries no row,
    which only specs reading their row (dynamic specs) need.
    """
    if ref is None:
        return None
    identity: list[t.Any] = []
    for value in ref[2]:
        if isinstance(value, _JSON_SCALARS):
            identity.append(value)
        elif isinstance(value, uuid.UUID):
            identity.append({"uuid": str(value)})
        else:
            return None
    return [ref[0], ref[1], identity]


def _decode_key(value: t.Any) -> t.Any:
    if isinstance(value, dict) and set(value) == {"uuid"}:
        return uuid.UUID(value["uuid"])
    return value


def run_job(payload: dict[str, t.Any]) -> str:
    """Run a generation job in the current app; returns what happened.

    ``"generated"``, ``"exists"`` (nothing to do), ``"missing"`` (the source is
    gone: logged, not retried) or ``"failed"`` (a bad source or spec: logged).
    Other errors (a storage or network failure) propagate, so the queue may retry.
    """
    from .cachefiles import ImageCacheFile

    generator_id = payload["generator_id"]
    kwargs = dict(payload.get("kwargs") or {})
    source = _source_from(payload.get("source"))
    registry = current_state().registry
    file: ImageCacheFile | None = None
    try:
        if source is not None:
            kwargs["source"] = source
        generator = registry.get_generator(generator_id, **kwargs)
        file = ImageCacheFile(generator, generator_id=generator_id)
        generated = file.cachefile_backend.generate_now(
            file, force=bool(payload.get("force")), token=payload.get("token")
        )
    except MissingSource as exc:
        logger.error("flask_imagekit: job for %r skipped: %s", payload.get("name"), exc)
        _release(file, payload)
        if file is not None:
            # Page views must not enqueue it again at once.
            file.cachefile_backend.remember_missing_source(file)
        return "missing"
    except ImageKitError:
        logger.exception("flask_imagekit: job for %r failed", payload.get("name"))
        _release(file, payload)
        return "failed"
    return "generated" if generated else "exists"


def _release(file: ImageCacheFile | None, payload: dict[str, t.Any]) -> None:
    token = payload.get("token")
    if file is None or not token:
        return
    try:
        file.cachefile_backend._release(file, token)
    except ImageKitError:
        pass


# Celery ------------------------------------------------------------------------------


def init_celery(celery_app: t.Any, flask_app: Flask | None = None) -> t.Any:
    """Register the ``flask_imagekit.generate`` task on ``celery_app`` and return it.

    With Flask's Celery pattern (a ``FlaskTask`` base running in an app context)
    nothing else is needed; otherwise pass ``flask_app`` and each task runs in its
    app context.
    """

    @celery_app.task(name=CELERY_TASK_NAME, ignore_result=True)  # type: ignore[untyped-decorator]
    def generate(payload: dict[str, t.Any]) -> str:
        from flask import current_app

        if current_app:
            return run_job(payload)
        if flask_app is None:
            msg = "The flask_imagekit task needs an app context: pass flask_app to init_celery."
            raise ImproperlyConfigured(msg)
        with flask_app.app_context():
            return run_job(payload)

    return generate


# RQ ----------------------------------------------------------------------------------

_rq_app: Flask | None = None
_rq_app_lock = threading.Lock()


def _load_rq_app() -> Flask:
    global _rq_app
    with _rq_app_lock:
        if _rq_app is None:
            from flask.cli import ScriptInfo

            import_path = os.environ.get("IMAGEKIT_APP") or os.environ.get("FLASK_APP")
            if not import_path:
                msg = (
                    "RQ workers load the Flask app from FLASK_APP (or IMAGEKIT_APP): run "
                    "`FLASK_APP=yourapp rq worker ...`."
                )
                raise ImproperlyConfigured(msg)
            _rq_app = ScriptInfo(app_import_path=import_path).load_app()
        return _rq_app


def rq_generate(payload: dict[str, t.Any]) -> str:
    """The RQ job function: run ``payload`` in the app named by ``FLASK_APP``."""
    from flask import current_app

    if current_app:
        return run_job(payload)
    with _load_rq_app().app_context():
        return run_job(payload)
