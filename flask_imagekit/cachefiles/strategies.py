"""Cache file strategies: *when* a cache file is generated.

A strategy is any object with some of these callbacks, each taking the cache
file: ``on_existence_required``, ``on_content_required``, ``on_source_created``,
``on_source_changed``, ``on_source_deleted``, ``on_source_saved`` (created or
changed), and optionally ``should_verify_existence(file) -> bool``. A dict of
such callbacks or a callable returning a strategy works too.

A strategy may also say how a file is shown before it exists:
``file_url(file) -> str`` (the URL pages show), ``expected_size(file)`` (its size,
see :func:`~flask_imagekit.cachefiles.sizing.expected_size`) and
``generates_on_request = True`` (``bool()`` is true without asking anything), as
:class:`OnRequest` does.

Which to choose:

==========  ===========================  ==============================  ======================
strategy    a page showing new images    files are made                  needs
==========  ===========================  ==============================  ======================
JustInTime  waits for each generation    while the page renders          nothing
Optimistic  instant; broken until made   on source save, or by the CLI   model fields or the CLI
OnRequest   instant, sized               at a browser's first GET        SECRET_KEY, media route
==========  ===========================  ==============================  ======================
"""

from __future__ import annotations

import typing as t

from ..exceptions import ImproperlyConfigured
from ..importing import resolve
from .backends.states import for_page
from .onrequest import on_request_url
from .sizing import SizeUnknown, expected_size

if t.TYPE_CHECKING:
    from . import ImageCacheFile

__all__ = [
    "CALLBACKS",
    "DictStrategy",
    "JustInTime",
    "OnRequest",
    "Optimistic",
    "SizeUnknown",
    "resolve_strategy",
]

CALLBACKS = (
    "on_existence_required",
    "on_content_required",
    "on_source_created",
    "on_source_changed",
    "on_source_deleted",
    "on_source_saved",
)


class JustInTime:
    """Generate a file when its existence or content is needed (the default)."""

    def on_existence_required(self, file: ImageCacheFile) -> None:
        """Generate ``file`` unless its state says it exists."""
        file.generate()

    def on_content_required(self, file: ImageCacheFile) -> None:
        """Generate ``file`` unless its state says it exists."""
        file.generate()

    def __repr__(self) -> str:
        return "JustInTime()"


class Optimistic:
    """Generate a file when its source is saved; assume it exists on access.

    URLs and truth tests of files cost no storage call at all: generation
    happens when a source group reports a created or changed source, or when
    ``flask imagekit generate`` runs.
    """

    def on_source_saved(self, file: ImageCacheFile) -> None:
        """Generate ``file`` now that its source was created or changed."""
        file.generate()

    def should_verify_existence(self, file: ImageCacheFile) -> bool:
        """Never check: the file is assumed to exist."""
        return False

    def __repr__(self) -> str:
        return "Optimistic()"


class OnRequest:
    """Generate a file when a browser first asks for it; pages never wait.

    ``url``, ``bool()`` and rendering do no storage and no state cache I/O for the
    URL: a file is shown at its URL plus a signed token (see
    :mod:`flask_imagekit.cachefiles.onrequest`), and the media route makes it on
    the first GET, under the backend's lock (inline, whatever the backend: the
    browser is waiting), then serves it, or redirects to it in a remote storage.
    ``width``/``height`` come from the state, or before the file exists from its
    source's header; they are left out of the ``<img>`` when they cannot be
    foreseen. Reading the file's bytes (``open()``, ``read()``), or asking for a
    size that cannot be foreseen (``file.width``), generates it now.

    Files a token cannot name (an upload, a path, a generator not built by its
    registry id) are generated just in time, as :class:`JustInTime` does. Needs
    the app's ``SECRET_KEY`` and the media route (``IMAGEKIT_SERVE_MEDIA``).
    """

    #: Files count as available: they are made when asked for.
    generates_on_request = True

    def file_url(self, file: ImageCacheFile) -> str:
        """The URL of ``file``, with its token; a file a token cannot name is made now."""
        url = on_request_url(file)
        if url is None:
            with for_page():
                file.generate()
            url = file.storage.url(file.name)
        return url

    def expected_size(self, file: ImageCacheFile) -> tuple[int, int] | None:
        """The size of ``file`` without generating it (see ``sizing.expected_size``)."""
        return expected_size(file)

    def on_content_required(self, file: ImageCacheFile) -> None:
        """Generate ``file`` unless its state says it exists: its bytes are needed now."""
        file.generate()

    def should_verify_existence(self, file: ImageCacheFile) -> bool:
        """Never check: the file is made when it is asked for."""
        return False

    def __repr__(self) -> str:
        return "OnRequest()"


class DictStrategy:
    """A strategy made of a dict of callbacks, as django-imagekit accepts."""

    def __init__(self, callbacks: t.Mapping[str, t.Callable[..., t.Any]]) -> None:
        unknown = set(callbacks) - set(CALLBACKS) - {"should_verify_existence"}
        if unknown:
            msg = (
                f"Unknown strategy callbacks {sorted(unknown)}; "
                f"use some of {', '.join(CALLBACKS)}."
            )
            raise ImproperlyConfigured(msg)
        for name, callback in callbacks.items():
            setattr(self, name, callback)
        self._callbacks = dict(callbacks)

    def __repr__(self) -> str:
        return f"DictStrategy({sorted(self._callbacks)})"


def resolve_strategy(value: t.Any, *, key: str = "cachefile_strategy") -> t.Any:
    """Turn a strategy setting (object, class, callable, dict, dotted path) into an object."""
    value = resolve(key, value)
    if isinstance(value, dict):
        try:
            return DictStrategy(value)
        except ImproperlyConfigured as exc:
            msg = f"{key}: {exc}"
            raise ImproperlyConfigured(msg) from exc
    if isinstance(value, type) or (callable(value) and not _looks_like_strategy(value)):
        try:
            value = value()
        except Exception as exc:
            msg = f"{key}: could not create a strategy from {value!r}: {exc}."
            raise ImproperlyConfigured(msg) from exc
        return resolve_strategy(value, key=key) if isinstance(value, dict) else value
    if value is None or not _looks_like_strategy(value):
        msg = (
            f"{key} = {value!r} is not a cache file strategy: give JustInTime, Optimistic, "
            "OnRequest, a dict of callbacks, or an object with some of their callbacks."
        )
        raise ImproperlyConfigured(msg)
    return value


def _looks_like_strategy(value: object) -> bool:
    return any(hasattr(value, name) for name in (*CALLBACKS, "should_verify_existence"))


def call_strategy(strategy: t.Any, callback: str, file: ImageCacheFile) -> None:
    """Call ``strategy.<callback>(file)`` if the strategy defines it."""
    method = getattr(strategy, callback, None)
    if method is not None:
        method(file)
