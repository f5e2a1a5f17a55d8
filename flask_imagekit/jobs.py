"""Generation jobs for workers: the signed payload, and running it on Celery or RQ.

A job is a JSON-safe dict, never a pickled object::

    {"generator_id": "myapp:profile:avatar_thumbnail",
     "source": {"name": "avatars/a.jpg", "attname": "avatar",
                "model": {"entity": "Profile", "identity": [1]}},
     "kwargs": {}, "name": "CACHE/images/avatars/a/<hash>.jpg",
     "force": false, "token": "<lock token>",
     "signature": "<signature of the other fields>"}

``signature`` is the :class:`itsdangerous.Signer` signature (salt
``"flask_imagekit.job"``, HMAC-SHA256 key derivation and digest) of the other
fields as canonical JSON (``json.dumps(fields, sort_keys=True, separators=(",",
":"))``), made with the app's ``SECRET_KEY``; keys in ``SECRET_KEY_FALLBACKS``
still verify. The fields stay readable for queue dashboards; workers trust them
only once the signature verifies.

A payload carries no path and no module name: a source is a name in the source
storage, and the row holding it (for specs that read their row) is the name of a
class the app's Flask-SQLAlchemy models map, with its primary key. Sources that
are not stored (uploads, open files, paths) are refused when the job is sent
(:class:`~flask_imagekit.exceptions.UnstoredSource`).

A worker refuses, with :class:`~flask_imagekit.exceptions.JobRefused`, a payload
whose signature does not verify or whose fields are not what a scheduler sends
(an unknown field, a generator id or model its app does not register, a name
outside the storage). Otherwise it rebuilds the generator from its own app's
registry and generates under the lock the scheduler took. Jobs are idempotent: a
duplicate or late job for a file that exists does nothing. A failed job, whatever
the error, is logged and recorded: the scheduler's lock is released and page
views do not schedule the file again at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import threading
import typing as t
import uuid

from flask import current_app
from itsdangerous import Signer

from .cachefiles import ImageCacheFile
from .cachefiles.backends import AsyncBackend, CachedFileBackend
from .config import current_state
from .exceptions import (
    GenerationError,
    ImageKitError,
    ImproperlyConfigured,
    JobRefused,
    MissingSource,
    UnstoredSource,
)
from .sources import SourceFile, as_source
from .storage import clean_name

if t.TYPE_CHECKING:
    from flask import Flask

    from .registry import Registry

__all__ = ["CELERY_TASK_NAME", "init_celery", "job_payload", "rq_generate", "run_job"]

logger = logging.getLogger(__name__)

#: The name of the Celery task workers run.
CELERY_TASK_NAME = "flask_imagekit.generate"

_SALT = "flask_imagekit.job"
_FIELDS = frozenset({"generator_id", "source", "kwargs", "name", "force", "token"})
_SOURCE_FIELDS = frozenset({"name", "attname", "model"})
_MODEL_FIELDS = frozenset({"entity", "identity"})
# Generator arguments are plain values: a few levels of lists and dicts at most.
_MAX_DEPTH = 16
_MAX_TOKEN_LENGTH = 128
_MAX_KEY_PARTS = 16
_JSON_SCALARS = (str, int, float, bool, type(None))


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


# Signing ------------------------------------------------------------------------------


def _signer(app: Flask) -> Signer:
    """The signer of ``app``'s jobs; refuses an app without ``SECRET_KEY``."""
    secret = app.secret_key
    if not secret:
        msg = (
            "Jobs for Celery or RQ workers are signed with the app's SECRET_KEY, and this "
            "app has none. Set SECRET_KEY, to the same value in the web app and its "
            "workers (from an environment variable, for instance)."
        )
        raise ImproperlyConfigured(msg)
    # As Flask's sessions: the current key signs, the fallbacks still verify.
    keys: list[t.Any] = [*(app.config.get("SECRET_KEY_FALLBACKS") or ()), secret]
    return Signer(keys, salt=_SALT, key_derivation="hmac", digest_method=hashlib.sha256)


def _canonical(fields: t.Mapping[str, t.Any]) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), allow_nan=False)


# Scheduling ---------------------------------------------------------------------------


