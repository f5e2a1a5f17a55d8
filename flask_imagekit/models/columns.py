"""``ProcessedImageField``: a column that stores an upload processed once.

The column is a plain ``String``; what it does with an upload (its spec, where
the result goes) is a :class:`ProcessedColumn` kept in the column's ``info``.
Assigning an upload runs the spec and saves the result at once; the session
listeners delete that file again if the transaction does not commit. Rows
loaded from the database give their names as :class:`StoredImage` values.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import typing as t
import weakref

from sqlalchemy import String, event, inspect
from sqlalchemy.orm import MappedColumn, Mapper, mapped_column
from werkzeug.utils import secure_filename

from ..exceptions import ImproperlyConfigured, SourceError, StorageError
from ..formats import format_to_extension, sniff_format
from ..globals import current_state
from ..sources import SourceFile
from ..specs import ImageSpec
from ..specs.fieldspecs import spec_class as make_spec_class
from ..specs.fieldspecs import spec_signature
from .stored import StoredImage
from .transactions import pending_uploads

if t.TYPE_CHECKING:
    from ..storage import Storage

__all__ = ["ProcessedColumn", "ProcessedImageField", "StoredImageType", "spec_signature"]

logger = logging.getLogger(__name__)

# Key of a ProcessedImageField's settings in its column's ``info``. The column's
# type stays a plain String, so migrations (Alembic, Flask-Migrate) render it
# as ``sa.String(length=...)`` and need nothing of this package.
_INFO_KEY = "flask_imagekit.processed"

# "_" and 7 random characters: what a storage adds to a name that is taken.
_SUFFIX_ROOM = 8


class ProcessedColumn:
    """What a :func:`ProcessedImageField` column does with an upload: its spec and place."""

    def __init__(
        self,
        spec: type[ImageSpec] | None,
        upload_to: str | t.Callable[[t.Any, str], str],
        storage: Storage | None = None,
        length: int | None = 255,
        spec_id: str | None = None,
    ) -> None:
        self.spec = spec
        self.spec_id = spec_id
        self.upload_to = upload_to
        self.storage = storage
        self.length = length

    @property
    def max_length(self) -> int | None:
        """The most characters the column holds (None: no limit)."""
        return self.length

    def make_spec(self, source: SourceFile) -> ImageSpec:
        """The column's spec bound to ``source`` (a registered one for ``spec_id=``)."""
        if self.spec_id is not None:
            registry = current_state().registry
            return t.cast(ImageSpec, registry.get_generator(self.spec_id, source=source))
        assert self.spec is not None
        return self.spec(source=source)

    def check_length(self, name: str, *, where: str = "the column") -> None:
        """Raise :class:`StorageError` if ``name`` does not fit in the column."""
        length = self.max_length
        if length is None or len(name) <= length:
            return
        msg = (
            f"The stored name {_shown(name)} is {len(name)} characters, too long for {where} "
            f"(at most {length}). Use a shorter upload_to, or a longer column with "
            "ProcessedImageField(..., length=...) and a migration of the table."
        )
        raise StorageError(msg)

    def store(self, instance: object, upload: t.Any, *, attname: str | None = None) -> StoredImage:
        """Process ``upload`` with the spec and save it; return the stored name.

        An upload a form already processed (``imagekit_processed``) is saved as is.
        A file name too long for the column is shortened (its extension and the
        ``upload_to`` part are kept); if even that cannot fit, :class:`StorageError`
        is raised and nothing is stored.
        """
        where = f"the column {type(instance).__name__}.{attname}" if attname else "the column"
        source = SourceFile(_upload_name(upload), file=_binary(upload, where))
        spec = self.make_spec(source)
        if getattr(upload, "imagekit_processed", False) and _same_output(upload, spec):
            # A form field with this very spec already processed it.
            with source.open() as fp:
                content = io.BytesIO(fp.read())
        else:
            # Another spec's output (or a plain upload): the column's own spec runs, on
            # the original upload when a form kept it.
            original = getattr(upload, "imagekit_original", None)
            if original is not None:
                source = SourceFile(_upload_name(original), file=_binary(original, where))
                spec = self.make_spec(source)
            content = spec.generate()
        filename = _target_name(source.name or "image", spec.format or sniff_format(content))
        name = self._fitting_name(instance, filename, where)
        storage = self.storage
        if storage is None:
            storage = current_state().source_storage
        stored = storage.save(name, content, overwrite=False)
        try:
            # The storage may have added a suffix to a name that was taken.
            self.check_length(stored, where=where)
        except StorageError:
            try:
                storage.delete(stored)
            except Exception:
                logger.warning(
                    "flask_imagekit: could not delete the refused %r", stored, exc_info=True
                )
            raise
        return StoredImage(stored, self.storage)

    def _name_for(self, instance: object, filename: str) -> str:
        upload_to = self.upload_to
        if not callable(upload_to):
            return f"{upload_to}/{filename}".strip("/")
        name = upload_to(instance, filename)
        if not isinstance(name, str):
            msg = (
                f"upload_to={upload_to!r} returned {name!r} for {filename!r}; "
                "it must return the name to store the file under, a str."
            )
            raise ImproperlyConfigured(msg)
        return name.strip("/")

    def _fitting_name(self, instance: object, filename: str, where: str) -> str:
        """The name for ``filename``, its stem shortened until the name fits the column."""
        name = self._name_for(instance, filename)
        length = self.max_length
        if length is None:
            return name
        stem, ext = os.path.splitext(filename)
        # Leave room for the suffix a storage adds to a taken name when the stem
        # can spare it; else settle for a name that fits only while it is free.
        for room in (_SUFFIX_ROOM, 0):
            if len(name) + room <= length:
                return name
            keep = len(stem) - (len(name) + room - length)
            if keep >= 1:
                shorter = self._name_for(
                    instance, f"{stem[:keep].rstrip('._-') or stem[:keep]}{ext}"
                )
                if len(shorter) + room <= length:
                    return shorter
        self.check_length(name, where=where)
        return name


