"""The pixel size of a cache file: from its state, its strategy, its source's header, or
the file itself.

A page needs ``width`` and ``height``. The backend's state usually knows them (a
generation records them); a strategy may know them without the file
(``expected_size``: OnRequest foresees them from the source's header); otherwise
the strategy may generate the file, and the size is read from the file's header
once and remembered in its state.

**Foreseeing a size.** :func:`foresee` runs the size of the source, read from its
header (its size and EXIF orientation, no pixels decoded), through the processors'
size arithmetic (their ``cost()``). What it finds, with the source's upright size, is
remembered under a key of its own (``<prefix>size:<name>``, for a day), never in the
file's state: the state keeps saying the file is not there, so JustInTime, ``flask
imagekit generate`` and the media route still make it. When a processor's output
cannot be foreseen (no ``cost()``, or one that depends on the pixels), the size is
unknown until the file exists (:class:`SizeUnknown`). A source's header is read once
a minute at most in a process, however many files of it a page shows.
"""

from __future__ import annotations

import threading
import time
import typing as t
import weakref

from ..exceptions import ImageKitError, MissingCacheFile
from ..imaging import exif_orientation, open_image
from ..processors.base import chain_cost
from ..processors.orientation import upright_size
from ..specs import ImageSpec
from .backends.states import CacheFileState, state_key, unreachable_errors
from .output import read_size

if t.TYPE_CHECKING:
    from ..sources import SourceFile
    from ..state import AppState
    from ..statecache import StateCache
    from .file import ImageCacheFile

__all__ = [
    "EXPECTED_SIZE_TIMEOUT",
    "Foreseen",
    "SizeUnknown",
    "expected_size",
    "foresee",
    "foresee_spec",
    "measure",
    "source_size",
]

#: Seconds a foreseen size is remembered; the file is usually made long before.
EXPECTED_SIZE_TIMEOUT = 24 * 3600


class SizeUnknown(MissingCacheFile):
    """The size of a file that does not exist yet cannot be foreseen (it is known once made)."""


class Foreseen(t.NamedTuple):
    """What a source's header tells of a spec's output before it is made."""

    #: The output's width and height; None when a processor's cannot be foreseen.
    size: tuple[int, int] | None
    #: The source's width and height, upright (as the spec sees it); None if unknown.
    source: tuple[int, int] | None


def measure(file: ImageCacheFile, *, generate: bool = True) -> tuple[int, int]:
    """The ``(width, height)`` of ``file``; the strategy may generate it first.

    A size the strategy cannot foresee (:class:`SizeUnknown`) is read from the file,
    which the strategy makes when its content is required, unless ``generate`` is
    false (rendering an ``<img>``, which then leaves the size out). Raises
    :class:`~flask_imagekit.exceptions.MissingCacheFile` when the file is not there
    yet (a worker still has to make it), and what the strategy raises.
    """
    expected = getattr(file.cachefile_strategy, "expected_size", None)
    if expected is not None:
        # Known without generating; None: the state says the file exists, read it.
        try:
            size = expected(file)
        except SizeUnknown:
            if not generate:
                raise
            size = None  # asked for explicitly: its content is required, as below
        if size is not None:
            return t.cast(tuple[int, int], size)
    file._require_content()
    size = file._size  # the strategy may have just generated it
    if size is not None:
        return size
    backend = file.cachefile_backend
    size = backend.dimensions(file)
    if size is None:
        try:
            size = _stored_size(file)
        except FileNotFoundError:
            # Assumed to exist (Optimistic) but missing: make it now.
            file.generate()
            try:
                size = file._size or _stored_size(file)
            except FileNotFoundError as exc:
                msg = (
                    f"{file.name!r} does not exist yet (its backend {backend!r} may "
                    "still be generating it), so its size is unknown."
                )
                raise MissingCacheFile(msg) from exc
        backend.remember_dimensions(file, size)
    return t.cast(tuple[int, int], size)


def _stored_size(file: ImageCacheFile) -> tuple[int, int]:
    with file.storage.open(file.name, "rb") as fp:
        return read_size(fp)


# Before the file exists ---------------------------------------------------------------------


def expected_size(file: ImageCacheFile) -> tuple[int, int] | None:
    """The size of ``file`` from its state, else foreseen from its source (see above).

    None when the state says the file exists without telling its size (read it
    from the file). Raises the remembered error of a failed generation,
    :class:`~flask_imagekit.exceptions.SourceError` for a source that cannot be
    opened, and :class:`SizeUnknown` when the size cannot be foreseen.
    """
    lookup = getattr(file.cachefile_backend, "lookup", None)
    if lookup is not None:
        found = lookup(file)
        if found.size is not None:
            return t.cast(tuple[int, int], found.size)
        if found.error is not None:
            raise found.error
        if found.state is CacheFileState.EXISTS:
            return None
    size = foresee(file).size
    if size is None:
        msg = (
            f"The size of {file.name!r} is known once the file is made (a processor of its "
            "spec has no cost(), so its output size cannot be foreseen)."
        )
        raise SizeUnknown(msg)
    return size