def job_payload(file: ImageCacheFile, *, force: bool = False) -> dict[str, t.Any]:
    """The signed, JSON-safe job that generates ``file`` on a worker.

    Raises :class:`~flask_imagekit.exceptions.UnstoredSource` for a source that
    workers cannot read by name, and
    :class:`~flask_imagekit.exceptions.ImproperlyConfigured` when the app has no
    ``SECRET_KEY`` or the generator's arguments are not plain JSON values.
    """
    signer = _signer(current_app)
    source = _stored_source(file)
    fields: dict[str, t.Any] = {
        "generator_id": _generator_id(file),
        "source": None,
        "kwargs": dict(file.generator_kwargs or {}),
        "name": file.name,
        "force": bool(force),
        "token": uuid.uuid4().hex,
    }
    if source is not None:
        fields["source"] = {
            "name": source.name,
            "attname": source.attname,
            "model": _model_reference(source),
        }
    try:
        # What the worker gets back from the queue's JSON: tuples become lists.
        fields = json.loads(_canonical(fields))
        _check_kwargs(fields["kwargs"])
    except (TypeError, ValueError, RecursionError) as exc:
        msg = (
            f"The generator arguments of {file!r} are not JSON-safe ({exc}); pass plain "
            "values (str, int, float, bool, lists, dicts with str keys) to generate on a "
            "worker."
        )
        raise ImproperlyConfigured(msg) from exc
    fields["signature"] = signer.get_signature(_canonical(fields)).decode("ascii")
    return fields


def _stored_source(file: ImageCacheFile) -> SourceFile | None:
    """The source of ``file`` if a worker can read it by name; refuses any other."""
    value = getattr(file.generator, "source", None)
    source = value if isinstance(value, SourceFile) else as_source(value)
    if not source:
        return None
    if not source.is_stored:
        msg = (
            f"{source!r} is not a stored file (it is an upload, an open file or a path), "
            f"and {file.cachefile_backend!r} generates on workers, which read sources from "
            "the source storage by name. Store it first: save the upload to the storage "
            "(or assign it to a ProcessedImageField) and pass the stored name."
        )
        raise UnstoredSource(msg)
    source_storage = file.app_state.source_storage
    if source.storage is not None and source.storage != source_storage:
        msg = (
            f"{source!r} is kept in {source.storage!r}, but workers read sources by name "
            f"from IMAGEKIT_SOURCE_STORAGE ({source_storage!r}). Store it first in that "
            "storage, or give the spec cachefile_backend=Simple() to generate it inline."
        )
        raise UnstoredSource(msg)
    clean_name(source.name or "")  # a name no storage would open fails here, not on a worker
    return source


def _model_reference(source: SourceFile) -> dict[str, t.Any] | None:
    """The row holding ``source``, as a worker finds it again: mapped class name and key.

    A row whose class the app's models do not map under a name of its own, or
    whose key is not made of plain values or UUIDs, travels without its row; only
    specs that read their row (dynamic specs) need it.
    """
    instance = source._instance
    if instance is not None:
        from sqlalchemy import inspect
        from sqlalchemy.exc import NoInspectionAvailable

        try:
            state = inspect(instance)
        except NoInspectionAvailable:
            return None
        cls: type = state.class_
        identity = state.identity
    elif source._instance_ref is not None:
        # Unpickled in this process (generate --jobs): compare with what the app maps.
        module, qualname, identity = source._instance_ref
        mapped = _mapped_class(qualname.rsplit(".", 1)[-1])
        if mapped is None or (mapped.__module__, mapped.__qualname__) != (module, qualname):
            return None
        cls = mapped
    else:
        return None
    if identity is None or _mapped_class(cls.__name__) is not cls:
        return None
    encoded = _encode_identity(identity)
    if encoded is None:
        return None
    return {"entity": cls.__name__, "identity": encoded}


def _mapped_classes() -> list[type]:
    """The classes the current app's Flask-SQLAlchemy models map."""
    db = current_state().db or current_app.extensions.get("sqlalchemy")
    registry = getattr(getattr(db, "Model", None), "registry", None)
    if registry is None:
        return []
    return [mapper.class_ for mapper in registry.mappers]


def _mapped_class(entity: str) -> type | None:
    """The mapped class named ``entity``, if exactly one has that name."""
    found = [cls for cls in _mapped_classes() if cls.__name__ == entity]
    return found[0] if len(found) == 1 else None


def _encode_identity(identity: t.Iterable[t.Any]) -> list[t.Any] | None:
    encoded: list[t.Any] = []
    for value in identity:
        if isinstance(value, _JSON_SCALARS) and value is not None:
            encoded.append(value)
        elif isinstance(value, uuid.UUID):
            encoded.append({"uuid": str(value)})
        else:
            return None
    return encoded


