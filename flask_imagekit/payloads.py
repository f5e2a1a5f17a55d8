"""Generation jobs as they travel to Celery or RQ workers: the signed payload and its schema.

A job is a JSON-safe dict, never a pickled object::

    {"generator_id": "myapp:profile:avatar_thumbnail",
     "source": {"name": "avatars/a.jpg", "attname": "avatar",
                "model": {"entity": "Profile", "identity": [1]}},
     "kwargs": {}, "name": "CACHE/images/avatars/a/<hash>.jpg",
     "force": false, "token": "<lock token>",
     "signature": "<signature of the other fields>"}

The job of a responsive candidate (see :mod:`flask_imagekit.specs.responsive`)
also carries ``"candidate": [width, format]``; other jobs leave it out (a null
``candidate`` is accepted too).

``signature`` is the :class:`itsdangerous.Signer` signature (salt
``"flask_imagekit.job"``, HMAC-SHA256 key derivation and digest) of the other
fields as canonical JSON (``json.dumps(fields, sort_keys=True, separators=(",",
":"))``), made with the app's ``SECRET_KEY``; keys in ``SECRET_KEY_FALLBACKS``
still verify. The fields stay readable for queue dashboards; workers trust them
only once the signature verifies.

A payload carries no path and no module name: a source is a name in the source
storage, and the row holding it (for specs that read their row) is the name of a
class the app's Flask-SQLAlchemy models map, with its primary key (see
:mod:`flask_imagekit.references`). Sources that are not stored (uploads, open
files, paths) are refused when the job is sent
(:class:`~flask_imagekit.exceptions.UnstoredSource`).

Schedulers build payloads here (:func:`job_payload`); workers check them here
(:func:`parse_job`) and run them in :mod:`flask_imagekit.jobs`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import typing as t
import uuid

from flask import current_app
from itsdangerous import Signer

from .exceptions import ImproperlyConfigured
from .globals import current_state
from .references import (
    FileReference,
    ReferencedFile,
    canonical_json,
    check_kwargs,
    encode_candidate,
    generator_id_of,
    model_reference,
    parse_candidate,
    parse_source,
    plain_kwargs,
    signing_keys,
    stored_name,
    stored_source,
)

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
_OPTIONAL_FIELDS = frozenset({"candidate"})
_MAX_TOKEN_LENGTH = 128

#: What a job is made of: an :class:`~flask_imagekit.cachefiles.ImageCacheFile`.
PayloadFile = ReferencedFile


# Signing ------------------------------------------------------------------------------


def job_signer(app: Flask) -> Signer:
    """The signer of ``app``'s jobs; refuses an app without ``SECRET_KEY``."""
    keys = signing_keys(app, "Jobs for Celery or RQ workers are signed")
    return Signer(keys, salt=_SALT, key_derivation="hmac", digest_method=hashlib.sha256)


# Scheduling ---------------------------------------------------------------------------


def job_payload(file: PayloadFile, *, force: bool = False) -> dict[str, t.Any]:
    """The signed, JSON-safe job that generates ``file`` on a worker.

    Raises :class:`~flask_imagekit.exceptions.UnstoredSource` for a source that
    workers cannot read by name, and
    :class:`~flask_imagekit.exceptions.ImproperlyConfigured` when the app has no
    ``SECRET_KEY`` or the generator's arguments are not plain JSON values.
    """
    signer = job_signer(current_app)
    source = stored_source(file)
    generator_id = generator_id_of(file)
    try:
        kwargs = plain_kwargs(file)
    except ValueError as exc:
        msg = (
            f"The generator arguments of {file!r} are not JSON-safe ({exc}); pass plain "
            "values (str, int, float, bool, lists, dicts with str keys) to generate on a "
            "worker."
        )
        raise ImproperlyConfigured(msg) from exc
    fields: dict[str, t.Any] = {
        "generator_id": generator_id,
        "source": None,
        "kwargs": kwargs,
        "name": file.name,
        "force": bool(force),
        "token": uuid.uuid4().hex,
    }
    candidate = encode_candidate(getattr(file, "candidate", None))
    if candidate is not None:
        # Only then: the payloads of other files stay what they always were.
        fields["candidate"] = candidate
    if source is not None:
        fields["source"] = {
            "name": source.name,
            "attname": source.attname,
            "model": model_reference(source),
        }
    fields["signature"] = signer.get_signature(canonical_json(fields)).decode("ascii")
    return fields


# Checking -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Job(FileReference):
    """A payload whose signature verified and whose fields are what a scheduler sends:
    the cache file it names (a :class:`~flask_imagekit.references.FileReference`),
    its name as the scheduler derived it, and the scheduler's lock."""

    name: str = dataclasses.field(kw_only=True)
    force: bool = dataclasses.field(kw_only=True)
    token: str = dataclasses.field(kw_only=True)


def job_lock(fields: t.Mapping[str, t.Any]) -> tuple[str, str] | None:
    """The cache file name and lock token of verified ``fields``, if they are usable."""
    token = fields.get("token")
    if not isinstance(token, str) or not 0 < len(token) <= _MAX_TOKEN_LENGTH:
        return None
    try:
        return stored_name(fields.get("name"), "the cache file name"), token
    except ValueError:
        return None


def parse_job(fields: t.Mapping[str, t.Any]) -> Job:
    """The job in verified ``fields``, checked against the current app.

    Raises ValueError (saying what is wrong) when the fields are not what a
    scheduler of this app sends: an unknown or missing field, a generator id or
    model the app does not register, a name outside the storage.
    """
    if not _FIELDS <= set(fields) <= _FIELDS | _OPTIONAL_FIELDS:
        unknown = sorted(set(fields) - _FIELDS - _OPTIONAL_FIELDS)
        missing = sorted(_FIELDS - set(fields))
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
    check_kwargs(fields["kwargs"])
    source, row = parse_source(fields["source"])
    return Job(
        generator_id=generator_id,
        source=source,
        row=row,
        kwargs=fields["kwargs"],
        name=lock[0],
        force=fields["force"],
        token=lock[1],
        candidate=parse_candidate(fields.get("candidate")),
    )