def foresee(file: ImageCacheFile) -> Foreseen:
    """The output size of ``file``'s generator and its source's size, remembered for a day.

    Raises :class:`~flask_imagekit.exceptions.SourceError` for a source that
    cannot be opened.
    """
    state = file.app_state
    now = time.monotonic()
    with _lock:
        kept = _foreseen.setdefault(state, {}).get(file.name)
    if kept is not None and kept[0] > now:
        return kept[1]
    states_of = getattr(file.cachefile_backend, "state_cache", None)
    states: StateCache | None = states_of(file) if callable(states_of) else None
    key = state_key(state.cache_prefix, "size:", file.name)
    found = _parse(_read(states, key))
    if found is None:
        found = foresee_spec(file.generator, state)
        if found.source is not None:
            _write(states, key, f"{_text(found.size)} {_text(found.source)}")
    if found.source is not None:
        # A name is made of the source and the spec: what is foreseen of it never changes.
        _keep(_foreseen, state, file.name, (now + _KEPT_SECONDS, found))
    return found


def foresee_spec(generator: t.Any, state: AppState) -> Foreseen:
    """What the header of ``generator``'s source tells of its output (nothing remembered).

    Raises :class:`~flask_imagekit.exceptions.SourceError` for a source that
    cannot be opened.
    """
    if not isinstance(generator, ImageSpec) or not generator.source:
        return Foreseen(None, None)
    size, mode, orientation = _header(generator.source, state)
    if generator.auto_orient:
        size = upright_size(size, orientation)
    cost = chain_cost(list(generator.processors or ()), size, mode)
    return Foreseen(None if cost.guessed else cost.size, size)


def source_size(generator: t.Any, state: AppState) -> tuple[int, int] | None:
    """The upright size of ``generator``'s source from its header; None if it cannot tell."""
    try:
        return foresee_spec(generator, state).source
    except ImageKitError:
        return None


def _text(size: tuple[int, int] | None) -> str:
    return "?" if size is None else f"{size[0]}x{size[1]}"


def _size(text: str) -> tuple[int, int] | None:
    width, _, height = text.partition("x")
    return (int(width), int(height)) if width.isdigit() and height.isdigit() else None


def _parse(value: t.Any) -> Foreseen | None:
    """A remembered ``"WxH SxT"`` (``?`` for an output that cannot be foreseen)."""
    if not isinstance(value, str):
        return None
    output, _, source = value.partition(" ")
    upright = _size(source)
    if upright is None or (output != "?" and _size(output) is None):
        return None
    return Foreseen(_size(output), upright)


# The candidates of one picture share a source: its header is read once for all of
# them, and what is foreseen of a file is kept in the process too (for a minute each).
_KEPT_SECONDS = 60.0
_MAX_KEPT = 4096
_Header = tuple[tuple[int, int], str, int]
_headers: weakref.WeakKeyDictionary[AppState, dict[str, tuple[float, _Header | ImageKitError]]] = (
    weakref.WeakKeyDictionary()
)
_foreseen: weakref.WeakKeyDictionary[AppState, dict[str, tuple[float, Foreseen]]] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()

_V = t.TypeVar("_V")


def _keep(
    kept: weakref.WeakKeyDictionary[AppState, dict[str, _V]], state: AppState, key: str, value: _V
) -> None:
    with _lock:
        known = kept.setdefault(state, {})
        if len(known) > _MAX_KEPT:
            known.clear()
        known[key] = value


def _header(source: SourceFile, state: AppState) -> _Header:
    """The size, mode and EXIF orientation of ``source``, read from its header.

    A source that cannot be opened raises its error again for a minute, unread.
    """
    key = source.name if source.is_stored and source.storage is None else None
    now = time.monotonic()
    if key:
        with _lock:
            found = _headers.setdefault(state, {}).get(key)
        if found is not None and found[0] > now:
            if isinstance(found[1], ImageKitError):
                raise type(found[1])(*found[1].args)
            return found[1]
    try:
        with (
            source.open(state.source_storage) as fp,
            open_image(
                fp,
                formats=state.allowed_source_formats,
                max_pixels=state.max_source_pixels,
                max_bytes=state.max_decode_bytes,
                name=source.name,
            ) as img,
        ):
            header: _Header | ImageKitError = (img.size, img.mode, exif_orientation(img))
    except ImageKitError as exc:
        header = exc
    if key:
        _keep(_headers, state, key, (now + _KEPT_SECONDS, header))
    if isinstance(header, ImageKitError):
        raise header
    return header


# Written to the cache behind the state cache: a size is no state, and files derived
# from states (remembered markup) need not start again because of it.


def _read(states: StateCache | None, key: str) -> t.Any:
    if states is None or states.unreachable.active:
        return None
    try:
        return states.cache.get(key)
    except unreachable_errors():
        states.unreachable.begin()
        return None


def _write(states: StateCache | None, key: str, value: str) -> None:
    if states is None or states.unreachable.active:
        return
    try:
        states.cache.set(key, value, timeout=EXPECTED_SIZE_TIMEOUT)
    except unreachable_errors():
        states.unreachable.begin()