def _decode_identity(value: t.Any) -> tuple[t.Any, ...]:
    if not isinstance(value, list) or not 0 < len(value) <= _MAX_KEY_PARTS:
        msg = "the row's primary key is not a list of values"
        raise ValueError(msg)
    decoded: list[t.Any] = []
    for part in value:
        if isinstance(part, dict) and set(part) == {"uuid"} and isinstance(part["uuid"], str):
            decoded.append(uuid.UUID(part["uuid"]))
        elif isinstance(part, _JSON_SCALARS) and part is not None:
            decoded.append(part)
        else:
            msg = f"the row's primary key holds {part!r}"
            raise ValueError(msg)
    return tuple(decoded)


def _check_kwargs(kwargs: t.Any) -> None:
    if not isinstance(kwargs, dict):
        msg = "the generator arguments are not an object"
        raise ValueError(msg)
    for key in kwargs:
        if not isinstance(key, str) or not key.isidentifier() or key == "source":
            msg = f"{key!r} is not a generator argument a scheduler sends"
            raise ValueError(msg)
    _check_json(kwargs, 0)


def _check_json(value: t.Any, depth: int) -> None:
    if depth > _MAX_DEPTH:
        msg = f"the generator arguments nest more than {_MAX_DEPTH} levels deep"
        raise ValueError(msg)
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                msg = f"the generator arguments hold the key {key!r}"
                raise ValueError(msg)
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)
    elif not isinstance(value, _JSON_SCALARS):
        msg = f"the generator arguments hold {type(value).__name__} values"
        raise ValueError(msg)


# Running --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Job:
    """A verified, checked payload."""

    generator_id: str
    source: SourceFile | None
    row: tuple[type, tuple[t.Any, ...]] | None
    kwargs: dict[str, t.Any]
    name: str
    force: bool
    token: str


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
        job = _parse(fields, current_state().registry)
    except (TypeError, ValueError) as exc:
        msg = (
            f"Refused the job for {fields.get('name')!r}: {exc}. Its signature is this "
            "app's, so the scheduler runs other code or settings than this worker: deploy "
            "the same version, with the same registered generators and models, to both."
        )
        logger.error("flask_imagekit: %s", msg)
        refused = JobRefused(msg)
        lock = _lock_of(fields)
        if lock is not None:
            _record_failure(None, *lock, refused)
        raise refused from None
    return _run(job)


def _lock_of(fields: dict[str, t.Any]) -> tuple[str, str] | None:
    """The cache file name and lock token of verified ``fields``, if they are usable."""
    token = fields.get("token")
    if not isinstance(token, str) or not 0 < len(token) <= _MAX_TOKEN_LENGTH:
        return None
    try:
        return _stored_name(fields.get("name"), "the cache file name"), token
    except ValueError:
        return None


def _verified(payload: t.Any) -> dict[str, t.Any]:
    """The fields of ``payload`` once its signature verifies; refuses it otherwise."""
    signer = _signer(current_app)
    if not isinstance(payload, dict):
        reason = "it is not a job (a dict of fields and their signature)"
    elif not isinstance(payload.get("signature"), str):
        reason = "it carries no signature"
    else:
        fields = {key: value for key, value in payload.items() if key != "signature"}
        try:
            canonical = _canonical(fields)
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


def _parse(fields: dict[str, t.Any], registry: Registry) -> _Job:
    """Check that ``fields`` are what a scheduler sends; raises ValueError otherwise."""
    if set(fields) != _FIELDS:
        unknown, missing = sorted(set(fields) - _FIELDS), sorted(_FIELDS - set(fields))
        msg = f"its fields are not a job's (unknown: {unknown}, missing: {missing})"
        raise ValueError(msg)
    generator_id = fields["generator_id"]
    if not isinstance(generator_id, str) or not registry.has_generator(generator_id):
        msg = f"no generator is registered with id {generator_id!r} in this app"
        raise ValueError(msg)
    lock = _lock_of(fields)
    if lock is None:
        msg = "its cache file name or lock token is not one a scheduler sends"
        raise ValueError(msg)
    if not isinstance(fields["force"], bool):
        msg = "its force flag is not true or false"
        raise ValueError(msg)
    _check_kwargs(fields["kwargs"])
    source, row = _parse_source(fields["source"])
    return _Job(
        generator_id=generator_id,
        source=source,
        row=row,
        kwargs=fields["kwargs"],
        name=lock[0],
        force=fields["force"],
        token=lock[1],
    )


