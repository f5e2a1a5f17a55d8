"""References to a cache file that another process or request rebuilds it from.

A generation job (:mod:`flask_imagekit.payloads`) and an on-request URL
(:mod:`flask_imagekit.cachefiles.onrequest`) both name a cache file by what made
it, never by a pickled object, a path or a module name:

* the generator's registry id;
* its source: a name in the app's source storage, the attribute name of the
  model column holding it, and the row (the name of a class the app's
  Flask-SQLAlchemy models map, with its primary key) for specs that read it;
* the generator's other arguments, as plain JSON values;
* the responsive candidate, ``[width, format]``, when the file is one.

Here these parts are written out (by the side that trusts the file) and read back
(by the side that must not trust what it is given until a signature verified).
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing as t
import uuid

from flask import current_app

from .defaults import MAX_CANDIDATE_WIDTH
from .exceptions import ImproperlyConfigured, UnstoredSource
from .globals import current_state
from .sources import SourceFile, as_source
from .storage import clean_name

if t.TYPE_CHECKING:
    from flask import Flask

__all__ = [
    "FileReference",
    "ReferencedFile",
    "canonical_json",
    "check_kwargs",
    "encode_candidate",
    "generator_id_of",
    "load_row",
    "model_reference",
    "parse_candidate",
    "parse_row",
    "parse_source",
    "plain_kwargs",
    "signing_keys",
    "stored_name",
    "stored_source",
]

_SOURCE_FIELDS = frozenset({"name", "attname", "model"})
_MODEL_FIELDS = frozenset({"entity", "identity"})
# Generator arguments are plain values: a few levels of lists and dicts at most.
_MAX_DEPTH = 16
_MAX_KEY_PARTS = 16
_FORMAT_NAME = re.compile(r"^[A-Z0-9]{2,16}$")
_JSON_SCALARS = (str, int, float, bool, type(None))


class ReferencedFile(t.Protocol):
    """What a reference is made of: an :class:`~flask_imagekit.cachefiles.ImageCacheFile`."""

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


def canonical_json(fields: t.Any) -> str:
    """The JSON text of ``fields`` that signatures are made of (sorted keys, no spaces)."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), allow_nan=False)


def signing_keys(app: Flask, signed: str) -> list[t.Any]:
    """The keys ``app`` signs with, as Flask's sessions use them: the fallbacks, then
    ``SECRET_KEY`` (the last one signs, every one verifies).

    ``signed`` says what is signed (``"Jobs for Celery or RQ workers are signed"``),
    for the error raised when the app has no ``SECRET_KEY``.
    """
    secret = app.secret_key
    if not secret:
        msg = (
            f"{signed} with the app's SECRET_KEY, and this app has none. Set SECRET_KEY "
            "(from an environment variable, for instance), to the same value in every "
            "process of the app: web processes and workers."
        )
        raise ImproperlyConfigured(msg)
    return [*(app.config.get("SECRET_KEY_FALLBACKS") or ()), secret]


# Writing references -------------------------------------------------------------------


def generator_id_of(file: ReferencedFile) -> str:
    """The registry id another process rebuilds ``file``'s generator from.

    Raises :class:`~flask_imagekit.exceptions.ImproperlyConfigured` for a
    generator that is not registered.
    """
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


def stored_source(file: ReferencedFile) -> SourceFile | None:
    """The source of ``file`` if another process can read it by name; refuses any other.

    Raises :class:`~flask_imagekit.exceptions.UnstoredSource` for an upload, an
    open file, a path, or a file kept in another storage than the source storage.
    """
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
    clean_name(source.name or "")  # a name no storage would open fails here, not later
    return source


