"""Which columns send source signals: the column source groups of an app's registry.

An :class:`~flask_imagekit.specs.sourcegroups.ImageFieldSourceGroup` registered
with a generator id (an ``ImageSpecField`` registers its own) watches its column
on every mapped model that inherits it. The session listeners ask
:func:`watch_index` which columns of a row's class are watched; the answer is
read from the app's registry and indexed by class, and built again only when
the registry changes or SQLAlchemy maps another class.
"""

from __future__ import annotations

import threading
import typing as t
import weakref

from sqlalchemy import event
from sqlalchemy.orm import Mapper

from ..specs.sourcegroups import ImageFieldSourceGroup, mapped_descendants

if t.TYPE_CHECKING:
    from ..registry import Registry

__all__ = ["WatchIndex", "listen_mappers", "watch_index"]

#: A column's source groups, by the column's attribute name.
Watched = dict[str, list[ImageFieldSourceGroup]]


class WatchIndex:
    """The watched columns of one version of a registry, by model class."""

    def __init__(self, version: t.Hashable, groups: t.Iterable[ImageFieldSourceGroup]) -> None:
        #: What the index was built from; another version needs another index.
        self.version = version
        self._by_model: dict[type, Watched] = {}
        for group in groups:
            known = self._by_model.setdefault(group.model_class, {}).setdefault(
                group.image_field, []
            )
            if group not in known:
                known.append(group)
        self._by_class: dict[type, Watched] = {}
        self._armed = False
        self._lock = threading.Lock()

    def watched(self, cls: type) -> Watched:
        """The watched columns of instances of ``cls`` (inherited ones included).

        Groups of base classes come first; a group equal to one already listed
        (the same model and column) is listed once.
        """
        found = self._by_class.get(cls)
        if found is None:
            found = {}
            for base in reversed(cls.__mro__):
                for attr, groups in self._by_model.get(base, {}).items():
                    known = found.setdefault(attr, [])
                    known.extend(group for group in groups if group not in known)
            self._by_class[cls] = found
        return found

    def arm(self, attach: t.Callable[[type, t.Collection[str]], None]) -> None:
        """Call ``attach(mapped class, watched attribute names)`` once per mapped class.

        Only the first call does anything: an index is armed once.
        """
        if self._armed:
            return
        with self._lock:
            if self._armed:
                return
            classes: dict[type, None] = {}
            for model in self._by_model:
                classes.update(dict.fromkeys(mapped_descendants(model)))
            for cls in classes:
                attrs = self.watched(cls)
                if attrs:
                    attach(cls, list(attrs))
            self._armed = True


class _MapperCount:
    """How many mappers SQLAlchemy has configured (classes mapped since an index)."""

    value = 0


_indexes: weakref.WeakKeyDictionary[Registry, WatchIndex] = weakref.WeakKeyDictionary()


def watch_index(registry: Registry) -> WatchIndex:
    """The watched columns of ``registry``'s source groups (its parent's included)."""
    version = (registry.total_version, _MapperCount.value)
    index = _indexes.get(registry)
    if index is None or index.version != version:
        groups = [
            group
            for generator_id in registry.source_group_ids()
            for group in registry.source_groups(generator_id)
            if isinstance(group, ImageFieldSourceGroup)
        ]
        index = _indexes[registry] = WatchIndex(version, groups)
    return index


def _count_mapper(mapper: Mapper[t.Any], class_: type) -> None:
    _MapperCount.value += 1


def listen_mappers() -> None:
    """Notice classes mapped from now on, so the next index covers them (idempotent)."""
    if not event.contains(Mapper, "mapper_configured", _count_mapper):
        event.listen(Mapper, "mapper_configured", _count_mapper)
