"""Generation jobs on workers: run a signed payload, on Celery or RQ.

Payloads are built and checked in :mod:`flask_imagekit.payloads`. A worker
refuses, with :class:`~flask_imagekit.exceptions.JobRefused`, a payload whose
signature does not verify or whose fields are not what a scheduler sends (an
unknown field, a generator id or model its app does not register, a name
outside the storage). Otherwise it rebuilds the generator from its own app's
registry and generates under the lock the scheduler took. Jobs are idempotent: a
duplicate or late job for a file that exists does nothing. A failed job, whatever
the error, is logged and recorded: the scheduler's lock is released and page
views do not schedule the file again at once.
"""

from __future__ import annotations

import logging
import os
import threading
import typing as t

from flask import current_app
from flask.cli import ScriptInfo

from .cachefiles import ImageCacheFile
from .cachefiles.backends import AsyncBackend, CachedFileBackend
from .exceptions import (
    GenerationError,
    ImageKitError,
    ImproperlyConfigured,
    JobRefused,
    MissingSource,
)
from .globals import current_state
from .payloads import (
    CELERY_TASK_NAME,
    Job,
    canonical_json,
    job_lock,
    job_payload,
    job_signer,
    parse_job,
)

if t.TYPE_CHECKING:
    from flask import Flask

__all__ = [
    "CELERY_TASK_NAME",
    "init_celery",
    "job_payload",
    "preload_app",
    "rq_generate",
    "run_job",
]

logger = logging.getLogger(__name__)


def run_job(payload: dict[str, t.Any]) -> str:
    """Run a generation job in the current app; returns what happened.

    ``"generated"``, ``"exists"`` (nothing to do), ``"missing"`` (the source is
    gone) or ``"failed"`` (any error of the generation, a bad source or spec,
    a storage failure or an exhausted memory alike). Missing and failed jobs are
    logged and recorded: the scheduler's lock is released and page views do not
    schedule the file again at once; they are not retried.

    Raises :class:`~flask_imagekit.exceptions.JobRefused` (logged) for a payload
    whose signature does not verify or whose fields are not what a scheduler
    sends, so the queue lists it with its failed jobs. The lock of a refused job
    is released only if its signature verified.
    """
    fields = _verified(payload)
    try:
        job = parse_job(fields)
    except (TypeError, ValueError) as exc:
        msg = (
            f"Refused the job for {fields.get('name')!r}: {exc}. Its signature is this "
            "app's, so the scheduler runs other code or settings than this worker: deploy "
            "the same version, with the same registered generators and models, to both."
        )
        logger.error("flask_imagekit: %s", msg)
        refused = JobRefused(msg)
        lock = job_lock(fields)
        if lock is not None:
            _record_failure(None, *lock, refused)
        raise refused from None
    return _run(job)


def _verified(payload: t.Any) -> dict[str, t.Any]:
    """The fields of ``payload`` once its signature verifies; refuses it otherwise."""
    signer = job_signer(current_app)
    if not isinstance(payload, dict):
        reason = "it is not a job (a dict of fields and their signature)"
    elif not isinstance(payload.get("signature"), str):
        reason = "it carries no signature"
    else:
        fields = {key: value for key, value in payload.items() if key != "signature"}
        try:
            canonical = canonical_json(fields)
        except (TypeError, ValueError, RecursionError):
            reason = "its fields are not plain JSON, so its signature cannot verify"
        else:
            if signer.verify_signature(canonical, payload["signature"]):
                return fields
            reason = "its signature does not verify"
    shown = repr(payload)
    if len(shown) > 300:
        shown = f"{shown[:300]}..."
    msg = (
        f"Refused a job payload: {reason}. Workers run only jobs signed with the app's "
        "SECRET_KEY: give the web app and its workers the same SECRET_KEY, and let no one "
        "else write to the queue."
    )
    logger.error("flask_imagekit: %s Payload: %s", msg, shown)
    raise JobRefused(msg)