def model_reference(source: SourceFile) -> dict[str, t.Any] | None:
    """The row holding ``source``, as another process finds it again: class name and key.

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


def plain_kwargs(file: ReferencedFile) -> dict[str, t.Any]:
    """The generator arguments of ``file`` as the other side reads them back from JSON.

    Raises ValueError (saying why) when they are not plain JSON values.
    """
    try:
        # What comes back from JSON: tuples become lists.
        kwargs = json.loads(canonical_json(dict(file.generator_kwargs or {})))
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(str(exc)) from exc
    check_kwargs(kwargs)
    return t.cast(dict[str, t.Any], kwargs)


def encode_candidate(candidate: tuple[int | None, str | None] | None) -> list[t.Any] | None:
    """The JSON form of a responsive candidate ``(width, format)``: ``[width, format]``."""
    if candidate is None:
        return None
    width, fmt = candidate
    return [width, fmt.upper() if isinstance(fmt, str) else fmt]


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


# Reading references back ------------------------------------------------------------------


def check_kwargs(kwargs: t.Any) -> None:
    """Raise ValueError unless ``kwargs`` are generator arguments a scheduler sends."""
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


def stored_name(value: t.Any, what: str) -> str:
    """``value`` if it is a name inside a storage; raises ValueError naming ``what``."""
    if not isinstance(value, str):
        msg = f"{what} is not a string"
        raise ValueError(msg)
    clean_name(value)  # SuspiciousName is a ValueError
    # Kept as sent: the other side must derive the same cache file name.
    return value


def parse_source(
    data: t.Any,
) -> tuple[SourceFile | None, tuple[type, tuple[t.Any, ...]] | None]:
    """The source and its row reference in ``data`` (``{"name", "attname", "model"}``)."""
    if data is None:
        return None, None
    if not isinstance(data, dict):
        msg = "its source is not an object with a name"
        raise ValueError(msg)
    unknown = sorted(set(data) - _SOURCE_FIELDS)
    if unknown:
        msg = f"its source has fields a scheduler never sends: {unknown}"
        raise ValueError(msg)
    name = stored_name(data.get("name"), "the source name")
    attname = data.get("attname")
    if attname is not None and not (isinstance(attname, str) and attname.isidentifier()):
        msg = f"the source's attribute name {attname!r} is not an identifier"
        raise ValueError(msg)
    return SourceFile(name, attname=attname), parse_row(data.get("model"))


def parse_row(data: t.Any) -> tuple[type, tuple[t.Any, ...]] | None:
    """The mapped class and primary key in ``data`` (``{"entity", "identity"}``)."""
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


def parse_candidate(value: t.Any) -> tuple[int | None, str | None] | None:
    """The responsive candidate ``(width, format)`` in ``value`` (``[width, format]`` or null)."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        msg = "its candidate is not a [width, format] pair"
        raise ValueError(msg)
    width, fmt = value
    if width is not None and (
        isinstance(width, bool)
        or not isinstance(width, int)
        or not 0 < width <= MAX_CANDIDATE_WIDTH
    ):
        msg = f"its candidate width {width!r} is not a number of pixels"
        raise ValueError(msg)
    if fmt is not None and not (isinstance(fmt, str) and _FORMAT_NAME.match(fmt)):
        msg = f"its candidate format {fmt!r} is not a format name"
        raise ValueError(msg)
    return width, fmt


def load_row(cls: type, identity: tuple[t.Any, ...]) -> t.Any:
    """The row of the mapped class ``cls`` with primary key ``identity`` (None if gone)."""
    db = current_state().db or current_app.extensions["sqlalchemy"]
    return db.session.get(cls, identity)


@dataclasses.dataclass(frozen=True)
class FileReference:
    """A cache file as a reference names it, once read back and checked."""

    generator_id: str
    source: SourceFile | None
    #: The mapped class and primary key of the row holding the source, if it travelled.
    row: tuple[type, tuple[t.Any, ...]] | None
    kwargs: dict[str, t.Any]
    candidate: tuple[int | None, str | None] | None = None

    def cachefile(self, state: t.Any) -> t.Any:
        """The cache file in the app whose state is ``state``; the row is loaded now.

        Raises what building the generator raises (a missing row is a source
        without its row: a spec that reads it says so).
        """
        kwargs: dict[str, t.Any] = dict(self.kwargs)
        source = self.source
        if source is not None:
            if self.row is not None:
                row = load_row(*self.row)
                source = SourceFile(source.name, attname=source.attname, instance=row)
            kwargs["source"] = source
        return state.cachefile(self.generator_id, candidate=self.candidate, **kwargs)
