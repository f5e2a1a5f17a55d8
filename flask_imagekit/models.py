"""SQLAlchemy integration: spec attributes on models, processed upload columns.

``ImageSpecField`` is a virtual attribute: ``profile.avatar_thumbnail`` is the
cache file of a spec applied to the ``avatar`` column. Defining one registers
its spec and an :class:`ImageFieldSourceGroup`; session listeners then send
``source_created`` / ``source_changed`` / ``source_deleted`` once the
transaction commits (never for rolled-back work), so strategies such as
``Optimistic`` generate files as soon as a source is saved.

``ProcessedImageField`` is a real column: assigning an upload processes it once
and stores the result; the column keeps the stored name.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import threading
import typing as t
import weakref

from PIL import UnidentifiedImageError
from sqlalchemy import String, event, inspect
from sqlalchemy.orm import MappedColumn, Mapper, Session, mapped_column, object_session

from .cachefiles import ImageCacheFile
from .config import current_state, current_state_or_none
from .exceptions import ImageKitError, ImproperlyConfigured, StorageError
from .registry import default_registry
from .signals import source_changed, source_created, source_deleted
from .sources import SourceFile
from .specs import ImageSpec
from .specs.sourcegroups import ImageFieldSourceGroup, mapped_descendants

if t.TYPE_CHECKING:
    from .storage import Storage

__all__ = ["ImageSpecField", "ProcessedImageField", "StoredImage"]

logger = logging.getLogger(__name__)

_SHARES_KEY = "imagekit_shares"
_READY_KEY = "imagekit_ready_events"

# Model classes -> {source attribute: its source groups}, for the session listeners.
_watched: weakref.WeakKeyDictionary[type, dict[str, list[ImageFieldSourceGroup]]] = (
    weakref.WeakKeyDictionary()
)
# Classes -> the ImageSpecFields declared on them (for fields declared on mixins).
_fields: weakref.WeakKeyDictionary[type, list[ImageSpecField]] = weakref.WeakKeyDictionary()
_listen_lock = threading.Lock()
_listening = False


def _spec_id_prefix(model: type) -> str:
    module = model.__module__
    return module.split(".", 1)[0] if module != "__main__" else "__main__"


class ImageSpecField:
    """A model attribute holding the cache file of a spec applied to a source column.

    Either the shorthand (``processors``, ``format``, ``options``, …, building a
    spec registered as ``<module>:<model>:<attr>``) or ``spec_id=`` (also
    ``id=``) naming a registered spec.
    """

    def __init__(
        self,
        processors: t.Any = None,
        format: str | None = None,
        options: t.Mapping[str, t.Any] | None = None,
        source: str | None = None,
        cachefile_storage: t.Any = None,
        autoconvert: bool | None = None,
        cachefile_backend: t.Any = None,
        cachefile_strategy: t.Any = None,
        spec: type[ImageSpec] | None = None,
        id: str | None = None,
        spec_id: str | None = None,
    ) -> None:
        if id and spec_id and id != spec_id:
            msg = f"ImageSpecField got id={id!r} and spec_id={spec_id!r}; give only one."
            raise ImproperlyConfigured(msg)
        self.spec_id = spec_id or id
        shorthand = {
            "processors": processors,
            "format": format,
            "options": options,
            "autoconvert": autoconvert,
            "cachefile_storage": cachefile_storage,
            "cachefile_backend": cachefile_backend,
            "cachefile_strategy": cachefile_strategy,
        }
        given = {key: value for key, value in shorthand.items() if value is not None}
        if self.spec_id and (given or spec):
            msg = (
                f"ImageSpecField(spec_id={self.spec_id!r}) takes its processors from the "
                f"registered spec; remove {', '.join(given) or 'spec'} or drop spec_id."
            )
            raise ImproperlyConfigured(msg)
        if not source:
            msg = "ImageSpecField needs source='<name of the column holding the image>'."
            raise ImproperlyConfigured(msg)
        self.source = source
        self.spec_class: type[ImageSpec] | None = None
        if not self.spec_id:
            base = spec or ImageSpec
            attrs = dict(given)
            if "processors" in attrs:
                attrs["processors"] = list(attrs["processors"])
            self.spec_class = type("ImageSpecFieldSpec", (base,), attrs)
        self.model: type | None = None
        self.attname: str | None = None

    def __set_name__(self, owner: type, name: str) -> None:
        self.model = owner
        self.attname = name
        spec_class = self.spec_class
        if spec_class is not None:
            self.spec_id = f"{_spec_id_prefix(owner)}:{owner.__name__}:{name}".lower()
            # Resolvable by pickle: Model.attr is this field, .spec_class the class.
            spec_class.__qualname__ = f"{owner.__qualname__}.{name}.spec_class"
            spec_class.__module__ = owner.__module__
            # Redefining the model (tests, factories, reloads) replaces the old spec.
            default_registry.register_generator(self.spec_id, spec_class, replace=True)
        assert self.spec_id is not None
        group = ImageFieldSourceGroup(owner, self.source)  # watches the column
        default_registry.replace_source_groups(self.spec_id, lambda other: other == group)
        default_registry.register_source_group(self.spec_id, group)
        _fields.setdefault(owner, []).append(self)

    @t.overload
    def __get__(self, instance: None, owner: type) -> ImageSpecField: ...

    @t.overload
    def __get__(self, instance: object, owner: type) -> ImageCacheFile: ...

    def __get__(self, instance: object | None, owner: type) -> ImageSpecField | ImageCacheFile:
        if instance is None:
            return self
        value = getattr(instance, self.source)
        name = _name_of(value)
        source = (
            SourceFile(
                name,
                instance=instance,
                attname=self.source,
                storage=getattr(value, "_storage", None),
            )
            if name
            else None
        )
        state = current_state_or_none()
        registry = state.registry if state is not None else default_registry
        assert self.spec_id is not None
        return ImageCacheFile(
            registry.get_generator(self.spec_id, source=source), generator_id=self.spec_id
        )

    def __repr__(self) -> str:
        return f"<ImageSpecField {self.spec_id!r} source={self.source!r}>"


def _name_of(value: t.Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    name = getattr(value, "name", None)
    return name if isinstance(name, str) and name else None


# Session listeners -------------------------------------------------------------------
#
# Source events and stored uploads are kept per transaction: a savepoint that
# rolls back drops only its own share, a released savepoint hands its share to
# its parent, and only the share of a committed root transaction is sent, once
# the transaction is over (when rows can be loaded again).


@dataclasses.dataclass
class _Share:
    events: list[tuple[str, ImageFieldSourceGroup, SourceFile]] = dataclasses.field(
        default_factory=list
    )
    stored: list[tuple[t.Any, str]] = dataclasses.field(default_factory=list)


def _listen() -> None:
    """Attach the session listeners, once per process."""
    global _listening
    with _listen_lock:
        if _listening:
            return
        event.listen(Session, "after_flush", _after_flush)
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_rollback", _after_rollback)
        event.listen(Session, "after_transaction_end", _after_transaction_end)
        event.listen(Mapper, "mapper_configured", _mapper_configured)
        _listening = True


def watch_source_group(group: ImageFieldSourceGroup) -> None:
    """Send source signals for ``group``'s column from now on (idempotent)."""
    groups = _watched.setdefault(group.model_class, {}).setdefault(group.image_field, [])
    if group not in groups:
        groups.append(group)
    _listen()
    # Models mapped before the group was made get their listeners now.
    for cls in mapped_descendants(group.model_class):
        _attach_watchers(cls)


