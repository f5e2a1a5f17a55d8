"""The cache files of one source: its specs' files and their candidates, from one decode.

:func:`generate_source` generates (or enqueues) every file of one source for
several generator ids. A spec that declares ``responsive_widths`` or
``responsive_formats`` also gets its responsive candidates, each an ordinary
cache file counted in the outcome. Whether a width is wanted depends on the
width of the spec's own file: read from its state (or header) when the file is
there, else known once it is generated (or, when it is only enqueued, foreseen
from the source's header); the candidates share its decode meanwhile, and those
as wide as it or wider are let go without being made. No candidate is wider
than the source either.
"""

from __future__ import annotations

import dataclasses
import typing as t

from .cachefiles import ImageCacheFile
from .cachefiles.backends import AsyncBackend
from .cachefiles.output import read_size
from .cachefiles.sizing import foresee_spec, source_size
from .exceptions import ImageKitError
from .globals import current_state
from .specs import ImageSpec, prepare_specs
from .specs.responsive import declared_candidates

if t.TYPE_CHECKING:
    from .sources import SourceFile

__all__ = ["Outcome", "failure_reason", "generate_source"]


@dataclasses.dataclass
class Outcome:
    """What happened to one source's cache files."""

    source: str
    generated: int = 0
    existed: int = 0
    #: (generator id, reason) of each cache file that failed.
    failures: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def generate_source(
    generator_ids: t.Sequence[str], source: SourceFile, *, force: bool, enqueue: bool = False
) -> Outcome:
    """Generate the cache files of ``source`` for every id, decoding it once.

    A spec that declares ``responsive_widths`` or ``responsive_formats`` also gets
    its responsive candidates (see
    :func:`~flask_imagekit.specs.responsive.declared_candidates`), each counted
    as a file. With ``enqueue``, send each file's job to its (async) backend
    instead.
    """
    outcome = Outcome(source=source.name or repr(source))
    work: list[_Work] = []
    for generator_id in generator_ids:
        try:
            work.extend(_files_of(generator_id, source, force, outcome))
        except Exception as exc:
            outcome.failures.append((generator_id, failure_reason(exc)))
    if enqueue:
        _tally(outcome, work, lambda file: _enqueue(file, force))
        return outcome
    specs = [
        item.file.generator
        for item in work
        if item.todo and isinstance(item.file.generator, ImageSpec)
    ]
    if len(specs) > 1:
        try:
            prepare_specs(specs)
        except Exception as exc:
            outcome.failures.extend(
                (item.label, failure_reason(exc)) for item in work if item.todo
            )
            return outcome
    _tally(outcome, work, lambda file: file.cachefile_backend.generate_now(file, force=force))
    return outcome


@dataclasses.dataclass
class _Work:
    """A cache file of a source: to generate (``todo``), or there but maybe not wanted."""

    label: str
    file: ImageCacheFile
    todo: bool = True
    #: For a candidate narrower than its spec's output: the spec's file, whose
    #: width (known once it is generated) tells whether the candidate is wanted.
    base: ImageCacheFile | None = None
    width: int | None = None
    #: The source's width, when known: a full-width candidate (``width`` None) of an
    #: output wider than its source is not wanted (the source's width is offered).
    source_width: int | None = None


