"""One app's flask_imagekit state: its settings, registry and runtime caches.

:class:`AppState` is built once per app by :class:`~flask_imagekit.ImageKit`
and found through :func:`flask_imagekit.globals.current_state`. Besides the
validated settings it holds the registry, the state cache (opened on first use),
the remembered cache files of pages and the warning windows of failing images.
"""

from __future__ import annotations

import dataclasses
import functools
import typing as t

from .cachefiles import ImageCacheFile
from .cachefiles.html import WarningWindows
from .config import Settings, cachelib_backend
from .filememo import FileMemo
from .specs import BaseImageSpec
from .specs.responsive import candidate_spec
from .statecache import StateCache

if t.TYPE_CHECKING:
    from cachelib import BaseCache

    from .registry import Registry

__all__ = ["AppState"]


@dataclasses.dataclass(frozen=True, eq=False)
class AppState(Settings):
    """Everything flask_imagekit resolved for one app, and its runtime caches."""

    registry: Registry = dataclasses.field(kw_only=True)
    #: The Flask-SQLAlchemy extension given to ``init_app``, if any.
    db: t.Any = dataclasses.field(default=None, kw_only=True)
    file_memo: FileMemo = dataclasses.field(default_factory=FileMemo, kw_only=True)
    warnings: WarningWindows = dataclasses.field(default_factory=WarningWindows, kw_only=True)

    @classmethod
    def build(cls, settings: Settings, registry: Registry, db: t.Any = None) -> AppState:
        """The state of an app with ``settings`` and ``registry``."""
        values = {
            field.name: getattr(settings, field.name) for field in dataclasses.fields(settings)
        }
        return cls(**values, registry=registry, db=db)

    #: Backends and strategies that specs name by class or dotted path: one instance each.
    instances: dict[t.Any, t.Any] = dataclasses.field(default_factory=dict, kw_only=True)

    def instance_of(self, value: t.Any, resolve: t.Callable[[t.Any], t.Any]) -> t.Any:
        """``resolve(value)``, created once per app when ``value`` is a class or a dotted path.

        A backend holds connections (an RQ backend, its Redis client), so a spec's
        ``cachefile_backend = RQ`` must not make one per cache file.
        """
        if not isinstance(value, str | type):
            return resolve(value)
        instance = self.instances.get(value)
        if instance is None:
            instance = self.instances.setdefault(value, resolve(value))
        return instance

    @functools.cached_property
    def state_cache(self) -> BaseCache:
        """The cachelib cache that holds cache file states (resolved on first use)."""
        return cachelib_backend(self.cache_source)

    @functools.cached_property
    def states(self) -> StateCache:
        """The state cache as backends use it: atomic locks and a local tier."""
        return StateCache(self.state_cache, self.local_state_timeout)

    @property
    def states_epoch(self) -> int:
        """The epoch of :attr:`states`, without opening the state cache.

        A state cache not opened yet has had nothing written through it: epoch 0.
        """
        states: StateCache | None = self.__dict__.get("states")
        return states.epoch if states is not None else 0

    def cachefile(
        self,
        generator_id: str,
        *,
        html_attrs: t.Mapping[str, t.Any] | None = None,
        candidate: tuple[int | None, str | None] | None = None,
        **generator_kwargs: t.Any,
    ) -> ImageCacheFile:
        """The cache file of the generator registered as ``generator_id``.

        The one way from a registry id to a cache file: templates, model fields,
        source signals, the CLI and workers all come through here. The generator
        is built with ``generator_kwargs``; ``candidate``, a ``(width, format)``
        pair, makes the file the responsive candidate of that generator's output.
        """
        generator = self.registry.get_generator(generator_id, **generator_kwargs)
        if isinstance(generator, BaseImageSpec) and generator.app_state is None:
            generator.app_state = self  # the spec reads its settings from here, not the app
        if candidate is not None:
            generator = candidate_spec(generator, *candidate)
        extra = {name: value for name, value in generator_kwargs.items() if name != "source"}
        return ImageCacheFile(
            generator,
            html_attrs=html_attrs,
            generator_id=generator_id,
            generator_kwargs=extra,
            candidate=candidate,
            app_state=self,
        )
