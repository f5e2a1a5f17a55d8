"""Session listeners: source signals after commit, stored uploads removed on rollback.

:func:`listen` attaches them to one Flask-SQLAlchemy ``db.session``, as
Flask-SQLAlchemy's own modification tracking is attached: sessions made
elsewhere (a plain ``Session(engine)``) send nothing.

Source events and stored uploads are kept per transaction: a savepoint that
rolls back drops only its own share, a released savepoint hands its share to
its parent, and only the share of a committed root transaction is sent, once
the transaction is over (when rows can be loaded again).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import typing as t
import weakref

from sqlalchemy import event, inspect
from sqlalchemy.orm import Mapper, Session, object_session

from ..exceptions import ImproperlyConfigured
from ..globals import current_state_or_none
from ..signals import source_changed, source_created, source_deleted
from .stored import column_source
from .watching import WatchIndex, listen_mappers, watch_index

if t.TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy

    from ..sources import SourceFile
    from ..specs.sourcegroups import ImageFieldSourceGroup
    from ..storage import Storage

__all__ = ["PendingUploads", "listen", "pending_uploads"]

logger = logging.getLogger(__name__)

_SHARES_KEY = "imagekit_shares"
_READY_KEY = "imagekit_ready_events"
# Set on the sessions of a listened ``db.session`` when they begin a transaction.
_LISTENED_KEY = "imagekit_listened"
_SIGNALS = {"created": source_created, "changed": source_changed, "deleted": source_deleted}

_listen_lock = threading.Lock()


def listen(db: SQLAlchemy) -> None:
    """Send source signals and clean up stored uploads for ``db.session`` (idempotent).

    ``db`` is a Flask-SQLAlchemy extension; every app it serves is covered. Only
    the sessions ``db.session`` makes are watched.
    """
    session = getattr(db, "session", None)
    if session is None:
        msg = f"{db!r} is not a Flask-SQLAlchemy extension; pass db=SQLAlchemy(...)."
        raise ImproperlyConfigured(msg)
    with _listen_lock:
        listen_mappers()
        if event.contains(session, "after_flush", _after_flush):
            return
        event.listen(session, "after_begin", _after_begin)
        event.listen(session, "before_flush", _before_flush)
        event.listen(session, "after_flush", _after_flush)
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_rollback", _after_rollback)
        event.listen(session, "after_transaction_end", _after_transaction_end)


# Which columns are watched ---------------------------------------------------------


def _watch_index() -> WatchIndex | None:
    """The current app's watched columns, listened to; None outside an app context."""
    state = current_state_or_none()
    if state is None:
        return None
    index = watch_index(state.registry)
    index.arm(_attach_watchers)
    return index


def _attach_watchers(class_: type, attrs: t.Collection[str]) -> None:
    """Listen to deletes and source changes of a mapped class with watched columns."""
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


def _noop_set(target: object, value: t.Any, oldvalue: t.Any, initiator: t.Any) -> None:
    """Listener that only asks SQLAlchemy for active history on a source column."""


# Per-transaction shares ----------------------------------------------------------------


@dataclasses.dataclass
class _Share:
    events: list[tuple[str, ImageFieldSourceGroup, SourceFile]] = dataclasses.field(
        default_factory=list
    )
    stored: list[tuple[t.Any, str]] = dataclasses.field(default_factory=list)


class PendingUploads:
    """Files stored by assignments, until the session they are flushed in ends."""

    def __init__(self) -> None:
        self._by_instance: weakref.WeakKeyDictionary[object, list[tuple[t.Any, str]]] = (
            weakref.WeakKeyDictionary()
        )

    def add(self, instance: object, storage: t.Any, name: str) -> None:
        """Remember that ``name`` was stored in ``storage`` for ``instance``."""
        self._by_instance.setdefault(instance, []).append((storage, name))

    def pop_for(self, session: Session) -> list[tuple[t.Any, str]]:
        """Forget and return the files stored for the instances in ``session``."""
        stored: list[tuple[t.Any, str]] = []
        for instance in list(self._by_instance):
            if inspect(instance).session is session:
                stored.extend(self._by_instance.pop(instance, []))
        return stored


#: Uploads stored by ProcessedImageField assignments, not yet flushed.
pending_uploads = PendingUploads()


def _shares(session: Session) -> dict[t.Any, _Share]:
    shares: dict[t.Any, _Share] = session.info.setdefault(_SHARES_KEY, {})
    return shares


def _current_share(session: Session) -> _Share:
    transaction = session.get_nested_transaction() or session.get_transaction()
    return _shares(session).setdefault(transaction, _Share())


# Listeners ---------------------------------------------------------------------------------


def _after_begin(session: Session, transaction: t.Any, connection: t.Any) -> None:
    # Mapper events fire for every session: this marks the ones of a listened db.
    session.info[_LISTENED_KEY] = True
    # Listen to the watched classes before rows are changed in this transaction.
    _watch_index()


def _before_flush(session: Session, flush_context: t.Any, instances: t.Any) -> None:
    # Before rows are deleted: a group may have been registered since the transaction began.
    _watch_index()


def _after_flush(session: Session, flush_context: t.Any) -> None:
    index = _watch_index()
    if index is None:
        return
    share = _current_share(session)
    for instance in session.new:
        for attr, groups in index.watched(type(instance)).items():
            created = column_source(instance, attr, getattr(instance, attr, None))
            if created is not None:
                share.events.extend(("created", group, created) for group in groups)
    for instance in session.dirty:
        for attr, groups in index.watched(type(instance)).items():
            history = inspect(instance).attrs[attr].history
            if not history.has_changes():
                continue
            new = column_source(instance, attr, history.added[0] if history.added else None)
            old = column_source(instance, attr, history.deleted[0] if history.deleted else None)
            if (new and new.name) == (old and old.name):
                continue
            for group in groups:
                if new is not None:
                    share.events.append(("changed", group, new))
                if old is not None:
                    share.events.append(("deleted", group, old))
    share.stored.extend(pending_uploads.pop_for(session))


def _before_delete(mapper: Mapper[t.Any], connection: t.Any, instance: object) -> None:
    """Record the sources of deleted rows (cascades included) while they can be read."""
    session = object_session(instance)
    if session is None or not session.info.get(_LISTENED_KEY):
        return
    index = _watch_index()
    if index is None:
        return
    share = _current_share(session)
    for attr, groups in index.watched(type(instance)).items():
        history = inspect(instance).attrs[attr].history
        if history.deleted or history.unchanged:
            committed = (history.deleted or history.unchanged)[0]
        else:
            committed = getattr(instance, attr, None)
        deleted = column_source(instance, attr, committed)
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
        dropped.append(_Share(stored=pending_uploads.pop_for(session)))
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
    if not events or current_state_or_none() is None:
        return
    for kind, group, source in events:
        try:
            _SIGNALS[kind].send(group, source=source)
        except Exception:
            logger.exception("flask_imagekit: a receiver of source_%s for %r failed", kind, source)


def _delete_quietly(storage: Storage, name: str) -> None:
    try:
        storage.delete(name)
    except Exception:
        logger.warning("flask_imagekit: could not delete %r after a rollback", name, exc_info=True)