def _files_of(generator_id: str, source: SourceFile, force: bool, outcome: Outcome) -> list[_Work]:
    """The files of one generator id for ``source``: its own and its declared candidates.

    Files already there are counted in ``outcome`` now, unless whether they are
    wanted depends on the width of a spec's file still to generate.
    """
    state = current_state()
    file = state.cachefile(generator_id, source=source)
    work: list[_Work] = []
    base_exists = not force and file.cachefile_backend.exists(file)
    if base_exists:
        outcome.existed += 1
    else:
        work.append(_Work(generator_id, file))
    spec = file.generator
    if not (getattr(spec, "responsive_widths", None) or getattr(spec, "responsive_formats", None)):
        return work
    # The widths narrower than the spec's output: known now if its file is there,
    # else once it is generated (the candidates share its decode meanwhile).
    full_width = _stored_width(file) if base_exists else None
    source_width = _source_width(file, state)
    declared = declared_candidates(spec, full_width, source_width)
    if base_exists and full_width is None:
        reason = f"the size of {file.name!r} could not be read; regenerate it with --force"
        outcome.failures.append((f"{generator_id} (narrower candidates)", reason))
        declared = [(width, fmt) for width, fmt in declared if width is None]
    for width, fmt in declared:
        label = f"{generator_id} {fmt}" + (f" {width}w" if width is not None else "")
        try:
            candidate = state.cachefile(generator_id, source=source, candidate=(width, fmt))
            there = not force and candidate.cachefile_backend.exists(candidate)
        except Exception as exc:
            outcome.failures.append((label, failure_reason(exc)))
            continue
        deferred = full_width is None and (width is not None or source_width is not None)
        if there and not deferred:
            outcome.existed += 1
        else:
            base = file if deferred else None
            work.append(
                _Work(
                    label,
                    candidate,
                    todo=not there,
                    base=base,
                    width=width,
                    source_width=source_width,
                )
            )
    return work


def _source_width(file: ImageCacheFile, state: t.Any) -> int | None:
    """The upright width of the source of ``file``: from its picture record, else its header."""
    picture_info = getattr(file.cachefile_backend, "picture_info", None)
    record = picture_info(file) if picture_info is not None else None
    if record is not None and record.source_width is not None:
        return int(record.source_width)
    size = source_size(file.generator, state)
    return size[0] if size is not None else None


def _foreseen_width(file: ImageCacheFile) -> int | None:
    """The width ``file`` will have, from its source's header (for a file only enqueued)."""
    try:
        size = foresee_spec(file.generator, file.app_state).size
    except ImageKitError:
        return None
    return size[0] if size is not None else None


def _stored_width(file: ImageCacheFile) -> int | None:
    """The width of an existing file: from its state, else from its header."""
    size = file.cachefile_backend.dimensions(file)
    if size is None:
        try:
            with file.storage.open(file.name, "rb") as fp:
                size = read_size(fp)
        except Exception:
            return None
    return int(size[0])


def _tally(
    outcome: Outcome, work: list[_Work], action: t.Callable[[ImageCacheFile], bool]
) -> None:
    """Run ``action`` on each file to do: True counts as done, False as already there.

    A candidate as wide as its spec's output or wider, or whose spec's file could
    not be made, is left out (and lets go of its share of the decode).
    """
    widths: dict[int, int | None] = {}
    for item in work:
        if item.base is not None:
            key = id(item.base)
            if key not in widths:
                widths[key] = _stored_width(item.base) or _foreseen_width(item.base)
            full_width = widths[key]
            if full_width is None:
                reason = (
                    f"the width of {item.base.name!r} is not known yet (enqueued, and not "
                    "foreseeable from its source); run generate again once it exists"
                )
                outcome.failures.append((item.label, reason))
                _discard(item.file)
                continue
            if item.width is None:
                wanted = item.source_width is None or item.source_width >= full_width
            else:
                wanted = item.width < full_width
            if not wanted:
                _discard(item.file)
                continue
        if not item.todo:
            outcome.existed += 1
            continue
        try:
            if action(item.file):
                outcome.generated += 1
            else:
                outcome.existed += 1
        except Exception as exc:
            outcome.failures.append((item.label, failure_reason(exc)))


def _discard(file: ImageCacheFile) -> None:
    discard = getattr(file.generator, "discard", None)
    if callable(discard):
        discard()


def _enqueue(file: ImageCacheFile, force: bool) -> bool:
    backend = file.cachefile_backend
    if not isinstance(backend, AsyncBackend):
        msg = (
            f"--enqueue needs an async cache file backend (Celery or RQ), not {backend!r}; "
            "set IMAGEKIT_DEFAULT_CACHEFILE_BACKEND or drop --enqueue."
        )
        raise ImageKitError(msg)
    return backend.enqueue(file, force=force)


def failure_reason(exc: BaseException) -> str:
    """How a failure is listed: the message of an ImageKitError, else its type too."""
    if isinstance(exc, ImageKitError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
