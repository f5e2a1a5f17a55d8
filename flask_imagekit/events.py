"""Source signals reach the strategies of the cache files they concern.

``source_created``, ``source_changed`` and ``source_deleted`` are sent with
``sender=<source group>, source=<file>``. For each generator id the group is
registered with in the current app, the cache file of that source is built and
its strategy's callbacks run (``on_source_created`` then ``on_source_saved``,
and so on). The specs of one source decode it once between them.

With ``IMAGEKIT_DELETE_ORPHANED_CACHEFILES``, a deleted source takes its cache
files with it: each spec's own file, the responsive candidates the spec declares
and those its pictures recorded (widths and formats a template asked for), with
their states and the picture's record.
"""

from __future__ import annotations

import logging
import typing as t

from .globals import current_state_or_none
from .signals import source_changed, source_created, source_deleted
from .specs import decode_together
from .specs.responsive import declared_candidates

if t.TYPE_CHECKING:
    from .cachefiles import ImageCacheFile
    from .state import AppState

__all__ = ["SOURCE_CALLBACKS", "connect_source_signals", "dispatch_source_event"]

logger = logging.getLogger("flask_imagekit")

#: The strategy callbacks each source event calls, in order.
SOURCE_CALLBACKS = {
    "created": ("on_source_created", "on_source_saved"),
    "changed": ("on_source_changed", "on_source_saved"),
    "deleted": ("on_source_deleted",),
}


def dispatch_source_event(state: AppState, sender: t.Any, source: t.Any, event: str) -> None:
    """Tell the strategy of every spec ``sender`` feeds that ``source`` was ``event``."""
    files: list[tuple[str, ImageCacheFile]] = []
    for generator_id in state.registry.generator_ids_for_source_group(sender):
        try:
            files.append((generator_id, state.cachefile(generator_id, source=source)))
        except Exception:
            _log_failure(event, source, generator_id)
    if event != "deleted":
        # Only the files generated here share the decode: the encodes of a group run
        # ahead, so a spec that waits for a page or a worker would be encoded for nothing.
        decode_together([file.generator for _, file in files if _generates_now(file, event)])
    for generator_id, file in files:
        try:
            for callback in SOURCE_CALLBACKS[event]:
                method = getattr(file.cachefile_strategy, callback, None)
                if method is not None:
                    method(file)
            if event == "deleted" and state.delete_orphaned_cachefiles:
                _delete(file)
                _delete_candidates(state, generator_id, source, file)
        except Exception:
            _log_failure(event, source, generator_id)


def _generates_now(file: ImageCacheFile, event: str) -> bool:
    """Whether ``file``'s strategy generates it on ``event`` in this process."""
    try:
        strategy, backend = file.cachefile_strategy, file.cachefile_backend
    except Exception:
        return False  # reported when its callback runs
    if getattr(backend, "is_async", False):
        return False
    return any(getattr(strategy, callback, None) for callback in SOURCE_CALLBACKS[event])


def _delete(file: ImageCacheFile) -> None:
    file.storage.delete(file.name)
    file.cachefile_backend.forget(file)


def _delete_candidates(
    state: AppState, generator_id: str, source: t.Any, file: ImageCacheFile
) -> None:
    """Delete the responsive candidates of ``file`` (a spec's own file) and its record."""
    backend = file.cachefile_backend
    made = getattr(backend, "candidates_made", None)
    keys = dict.fromkeys(made(file) if made is not None else ())
    keys.update(dict.fromkeys(declared_candidates(file.generator, None)))
    for key in keys:
        _delete(state.cachefile(generator_id, source=source, candidate=key))
    forget = getattr(backend, "forget_picture", None)
    if forget is not None:
        forget(file)


def _log_failure(event: str, source: t.Any, generator_id: str) -> None:
    # One image's failure must not stop the others, nor the commit that sent the signal.
    logger.exception(
        "flask_imagekit: handling source %s of %r for %r failed", event, source, generator_id
    )


def _receiver(event: str) -> t.Callable[..., None]:
    def receive(sender: t.Any, source: t.Any = None, **extra: t.Any) -> None:
        state = current_state_or_none()
        if state is not None and source is not None:
            dispatch_source_event(state, sender, source, event)

    receive.__name__ = f"on_source_{event}"
    return receive


_RECEIVERS = {event: _receiver(event) for event in SOURCE_CALLBACKS}


def connect_source_signals() -> None:
    """Connect the source signals to :func:`dispatch_source_event` (once per process).

    The receivers act for the app of the current context only, so every app
    sharing the process sees its own registry and strategies.
    """
    for signal, event in (
        (source_created, "created"),
        (source_changed, "changed"),
        (source_deleted, "deleted"),
    ):
        signal.connect(_RECEIVERS[event], weak=False)
