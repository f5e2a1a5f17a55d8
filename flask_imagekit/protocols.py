"""The shapes of the pluggable parts: generators, backends, strategies, source groups.

Each is a :class:`typing.Protocol`: any object with these methods works, as in
django-imagekit, and type checkers can tell when one does not.
"""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    from .cachefiles import ImageCacheFile

__all__ = [
    "CacheFileBackend",
    "CacheFileStrategy",
    "Generator",
    "GeneratorFactory",
    "Namer",
    "SourceGroup",
]


@t.runtime_checkable
class Generator(t.Protocol):
    """Anything that makes an image: ``generate()`` returns a binary file object.

    Specs are generators bound to a source; they may also give ``cachefile_name``,
    ``cachefile_storage``, ``cachefile_backend`` and ``cachefile_strategy``.
    """

    def generate(self) -> t.IO[bytes]:
        """Return the generated image."""
        ...


#: A function giving a generator's cache file its name.
Namer = t.Callable[[t.Any], str]

#: What is registered under a generator id: a spec class, or any callable making a generator.
GeneratorFactory = t.Callable[..., Generator]


@t.runtime_checkable
class CacheFileBackend(t.Protocol):
    """*How* cache files are generated, and what is known of them."""

    def generate(self, file: ImageCacheFile, force: bool = False) -> tuple[int, int] | None:
        """Make sure ``file`` exists (regenerate if ``force``); its size when known."""
        ...

    def exists(self, file: ImageCacheFile) -> bool:
        """Whether ``file`` exists."""
        ...

    def dimensions(self, file: ImageCacheFile) -> tuple[int, int] | None:
        """The width and height of ``file`` when the backend knows them."""
        ...

    def remember_dimensions(self, file: ImageCacheFile, size: tuple[int, int]) -> None:
        """Record the width and height of an existing ``file``."""
        ...

    def forget(self, file: ImageCacheFile) -> None:
        """Drop what is known of ``file`` (after it was deleted)."""
        ...


class CacheFileStrategy(t.Protocol):
    """*When* cache files are generated.

    A strategy has any of the callbacks ``on_existence_required``,
    ``on_content_required``, ``on_source_created``, ``on_source_changed``,
    ``on_source_deleted`` and ``on_source_saved``, each taking the cache file,
    and optionally ``should_verify_existence(file) -> bool``. A strategy that makes
    files when they are asked for (:class:`~flask_imagekit.cachefiles.strategies.OnRequest`)
    also has ``file_url(file) -> str`` (the URL pages show), ``expected_size(file)``
    (the size before the file exists, without generating it) and a true
    ``generates_on_request`` attribute. None is required, so the protocol names
    none: :func:`~flask_imagekit.cachefiles.strategies.resolve_strategy` checks that
    at least one is there.
    """


@t.runtime_checkable
class SourceGroup(t.Protocol):
    """Sources that go with a generator id: ``files()`` yields them."""

    def files(self) -> t.Iterable[t.Any]:
        """Yield every source of the group."""
        ...