def _watched_attrs(instance: object) -> dict[str, list[ImageFieldSourceGroup]]:
    attrs: dict[str, list[ImageFieldSourceGroup]] = {}
    for cls in reversed(type(instance).__mro__):
        for attr, groups in _watched.get(cls, {}).items():
            known = attrs.setdefault(attr, [])
            known.extend(group for group in groups if group not in known)
    return attrs


def _active() -> bool:
    return current_state_or_none() is not None


def _shares(session: Session) -> dict[t.Any, _Share]:
    shares: dict[t.Any, _Share] = session.info.setdefault(_SHARES_KEY, {})
    return shares


def _current_share(session: Session) -> _Share:
    transaction = session.get_nested_transaction() or session.get_transaction()
    return _shares(session).setdefault(transaction, _Share())


def _source(instance: object, attr: str, value: t.Any) -> SourceFile | None:
    name = _name_of(value)
    if not name:
        return None
    storage = getattr(value, "_storage", None)
    return SourceFile(name, instance=instance, attname=attr, storage=storage)


def _after_flush(session: Session, flush_context: t.Any) -> None:
    if not _active():
        return
    share = _current_share(session)
    for instance in session.new:
        for attr, groups in _watched_attrs(instance).items():
            created = _source(instance, attr, getattr(instance, attr, None))
            if created is not None:
                share.events.extend(("created", group, created) for group in groups)
    for instance in session.dirty:
        for attr, groups in _watched_attrs(instance).items():
            history = inspect(instance).attrs[attr].history
            if not history.has_changes():
                continue
            new = _source(instance, attr, history.added[0] if history.added else None)
            old = _source(instance, attr, history.deleted[0] if history.deleted else None)
            if (new and new.name) == (old and old.name):
                continue
            for group in groups:
                if new is not None:
                    share.events.append(("changed", group, new))
                if old is not None:
                    share.events.append(("deleted", group, old))
    share.stored.extend(_pending_stored.pop_for(session))