def _run(job: Job) -> str:
    file: ImageCacheFile | None = None
    try:
        file = job.cachefile(current_state())
        generated = file.cachefile_backend.generate_now(file, force=job.force, token=job.token)
    except MissingSource as exc:
        logger.error("flask_imagekit: job for %r skipped: %s", job.name, exc)
        _record_failure(_generator_of(file), job.name, job.token, exc)
        return "missing"
    except Exception as exc:
        # Anything, MemoryError included: the worker lives on, the lock does not.
        logger.exception("flask_imagekit: job for %r failed", job.name)
        error = exc
        if not isinstance(exc, ImageKitError):
            msg = f"Generating {job.name!r} on a worker failed: {type(exc).__name__}: {exc}"
            error = GenerationError(msg)
        _record_failure(_generator_of(file), job.name, job.token, error)
        return "failed"
    if file.name != job.name:
        logger.warning(
            "flask_imagekit: the job for %r generated %r: the scheduler and this worker "
            "name files differently; deploy the same code and settings to both.",
            job.name,
            file.name,
        )
        _release(file.generator, job.name, job.token)
    return "generated" if generated else "exists"


def _generator_of(file: ImageCacheFile | None) -> t.Any:
    return file.generator if file is not None else None


def _record_failure(generator: t.Any, name: str, token: str, error: BaseException) -> None:
    """Record the failure of the job the scheduler locked as ``name`` with ``token``."""
    file = ImageCacheFile(generator, name=name)
    try:
        backend = file.cachefile_backend
        if isinstance(backend, AsyncBackend):
            backend.job_failed(file, token, error)
        elif isinstance(backend, CachedFileBackend):
            backend.release(file, token)
    except Exception:
        logger.exception("flask_imagekit: could not record the failed job for %r", name)


def _release(generator: t.Any, name: str, token: str) -> None:
    file = ImageCacheFile(generator, name=name)
    try:
        backend = file.cachefile_backend
        if isinstance(backend, CachedFileBackend):
            backend.release(file, token)
    except Exception:
        logger.exception("flask_imagekit: could not release the lock of %r", name)


# Celery ------------------------------------------------------------------------------


def init_celery(celery_app: t.Any, flask_app: Flask | None = None) -> t.Any:
    """Register the ``flask_imagekit.generate`` task on ``celery_app`` and return it.

    With Flask's Celery pattern (a ``FlaskTask`` base running in an app context)
    nothing else is needed; otherwise pass ``flask_app`` and each task runs in its
    app context. Jobs are signed with the app's ``SECRET_KEY``: an app without
    one is refused here (given as ``flask_app``) or at its first job. A refused
    job fails the task (it is not retried).
    """
    if flask_app is not None:
        job_signer(flask_app)

    @celery_app.task(name=CELERY_TASK_NAME, ignore_result=True)  # type: ignore[untyped-decorator]
    def generate(payload: dict[str, t.Any]) -> str:
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
            import_path = os.environ.get("IMAGEKIT_APP") or os.environ.get("FLASK_APP")
            if not import_path:
                msg = (
                    "RQ workers load the Flask app from FLASK_APP (or IMAGEKIT_APP): run "
                    "`FLASK_APP=yourapp rq worker ...`."
                )
                raise ImproperlyConfigured(msg)
            app = ScriptInfo(app_import_path=import_path).load_app()
            job_signer(app)  # a worker that cannot verify jobs runs none
            _rq_app = app
        return _rq_app


_fork_hook_installed = False


def preload_app() -> Flask:
    """Load the app of an RQ worker now, before it forks work horses.

    Each work horse then drops the database connections it inherited, so no
    connection is ever used by two processes.
    """
    global _fork_hook_installed
    app = _load_rq_app()
    with _rq_app_lock:
        if not _fork_hook_installed and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_drop_inherited_connections)
            _fork_hook_installed = True
    return app


def _drop_inherited_connections() -> None:
    app = _rq_app
    db = app.extensions.get("sqlalchemy") if app is not None else None
    if app is None or db is None:
        return
    with app.app_context():
        for engine in db.engines.values():
            # close=False: the parent's connections stay open, for the parent.
            engine.dispose(close=False)


def rq_generate(payload: dict[str, t.Any]) -> str:
    """The RQ job function: run ``payload`` in the app named by ``FLASK_APP``.

    A refused job raises :class:`~flask_imagekit.exceptions.JobRefused`, so RQ
    keeps it in the queue's failed job registry (it is not retried).
    """
    if current_app:
        return run_job(payload)
    with _load_rq_app().app_context():
        return run_job(payload)
