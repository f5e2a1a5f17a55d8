"""Registries of generators (specs) and source groups.

There are two layers. :data:`default_registry` is process-wide: the module level
:data:`register` and :data:`unregister` record into it, and every
:class:`~flask_imagekit.ImageKit` sees it. Each extension has its own registry on
top (``imagekit.register``) whose entries win over the default on the same id.
"""

from __future__ import annotations

import threading
import typing as t

from .exceptions import AlreadyRegistered, InvalidArgument, NotRegistered
from .generatorlibrary import Thumbnail
from .protocols import GeneratorFactory, SourceGroup

__all__ = [
    "Register",
    "Registry",
    "Unregister",
    "builtin_registry",
    "default_registry",
    "register",
    "unregister",
]

G = t.TypeVar("G", bound=GeneratorFactory)


class Snapshot(t.NamedTuple):
    """The entries of one registry layer at one moment."""

    generators: dict[str, GeneratorFactory]
    source_groups: dict[str, list[SourceGroup]]


class Registry:
    """Generators by id, and the source groups each id is used with."""

    def __init__(self, parent: Registry | None = None) -> None:
        self.parent = parent
        self._generators: dict[str, GeneratorFactory] = {}
        self._source_groups: dict[str, list[SourceGroup]] = {}
        self._lock = threading.RLock()
        #: Bumped on every change, so callers can cache what they derive from it.
        self.version = 0
        self._group_index: tuple[int, dict[SourceGroup, list[str]] | None] | None = None

    @property
    def total_version(self) -> int:
        """Changes whenever this layer or a layer below changes."""
        parent = self.parent
        return self.version + (parent.total_version if parent is not None else 0)

    # Generators -------------------------------------------------------------

    def register_generator(
        self, id: str, generator: GeneratorFactory, *, replace: bool = False
    ) -> None:
        """Register ``generator`` (a class or factory) under ``id``.

        Registering the same object again is a no-op; another object under a
        taken id raises :class:`AlreadyRegistered` unless ``replace`` is true.
        """
        _check_id(id)
        with self._lock:
            current = self._generators.get(id)
            if current is generator:
                return
            if current is not None and not replace:
                msg = (
                    f"The generator id {id!r} is already registered with {current!r}. "
                    "Choose another id, or unregister the old generator first."
                )
                raise AlreadyRegistered(msg)
            self._generators[id] = generator
            self.version += 1

    def unregister_generator(self, id: str, generator: GeneratorFactory | None = None) -> None:
        """Remove the generator registered under ``id`` (in this layer)."""
        with self._lock:
            current = self._generators.get(id)
            if current is None or (generator is not None and current is not generator):
                msg = f"No generator is registered with id {id!r}{self._known_suffix()}."
                raise NotRegistered(msg)
            del self._generators[id]
            self.version += 1

    def generator_factory(self, id: str) -> GeneratorFactory:
        """Return what is registered under ``id``, looking in the parent layer too."""
        factory = self._lookup(id)
        if factory is None:
            msg = f"No generator is registered with id {id!r}{self._known_suffix()}."
            raise NotRegistered(msg)
        return factory

    def _lookup(self, id: str) -> GeneratorFactory | None:
        factory = self._generators.get(id)
        if factory is None and self.parent is not None:
            return self.parent._lookup(id)
        return factory

    def get_generator(self, id: str, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        """Build the generator registered under ``id`` with ``args`` and ``kwargs``."""
        return self.generator_factory(id)(*args, **kwargs)

    def has_generator(self, id: str) -> bool:
        """Tell whether ``id`` is registered in this layer or its parent."""
        return id in self._generators or (
            self.parent is not None and self.parent.has_generator(id)
        )

    def generator_ids(self) -> list[str]:
        """Every registered generator id, sorted."""
        ids = set(self._generators)
        if self.parent is not None:
            ids.update(self.parent.generator_ids())
        return sorted(ids)

    def _known_suffix(self) -> str:
        known = self.generator_ids()
        return f". Registered ids: {', '.join(known)}" if known else ". None is registered"

    # Source groups ------------------------------------------------------------

    def register_source_group(self, id: str, source_group: SourceGroup) -> None:
        """Use ``source_group``'s sources with the generator ``id``."""
        _check_id(id)
        if not callable(getattr(source_group, "files", None)):
            msg = f"{source_group!r} is not a source group: it needs a files() method."
            raise InvalidArgument(msg)
        with self._lock:
            groups = self._source_groups.setdefault(id, [])
            if not any(group is source_group for group in groups):
                groups.append(source_group)
                self.version += 1

    def unregister_source_group(self, id: str, source_group: SourceGroup) -> None:
        """Stop using ``source_group`` with the generator ``id``."""
        with self._lock:
            groups = self._source_groups.get(id, [])
            kept = [group for group in groups if group is not source_group]
            if len(kept) == len(groups):
                msg = f"{source_group!r} is not registered with the generator id {id!r}."
                raise NotRegistered(msg)
            self._source_groups[id] = kept
            self.version += 1

    def replace_source_groups(self, id: str, predicate: t.Callable[[SourceGroup], bool]) -> None:
        """Drop the source groups of ``id`` that match ``predicate`` (in this layer)."""
        with self._lock:
            groups = self._source_groups.get(id, [])
            self._source_groups[id] = [group for group in groups if not predicate(group)]
            self.version += 1

    def source_groups(self, id: str) -> list[SourceGroup]:
        """The source groups used with generator ``id``, this layer's first."""
        groups = list(self._source_groups.get(id, ()))
        if self.parent is not None:
            groups.extend(g for g in self.parent.source_groups(id) if g not in groups)
        return groups

    def source_group_ids(self) -> list[str]:
        """Every generator id that has at least one source group, sorted."""
        ids = {id for id, groups in self._source_groups.items() if groups}
        if self.parent is not None:
            ids.update(self.parent.source_group_ids())
        return sorted(ids)

    def snapshot(self) -> Snapshot:
        """What this layer holds now, for :meth:`restore` (tests undo their registrations)."""
        with self._lock:
            groups = {id: list(groups) for id, groups in self._source_groups.items()}
            return Snapshot(dict(self._generators), groups)

    def restore(self, snapshot: Snapshot) -> None:
        """Put this layer back as it was when ``snapshot`` was taken."""
        with self._lock:
            self._generators = dict(snapshot.generators)
            self._source_groups = {
                id: list(groups) for id, groups in snapshot.source_groups.items()
            }
            self.version += 1

    def generator_ids_for_source_group(self, source_group: SourceGroup) -> list[str]:
        """The generator ids ``source_group`` is registered with (indexed, so it is cheap)."""
        version = self.total_version
        index = self._group_index
        if index is None or index[0] != version:
            index = self._group_index = (version, self._index_groups())
        ids_by_group = index[1]
        try:
            if ids_by_group is not None:
                return list(ids_by_group.get(source_group, ()))
        except TypeError:  # an unhashable group
            pass
        return [
            id
            for id in self.source_group_ids()
            if any(group == source_group for group in self.source_groups(id))
        ]

    def _index_groups(self) -> dict[SourceGroup, list[str]] | None:
        index: dict[SourceGroup, list[str]] = {}
        try:
            for id in self.source_group_ids():
                for group in self.source_groups(id):
                    index.setdefault(group, []).append(id)
        except TypeError:  # an unhashable group: look them up one by one
            return None
        return index


def _check_id(id: object) -> None:
    if not isinstance(id, str) or not id or any(not part for part in id.split(":")):
        msg = f"Invalid generator id {id!r}: use non-empty colon-separated segments."
        raise InvalidArgument(msg)


class Register:
    """Records generators and source groups into a registry.

    ``register.generator(id, Spec)`` or, as a decorator, ``@register.generator(id)``;
    ``register.source_group(id, group)``.
    """

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    @t.overload
    def generator(self, id: str, generator: None = None) -> t.Callable[[G], G]: ...

    @t.overload
    def generator(self, id: str, generator: G) -> G: ...

    def generator(self, id: str, generator: t.Any = None) -> t.Any:
        """Register a generator class or factory under ``id``; usable as a decorator."""
        if generator is None:

            def decorator(obj: G) -> G:
                self._registry.register_generator(id, obj)
                return obj

            return decorator
        self._registry.register_generator(id, generator)
        return generator

    def source_group(self, id: str, source_group: SourceGroup) -> None:
        """Use the sources of ``source_group`` with the generator ``id``."""
        self._registry.register_source_group(id, source_group)


class Unregister:
    """Removes generators and source groups from a registry."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def generator(self, id: str, generator: GeneratorFactory | None = None) -> None:
        """Unregister the generator under ``id``."""
        self._registry.unregister_generator(id, generator)

    def source_group(self, id: str, source_group: SourceGroup) -> None:
        """Stop using ``source_group`` with the generator ``id``."""
        self._registry.unregister_source_group(id, source_group)


#: Generators flask_imagekit provides (``imagekit:thumbnail``); any layer above wins.
builtin_registry = Registry()
builtin_registry.register_generator("imagekit:thumbnail", Thumbnail)
#: The process-wide registry every extension includes.
default_registry = Registry(parent=builtin_registry)
#: Register into the process-wide default registry.
register = Register(default_registry)
#: Unregister from the process-wide default registry.
unregister = Unregister(default_registry)