#: Kept for code that named the column type; it is now a settings holder.
StoredImageType = ProcessedColumn


def _same_output(upload: t.Any, spec: ImageSpec) -> bool:
    produced_by = getattr(upload, "imagekit_spec", None)
    return produced_by is not None and produced_by == spec_signature(spec)


def _shown(name: str) -> str:
    return repr(name) if len(name) <= 80 else f"{name[:60]!r}..."


def _upload_name(upload: t.Any) -> str | None:
    name = getattr(upload, "filename", None) or getattr(upload, "name", None)
    return os.path.basename(str(name).replace("\\", "/")) if isinstance(name, str) else None


def _binary(upload: t.Any, where: str) -> t.IO[bytes]:
    stream = getattr(upload, "stream", upload)
    if isinstance(stream, bytes | bytearray):
        return io.BytesIO(stream)
    if not callable(getattr(stream, "read", None)):
        msg = (
            f"Cannot store {upload!r} in {where}: assign an uploaded FileStorage, a binary "
            "file, bytes, or the name of a stored image (a str)."
        )
        raise SourceError(msg)
    return t.cast(t.IO[bytes], stream)


def _target_name(original: str, format: str) -> str:
    stem = secure_filename(os.path.splitext(original)[0]) or "image"
    return f"{stem[:100]}{format_to_extension(format)}"


# Attribute and load events of processed columns --------------------------------------------

# Mapped classes -> their ProcessedImageField columns: read once, used on every row load.
_processed: weakref.WeakKeyDictionary[type, dict[str, ProcessedColumn]] = (
    weakref.WeakKeyDictionary()
)
_listen_lock = threading.Lock()


def _listen() -> None:
    """Set up processed columns of every class mapped from now on (once per process)."""
    with _listen_lock:
        if not event.contains(Mapper, "mapper_configured", _mapper_configured):
            event.listen(Mapper, "mapper_configured", _mapper_configured)


def _mapper_configured(mapper: Mapper[t.Any], class_: type) -> None:
    processed = _processed_columns(class_)
    for key in processed:
        attribute = getattr(class_, key)
        if not event.contains(attribute, "set", _on_set):
            event.listen(attribute, "set", _on_set, retval=True)
    if processed and not event.contains(class_, "load", _wrap_loaded):
        event.listen(class_, "load", _wrap_loaded)
        event.listen(class_, "refresh", _wrap_refreshed)


def _processed_columns(class_: type) -> dict[str, ProcessedColumn]:
    """The ProcessedImageField columns of a mapped class, by attribute key."""
    found = _processed.get(class_)
    if found is not None:
        return found
    found = {}
    mapper: Mapper[t.Any] | None = inspect(class_, raiseerr=False)
    if mapper is None:
        return found
    for prop in mapper.column_attrs:
        for column in prop.columns:
            settings = getattr(column, "info", {}).get(_INFO_KEY)
            if isinstance(settings, ProcessedColumn):
                found[prop.key] = settings
    _processed[class_] = found
    return found


