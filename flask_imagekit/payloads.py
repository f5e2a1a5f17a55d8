"""Generation jobs as they travel to Celery or RQ workers: the signed payload and its schema.

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

Schedulers build payloads here (:func:`job_payload`); workers check them here
(:func:`parse_job`) and run them in :mod:`flask_imagekit.jobs`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing as t
import uuid

from flask import current_app
from itsdangerous import Signer

from .exceptions import ImproperlyConfigured, UnstoredSource
from .globals import current_state
from .sources import SourceFile, as_source
from .storage import clean_name

if t.TYPE_CHECKING:
    from flask import Flask

__all__ = [
    "CELERY_TASK_NAME",
    "Job",
    "PayloadFile",
    "canonical_json",
    "job_lock",
    "job_payload",
    "job_signer",
    "parse_job",
]

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


class PayloadFile(t.Protocol):
    """What a job is made of: an :class:`~flask_imagekit.cachefiles.ImageCacheFile`."""

    @property
    def generator(self) -> t.Any:
        """The generator whose output the file holds."""

    @property
    def generator_id(self) -> str | None:
        """The registry id the generator was built from, if known."""

    @property
    def generator_kwargs(self) -> t.Mapping[str, t.Any]:
        """The arguments the generator was built with, besides ``source``."""

    @property
    def name(self) -> str:
        """The file's name in its storage."""

    @property
    def app_state(self) -> t.Any:
        """The app's flask_imagekit state (registry, source storage)."""

    @property
    def cachefile_backend(self) -> t.Any:
        """The backend that generates the file."""


def _generator_id(file: PayloadFile) -> str:
    generator_id = getattr(file, "generator_id", None)
    if generator_id:
        return str(generator_id)
    registry = file.app_state.registry
    factory = type(file.generator)
    for candidate in registry.generator_ids():
        if registry.generator_factory(candidate) is factory:
            return t.cast(str, candidate)
    msg = (
        f"{file.generator!r} is not registered, so a worker cannot rebuild it. Register it "
        "with register.generator(id, Spec) to generate it on a worker."
    )
    raise ImproperlyConfigured(msg)


# Signing ------------------------------------------------------------------------------


def job_signer(app: Flask) -> Signer:
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


def canonical_json(fields: t.Mapping[str, t.Any]) -> str:
    """The JSON text of ``fields`` that signatures are made of (sorted keys, no spaces)."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), allow_nan=False)


# Scheduling ---------------------------------------------------------------------------


def job_payload(file: PayloadFile, *, force: bool = False) -> dict[str, t.Any]:
    """The signed, JSON-safe job that generates ``file`` on a worker.

    Raises :class:`~flask_imagekit.exceptions.UnstoredSource` for a source that
    workers cannot read by name, and
    :class:`~flask_imagekit.exceptions.ImproperlyConfigured` when the app has no
    ``SECRET_KEY`` or the generator's arguments are not plain JSON values.
    """
    signer = job_signer(current_app)
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
        fields = json.loads(canonical_json(fields))
        _check_kwargs(fields["kwargs"])
    except (TypeError, ValueError, RecursionError) as exc:
        msg = (
            f"The generator arguments of {file!r} are not JSON-safe ({exc}); pass plain "
            "values (str, int, float, bool, lists, dicts with str keys) to generate on a "
            "worker."
        )
        raise ImproperlyConfigured(msg) from exc
    fields["signature"] = signer.get_signature(canonical_json(fields)).decode("ascii")
    return fields


def _stored_source(file: PayloadFile) -> SourceFile | None:
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
    instance = source.loaded_instance
    if instance is not None:
        from sqlalchemy import inspect
        from sqlalchemy.exc import NoInspectionAvailable

        try:
            state = inspect(instance)
        except NoInspectionAvailable:
            return None
        cls: type = state.class_
        identity = state.identity
    else:
        reference = source.row_reference()
        if reference is None:
            return None
        # Unpickled in this process (generate --jobs): compare with what the app maps.
        module, qualname, identity = reference
        mapped = _mapped_class(qualname.rsplit(".", 1)[-1])
        if mapped is None or (mapped.__module__, mapped.__qualname__) != (module, qualname):
            return None
        cls = mapped
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


# Checking -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Job:
    """A payload whose signature verified and whose fields are what a scheduler sends."""

    generator_id: str
    source: SourceFile | None
    #: The mapped class and primary key of the row holding the source, if it travelled.
    row: tuple[type, tuple[t.Any, ...]] | None
    kwargs: dict[str, t.Any]
    name: str
    force: bool
    token: str


def job_lock(fields: t.Mapping[str, t.Any]) -> tuple[str, str] | None:
    """The cache file name and lock token of verified ``fields``, if they are usable."""
    token = fields.get("token")
    if not isinstance(token, str) or not 0 < len(token) <= _MAX_TOKEN_LENGTH:
        return None
    try:
        return _stored_name(fields.get("name"), "the cache file name"), token
    except ValueError:
        return None


def parse_job(fields: t.Mapping[str, t.Any]) -> Job:
    """The job in verified ``fields``, checked against the current app.

    Raises ValueError (saying what is wrong) when the fields are not what a
    scheduler of this app sends: an unknown or missing field, a generator id or
    model the app does not register, a name outside the storage.
    """
    if set(fields) != _FIELDS:
        unknown, missing = sorted(set(fields) - _FIELDS), sorted(_FIELDS - set(fields))
        msg = f"its fields are not a job's (unknown: {unknown}, missing: {missing})"
        raise ValueError(msg)
    generator_id = fields["generator_id"]
    if not isinstance(generator_id, str) or not current_state().registry.has_generator(
        generator_id
    ):
        msg = f"no generator is registered with id {generator_id!r} in this app"
        raise ValueError(msg)
    lock = job_lock(fields)
    if lock is None:
        msg = "its cache file name or lock token is not one a scheduler sends"
        raise ValueError(msg)
    if not isinstance(fields["force"], bool):
        msg = "its force flag is not true or false"
        raise ValueError(msg)
    _check_kwargs(fields["kwargs"])
    source, row = _parse_source(fields["source"])
    return Job(
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