def _before_delete(mapper: Mapper[t.Any], connection: t.Any, instance: object) -> None:
    """Record the sources of deleted rows (cascades included) while they can be read."""
    session = object_session(instance)
    if session is None or not _active():
        return
    share = _current_share(session)
    for attr, groups in _watched_attrs(instance).items():
        history = inspect(instance).attrs[attr].history
        if history.deleted or history.unchanged:
            committed = (history.deleted or history.unchanged)[0]
        else:
            committed = getattr(instance, attr, None)
        deleted = _source(instance, attr, committed)
        if deleted is not None:
            share.events.extend(("deleted", group, deleted) for group in groups)


def _after_commit(session: Session) -> None:
    shares = _shares(session)
    nested = session.get_nested_transaction()
    if nested is not None:  # a savepoint released: its share goes to its parent
        share = shares.pop(nested, None)
        if share is not None:
            parent = shares.setdefault(nested.parent, _Share())
            parent.events.extend(share.events)
            parent.stored.extend(share.stored)
        return
    share = shares.pop(session.get_transaction(), None)
    if share is not None and share.events:
        session.info.setdefault(_READY_KEY, []).extend(share.events)


def _after_rollback(session: Session) -> None:
    shares = _shares(session)
    nested = session.get_nested_transaction()
    dropped = [shares.pop(nested, None)] if nested is not None else list(shares.values())
    if nested is None:
        shares.clear()
        session.info.pop(_READY_KEY, None)
        dropped.append(_Share(stored=_pending_stored.pop_for(session)))
    for share in dropped:
        for storage, name in share.stored if share is not None else ():
            _delete_quietly(storage, name)


def _after_transaction_end(session: Session, transaction: t.Any) -> None:
    if transaction.parent is not None:
        return
    shares = _shares(session)
    # A root transaction closed without commit or rollback (Session.close()).
    for share in shares.values():
        for storage, name in share.stored:
            _delete_quietly(storage, name)
    shares.clear()
    events = session.info.pop(_READY_KEY, None)
    if not events or not _active():
        return
    signals = {"created": source_created, "changed": source_changed, "deleted": source_deleted}
    for kind, group, source in events:
        try:
            signals[kind].send(group, source=source)
        except Exception:
            logger.exception("flask_imagekit: a receiver of source_%s for %r failed", kind, source)


def _delete_quietly(storage: Storage, name: str) -> None:
    try:
        storage.delete(name)
    except Exception:
        logger.warning("flask_imagekit: could not delete %r after a rollback", name, exc_info=True)


# ProcessedImageField ---------------------------------------------------------------


class StoredImage(str):
    """A stored image name with ``.name``, ``.url``, ``.width``, ``.height`` and ``.open()``."""

    __slots__ = ("_size", "_storage")

    _storage: Storage | None
    _size: tuple[int, int] | None

    def __new__(cls, name: str, storage: Storage | None = None) -> StoredImage:
        self = super().__new__(cls, name)
        self._storage = storage
        self._size = None
        return self

    @property
    def name(self) -> str:
        """The name in the storage."""
        return str(self)

    @property
    def storage(self) -> Storage:
        """The storage holding the image (the app's source storage by default)."""
        if self._storage is None:
            return current_state().source_storage
        return self._storage

    @property
    def url(self) -> str:
        """The image's URL."""
        return self.storage.url(self.name)

    @property
    def path(self) -> str:
        """The image's local path (local storages only)."""
        return self.storage.path(self.name)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``, read from the file's header once."""
        if self._size is None:
            from PIL import Image

            with self.storage.open(self.name, "rb") as fp, Image.open(fp) as img:
                self._size = img.size
        return self._size

    @property
    def width(self) -> int:
        """Width in pixels."""
        return self.size[0]

    @property
    def height(self) -> int:
        """Height in pixels."""
        return self.size[1]

    def open(self, mode: str = "rb") -> t.IO[bytes]:
        """Open the stored image."""
        return self.storage.open(self.name, mode)

    def __html__(self) -> str:
        from markupsafe import escape

        try:
            size = f' width="{self.width}" height="{self.height}"'
        except (OSError, ImageKitError, UnidentifiedImageError) as exc:
            # A stored file that is gone or unreadable must not break the page.
            logger.warning("flask_imagekit: cannot read the size of %r: %s", self.name, exc)
            size = ""
        return f'<img src="{escape(self.url)}"{size}>'


