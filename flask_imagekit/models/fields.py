"""``ImageSpecField``: a model attribute that is the cache file of a spec.

``profile.avatar_thumbnail`` is the cache file of a spec applied to the
``avatar`` column. Defining the field registers its spec (unless it names a
registered one) and an :class:`ImageFieldSourceGroup` of the column, so the CLI
lists its sources and the session listeners announce their changes.
"""

from __future__ import annotations

import threading
import typing as t
import weakref

from sqlalchemy import event, inspect
from sqlalchemy.orm import Mapper

from ..cachefiles import ImageCacheFile
from ..exceptions import ImproperlyConfigured
from ..globals import current_state_or_none
from ..registry import default_registry
from ..specs import ImageSpec
from ..specs.fieldspecs import spec_class as make_spec_class
from ..specs.sourcegroups import ImageFieldSourceGroup
from .stored import column_source

__all__ = ["ImageSpecField"]

# Classes -> the ImageSpecFields declared on them (for fields declared on mixins).
_fields: weakref.WeakKeyDictionary[type, list[ImageSpecField]] = weakref.WeakKeyDictionary()
_listen_lock = threading.Lock()


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
        settings = {
            "autoconvert": autoconvert,
            "cachefile_storage": cachefile_storage,
            "cachefile_backend": cachefile_backend,
            "cachefile_strategy": cachefile_strategy,
        }
        shorthand = {"processors": processors, "format": format, "options": options, **settings}
        given = [key for key, value in shorthand.items() if value is not None]
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
            self.spec_class = make_spec_class(
                processors, format, options, base=spec, name="ImageSpecFieldSpec", **settings
            )
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
        group = ImageFieldSourceGroup(owner, self.source)
        default_registry.replace_source_groups(self.spec_id, lambda other: other == group)
        default_registry.register_source_group(self.spec_id, group)
        _fields.setdefault(owner, []).append(self)
        _listen()

    @t.overload
    def __get__(self, instance: None, owner: type) -> ImageSpecField: ...

    @t.overload
    def __get__(self, instance: object, owner: type) -> ImageCacheFile: ...

    def __get__(self, instance: object | None, owner: type) -> ImageSpecField | ImageCacheFile:
        if instance is None:
            return self
        source = column_source(instance, self.source, getattr(instance, self.source))
        assert self.spec_id is not None
        state = current_state_or_none()
        if state is not None:
            return state.cachefile(self.spec_id, source=source)
        generator = default_registry.get_generator(self.spec_id, source=source)
        return ImageCacheFile(generator, generator_id=self.spec_id)

    def __repr__(self) -> str:
        return f"<ImageSpecField {self.spec_id!r} source={self.source!r}>"


# Fields declared on mixins ---------------------------------------------------------


def _listen() -> None:
    """Adopt mixin fields in every class mapped from now on (once per process)."""
    with _listen_lock:
        if not event.contains(Mapper, "mapper_configured", _adopt_mixin_fields):
            event.listen(Mapper, "mapper_configured", _adopt_mixin_fields)


def _one_of(*groups: ImageFieldSourceGroup) -> t.Callable[[t.Any], bool]:
    return lambda other: any(other == group for group in groups)


def _adopt_mixin_fields(mapper: Mapper[t.Any], class_: type) -> None:
    """Give fields declared on an unmapped mixin a source group of the mapped class.

    Only the outermost mapped class that inherits the mixin gets the group: its
    query and its listeners cover the rows of its mapped subclasses, so a row
    is listed and announced once. The mixin's own group is dropped: the mapped
    class's group speaks for it.
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