def _stored_name(value: t.Any, what: str) -> str:
    if not isinstance(value, str):
        msg = f"{what} is not a string"
        raise ValueError(msg)
    clean_name(value)  # SuspiciousName is a ValueError
    # Kept as sent: the worker must derive the same cache file name as the scheduler.
    return value


def _parse_source(
    data: t.Any,
) -> tuple[SourceFile | None, tuple[type, tuple[t.Any, ...]] | None]:
    if data is None:
        return None, None
    if not isinstance(data, dict):
        msg = "its source is not an object with a name"
        raise ValueError(msg)
    unknown = sorted(set(data) - _SOURCE_FIELDS)
    if unknown:
        msg = f"its source has fields a scheduler never sends: {unknown}"
        raise ValueError(msg)
    name = _stored_name(data.get("name"), "the source name")
    attname = data.get("attname")
    if attname is not None and not (isinstance(attname, str) and attname.isidentifier()):
        msg = f"the source's attribute name {attname!r} is not an identifier"
        raise ValueError(msg)
    return SourceFile(name, attname=attname), _parse_row(data.get("model"))


def _parse_row(data: t.Any) -> tuple[type, tuple[t.Any, ...]] | None:
    if data is None:
        return None
    if not isinstance(data, dict) or set(data) != _MODEL_FIELDS:
        msg = "its row reference is not an object of an entity and an identity"
        raise ValueError(msg)
    entity = data["entity"]
    cls = _mapped_class(entity) if isinstance(entity, str) else None
    if cls is None:
        msg = f"the models of this app map no class named {entity!r} (or several)"
        raise ValueError(msg)
    return cls, _decode_identity(data["identity"])


def _run(job: _Job) -> str:
    registry = current_state().registry
    kwargs: dict[str, t.Any] = dict(job.kwargs)
    generator: t.Any = None
    try:
        if job.source is not None:
            if job.row is not None:
                job.source._instance = _load_row(*job.row)
            kwargs["source"] = job.source
        generator = registry.get_generator(job.generator_id, **kwargs)
        file = ImageCacheFile(generator, generator_id=job.generator_id)
        generated = file.cachefile_backend.generate_now(file, force=job.force, token=job.token)
    except MissingSource as exc:
        logger.error("flask_imagekit: job for %r skipped: %s", job.name, exc)
        _record_failure(generator, job.name, job.token, exc)
        return "missing"
    except Exception as exc:
        # Anything, MemoryError included: the worker lives on, the lock does not.
        logger.exception("flask_imagekit: job for %r failed", job.name)
        error = exc
        if not isinstance(exc, ImageKitError):
            msg = f"Generating {job.name!r} on a worker failed: {type(exc).__name__}: {exc}"
            error = GenerationError(msg)
        _record_failure(generator, job.name, job.token, error)
        return "failed"
    if file.name != job.name:
        logger.warning(
            "flask_imagekit: the job for %r generated %r: the scheduler and this worker "
            "name files differently; deploy the same code and settings to both.",
            job.name,
            file.name,
        )
        _release(generator, job.name, job.token)
    return "generated" if generated else "exists"


def _load_row(cls: type, identity: tuple[t.Any, ...]) -> t.Any:
    db = current_state().db or current_app.extensions["sqlalchemy"]
    return db.session.get(cls, identity)


def _record_failure(generator: t.Any, name: str, token: str, error: BaseException) -> None:
    """Record the failure of the job the scheduler locked as ``name`` with ``token``."""
    file = ImageCacheFile(generator, name=name)
    try:
        backend = file.cachefile_backend
        if isinstance(backend, AsyncBackend):
            backend.job_failed(file, token, error)
        elif isinstance(backend, CachedFileBackend):
            backend._release(file, token)
    except Exception:
        logger.exception("flask_imagekit: could not record the failed job for %r", name)


def _release(generator: t.Any, name: str, token: str) -> None:
    file = ImageCacheFile(generator, name=name)
    try:
        backend = file.cachefile_backend
        if isinstance(backend, CachedFileBackend):
            backend._release(file, token)
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
        _signer(flask_app)

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
            from flask.cli import ScriptInfo

            import_path = os.environ.get("IMAGEKIT_APP") or os.environ.get("FLASK_APP")
            if not import_path:
                msg = (
                    "RQ workers load the Flask app from FLASK_APP (or IMAGEKIT_APP): run "
                    "`FLASK_APP=yourapp rq worker ...`."
                )
                raise ImproperlyConfigured(msg)
            app = ScriptInfo(app_import_path=import_path).load_app()
            _signer(app)  # a worker that cannot verify jobs runs none
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