# Key of a ProcessedImageField's settings in its column's ``info``. The column's
# type stays a plain String, so migrations (Alembic, Flask-Migrate) render it
# as ``sa.String(length=...)`` and need nothing of this package.
_INFO_KEY = "flask_imagekit.processed"


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
        source = SourceFile(_upload_name(upload), file=_binary(upload))
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
                source = SourceFile(_upload_name(original), file=_binary(original))
                spec = self.make_spec(source)
            content = spec.generate()
        filename = _target_name(source.name or "image", spec.format or _detect_format(content))
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
        name = upload_to(instance, filename) if callable(upload_to) else f"{upload_to}/{filename}"
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


# "_" and 7 random characters: what a storage adds to a name that is taken.
_SUFFIX_ROOM = 8


#: Kept for code that named the column type; it is now a settings holder.
StoredImageType = ProcessedColumn


def _same_output(upload: t.Any, spec: ImageSpec) -> bool:
    produced_by = getattr(upload, "imagekit_spec", None)
    return produced_by is not None and produced_by == spec_signature(spec)


def spec_signature(spec: t.Any) -> str:
    """What a spec makes of any source: how it generates, and its output parameters."""
    params = getattr(spec, "_params_canonical", None)
    generate = getattr(type(spec), "generate", None)
    how = f"{generate.__module__}.{generate.__qualname__}" if generate else type(spec).__name__
    return f"{how}:{params() if params else ''}"


def _shown(name: str) -> str:
    return repr(name) if len(name) <= 80 else f"{name[:60]!r}..."


def _upload_name(upload: t.Any) -> str | None:
    name = getattr(upload, "filename", None) or getattr(upload, "name", None)
    return os.path.basename(str(name).replace("\\", "/")) if isinstance(name, str) else None


def _binary(upload: t.Any) -> t.IO[bytes]:
    stream = getattr(upload, "stream", upload)
    if isinstance(stream, bytes | bytearray):
        return io.BytesIO(stream)
    return t.cast(t.IO[bytes], stream)


def _detect_format(content: io.BytesIO) -> str:
    from PIL import Image

    with Image.open(io.BytesIO(content.getvalue())) as img:
        return img.format or "JPEG"


def _target_name(original: str, format: str) -> str:
    from werkzeug.utils import secure_filename

    from .utils import format_to_extension

    stem = secure_filename(os.path.splitext(original)[0]) or "image"
    return f"{stem[:100]}{format_to_extension(format)}"


class _PendingStored:
    """Files stored by assignments, until the session they are flushed in ends."""

    def __init__(self) -> None:
        self._by_instance: weakref.WeakKeyDictionary[object, list[tuple[t.Any, str]]] = (
            weakref.WeakKeyDictionary()
        )

    def add(self, instance: object, storage: t.Any, name: str) -> None:
        self._by_instance.setdefault(instance, []).append((storage, name))

    def pop_for(self, session: Session) -> list[tuple[t.Any, str]]:
        stored: list[tuple[t.Any, str]] = []
        for instance in list(self._by_instance):
            if inspect(instance).session is session:
                stored.extend(self._by_instance.pop(instance, []))
        return stored


_pending_stored = _PendingStored()


def _one_of(*groups: ImageFieldSourceGroup) -> t.Callable[[t.Any], bool]:
    return lambda other: any(other == group for group in groups)