def _wrap(target: object, keys: t.Iterable[str] | None) -> None:
    """Give the loaded names of processed columns their StoredImage form."""
    values = inspect(target).dict
    for key, settings in _processed_columns(type(target)).items():
        if keys is not None and key not in keys:
            continue
        value = values.get(key)
        if isinstance(value, str) and not isinstance(value, StoredImage):
            # Written into the loaded state directly: no change is recorded.
            values[key] = StoredImage(value, settings.storage)


def _wrap_loaded(target: object, context: t.Any) -> None:
    _wrap(target, None)


def _wrap_refreshed(target: object, context: t.Any, attrs: t.Iterable[str] | None) -> None:
    _wrap(target, set(attrs) if attrs is not None else None)


def _on_set(target: object, value: t.Any, oldvalue: t.Any, initiator: t.Any) -> t.Any:
    if value is None:
        return value
    column_type = _processed_columns(type(target))[initiator.key]
    where = f"the column {type(target).__name__}.{initiator.key}"
    if isinstance(value, str):
        # Refused here on every database, not only by those that check at commit.
        column_type.check_length(value, where=where)
        if isinstance(value, StoredImage):
            return value
        return StoredImage(value, column_type.storage)
    stored = column_type.store(target, value, attname=initiator.key)
    storage = column_type.storage or current_state().source_storage
    pending_uploads.add(target, storage, stored.name)
    return stored


# The column ----------------------------------------------------------------------------------


def ProcessedImageField(  # noqa: N802 - django-imagekit's public name
    processors: t.Any = None,
    format: str | None = None,
    options: t.Mapping[str, t.Any] | None = None,
    upload_to: str | t.Callable[[t.Any, str], str] = "",
    autoconvert: bool | None = None,
    spec: type[ImageSpec] | None = None,
    spec_id: str | None = None,
    storage: Storage | None = None,
    length: int = 255,
    **column_kwargs: t.Any,
) -> MappedColumn[t.Any]:
    """A column that stores an image processed once, when an upload is assigned.

    ``ProcessedImageField([SmartCrop(50, 50)], format="JPEG", upload_to="p")``:
    processors may come first, positionally, as in django-imagekit; ``spec=`` is
    a spec class to start from and ``spec_id=`` names a registered spec instead.

    Assign a werkzeug ``FileStorage``, a binary file or bytes: the spec runs once
    and the result is saved under ``upload_to`` (a folder, or a function
    ``(instance, filename) -> name``) with the extension of the output format;
    the column keeps the stored name. A string is stored unchanged. An upload
    a form field processed with the same spec is stored as it is; one processed
    by another spec goes through this column's spec (from the original upload).
    If the transaction rolls back, the stored file is deleted.

    Names must fit in ``length`` characters: an uploaded file's name is
    shortened to fit (a function ``upload_to`` is then called again with the
    shorter file name), and a name that cannot fit raises
    :class:`~flask_imagekit.exceptions.StorageError` when it is assigned,
    before anything is stored or committed. The column is a plain
    ``String(length)`` in the database and in migrations.
    """
    if isinstance(processors, str) or (
        callable(processors) and not _is_processor_list(processors)
    ):
        # ProcessedImageField("photos", ...): an upload_to given first.
        upload_to, processors = processors, None
    spec_class: type[ImageSpec] | None = None
    if spec_id is not None:
        given = {"format": format, "options": options, "autoconvert": autoconvert}
        given["processors"] = processors
        named = [key for key, value in given.items() if value is not None]
        if named or spec is not None:
            msg = (
                f"ProcessedImageField(spec_id={spec_id!r}) takes its processors from the "
                f"registered spec; remove {', '.join(named) or 'spec'} or drop spec_id."
            )
            raise ImproperlyConfigured(msg)
    else:
        # Only what was given: a ``spec=`` class keeps its own settings otherwise.
        spec_class = make_spec_class(
            processors,
            format,
            options,
            base=spec,
            name="ProcessedImageFieldSpec",
            autoconvert=autoconvert,
        )
    _listen()
    column_kwargs.setdefault("nullable", True)
    info = dict(column_kwargs.pop("info", None) or {})
    info[_INFO_KEY] = ProcessedColumn(spec_class, upload_to, storage, length, spec_id)
    return mapped_column(String(length), info=info, **column_kwargs)


def _is_processor_list(value: object) -> bool:
    return isinstance(value, list | tuple) or hasattr(value, "__iter__")