def _adopt_mixin_fields(class_: type) -> None:
    """Give fields declared on an unmapped mixin a source group of the mapped class.

    Only the outermost mapped class that inherits the mixin gets the group: its
    query and its listeners cover the rows of its mapped subclasses, so a row
    is listed and announced once.
    """
    for cls in class_.__mro__[1:]:
        if cls not in _fields or inspect(cls, raiseerr=False) is not None:
            continue
        if any(
            cls in ancestor.__mro__ and inspect(ancestor, raiseerr=False) is not None
            for ancestor in class_.__mro__[1:]
            if ancestor is not cls
        ):
            continue  # adopted by a mapped ancestor
        for field in _fields[cls]:
            assert field.spec_id is not None
            mixin_group = ImageFieldSourceGroup(cls, field.source)
            group = ImageFieldSourceGroup(class_, field.source)
            default_registry.replace_source_groups(field.spec_id, _one_of(mixin_group, group))
            default_registry.register_source_group(field.spec_id, group)
            groups = _watched.setdefault(class_, {}).setdefault(field.source, [])
            if group not in groups:
                groups.append(group)
            # The mixin's own group of this field now speaks through the mapped class.
            mixin_groups = _watched.get(cls, {}).get(field.source, [])
            if mixin_group in mixin_groups:
                mixin_groups.remove(mixin_group)


def _mapper_configured(mapper: Mapper[t.Any], class_: type) -> None:
    _adopt_mixin_fields(class_)
    _attach_watchers(class_)
    processed = _processed_columns(class_)
    for key in processed:
        attribute = getattr(class_, key)
        if not event.contains(attribute, "set", _on_set):
            event.listen(attribute, "set", _on_set, retval=True)
    if processed and not event.contains(class_, "load", _wrap_loaded):
        event.listen(class_, "load", _wrap_loaded)
        event.listen(class_, "refresh", _wrap_refreshed)


# Mapped classes -> their ProcessedImageField columns: read once, used on every row load.
_processed: weakref.WeakKeyDictionary[type, dict[str, ProcessedColumn]] = (
    weakref.WeakKeyDictionary()
)


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


def _attach_watchers(class_: type) -> None:
    """Listen to deletes and source changes of a mapped class with watched columns."""
    attrs = _watched_attrs_of_class(class_)
    if not attrs:
        return
    if not event.contains(class_, "before_delete", _before_delete):
        event.listen(class_, "before_delete", _before_delete)
    for attr in attrs:
        attribute = getattr(class_, attr, None)
        if attribute is None or not hasattr(attribute, "property"):
            continue  # not a mapped attribute of this class
        # The old value must be loaded when a new one is set, even on an
        # expired row, so the old source can be reported as deleted.
        if not event.contains(attribute, "set", _noop_set):
            event.listen(attribute, "set", _noop_set, active_history=True)


def _watched_attrs_of_class(class_: type) -> set[str]:
    return {attr for cls in class_.__mro__ for attr in _watched.get(cls, {})}


def _noop_set(target: object, value: t.Any, oldvalue: t.Any, initiator: t.Any) -> None:
    """Listener that only asks SQLAlchemy for active history on a source column."""


def _on_set(target: object, value: t.Any, oldvalue: t.Any, initiator: t.Any) -> t.Any:
    if value is None:
        return value
    column_type = _column_type(type(target), initiator.key)
    where = f"the column {type(target).__name__}.{initiator.key}"
    if isinstance(value, str):
        # Refused here on every database, not only by those that check at commit.
        column_type.check_length(value, where=where)
        if isinstance(value, StoredImage):
            return value
        return StoredImage(value, column_type.storage)
    stored = column_type.store(target, value, attname=initiator.key)
    _pending_stored.add(target, column_type.storage or _source_storage(), stored.name)
    return stored


def _source_storage() -> Storage:
    return current_state().source_storage


def _column_type(model: type, key: str) -> ProcessedColumn:
    return _processed_columns(model)[key]


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
    given = {"format": format, "options": options, "autoconvert": autoconvert}
    attrs: dict[str, t.Any] = {key: value for key, value in given.items() if value is not None}
    if processors is not None:
        attrs["processors"] = list(processors)
    spec_class: type[ImageSpec] | None = None
    if spec_id is not None:
        if attrs or spec is not None:
            msg = (
                f"ProcessedImageField(spec_id={spec_id!r}) takes its processors from the "
                f"registered spec; remove {', '.join(attrs) or 'spec'} or drop spec_id."
            )
            raise ImproperlyConfigured(msg)
    else:
        # Only what was given: a ``spec=`` class keeps its own settings otherwise.
        spec_class = type("ProcessedImageFieldSpec", (spec or ImageSpec,), attrs)
    _listen()
    column_kwargs.setdefault("nullable", True)
    info = dict(column_kwargs.pop("info", None) or {})
    info[_INFO_KEY] = ProcessedColumn(spec_class, upload_to, storage, length, spec_id)
    return mapped_column(String(length), info=info, **column_kwargs)


def _is_processor_list(value: object) -> bool:
    return isinstance(value, list | tuple) or hasattr(value, "__iter__")
