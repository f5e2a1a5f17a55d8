"""Batch generation: the cache files of every source of the matching source groups.

:func:`run` walks every registered source group of the given generator ids and
generates each source's cache files. Each source is read and decoded once for
all of its specs, sources are streamed (memory does not grow with their
number), one bad source or group never stops the run, and ``jobs > 1`` spreads
the work over that many processes.

Worker processes start with ``fork`` where the platform has it (they start with
the app in memory) and ``spawn`` elsewhere; ``IMAGEKIT_START_METHOD`` picks
another. A process that did not fork builds the app again, from the import path
the ``flask`` command was given (:class:`AppLoader`).
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import dataclasses
import multiprocessing
import os
import pickle
import re
import typing as t

from flask import Flask, current_app
from flask.cli import ScriptInfo

from .exceptions import GenerationError, ImproperlyConfigured
from .globals import current_state
from .imaging import set_resize_threads
from .sourcefiles import Outcome, failure_reason, generate_source
from .sources import SourceFile, as_source
from .specs import set_encode_threads

__all__ = [
    "START_METHOD_ENV",
    "AppLoader",
    "Outcome",
    "Summary",
    "app_source_groups",
    "compile_pattern",
    "count_sources",
    "default_start_method",
    "generate_source",
    "matching_ids",
    "run",
    "source_count",
]

#: The environment variable that chooses how ``jobs > 1`` starts its processes.
START_METHOD_ENV = "IMAGEKIT_START_METHOD"


# Choosing ---------------------------------------------------------------------------------


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a generator id pattern.

    ``*`` matches within one colon-separated segment, ``**`` across segments, and
    a pattern also matches the ids below it (``myapp`` matches ``myapp:thumb``).
    """
    parts = re.split(r"(\*\*|\*)", pattern)
    body = "".join(
        ".*" if part == "**" else "[^:]*" if part == "*" else re.escape(part) for part in parts
    )
    return re.compile(f"^{body}(?::.*)?$")


def app_source_groups(generator_id: str) -> list[t.Any]:
    """The source groups of ``generator_id`` that belong to the current app.

    Model source groups are process-wide; those of models another app maps are
    left out.
    """
    return [
        group
        for group in current_state().registry.source_groups(generator_id)
        if getattr(group, "applies_to_current_app", lambda: True)()
    ]


def matching_ids(patterns: t.Sequence[str]) -> list[str]:
    """Generator ids with source groups that match any of ``patterns`` (all if none)."""
    ids = [id for id in current_state().registry.source_group_ids() if app_source_groups(id)]
    if not patterns:
        return ids
    compiled = [compile_pattern(pattern) for pattern in patterns]
    return [id for id in ids if any(regex.match(id) for regex in compiled)]


def count_sources(ids: t.Sequence[str]) -> int | None:
    """How many sources a run over ``ids`` visits; None if a group cannot count them."""
    total = 0
    seen: list[t.Any] = []
    for generator_id in ids:
        for group in app_source_groups(generator_id):
            if any(group == other for other in seen):
                continue
            seen.append(group)
            count = getattr(group, "count", None)
            if count is None:
                return None
            total += int(count())
    return total


def source_count(group: t.Any) -> int:
    """The number of sources in ``group``: its ``count()``, or a walk over its files."""
    count = getattr(group, "count", None)
    if count is not None:
        return int(count())
    total = 0
    for item in group.files():
        total += 1
        if hasattr(item, "close") and hasattr(item, "read"):
            item.close()
    return total


@dataclasses.dataclass
class Summary:
    """What a run did, over all of its sources."""

    sources: int = 0
    generated: int = 0
    existed: int = 0
    #: (source, generator id, reason) of each cache file that failed.
    failures: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        """Count the outcome of one more source."""
        self.sources += 1
        self.generated += outcome.generated
        self.existed += outcome.existed
        self.failures.extend((outcome.source, gid, reason) for gid, reason in outcome.failures)


# Every source -----------------------------------------------------------------------------

WorkItem = tuple[tuple[str, ...], "SourceFile | Outcome"]


def run(
    ids: t.Sequence[str],
    *,
    force: bool = False,
    jobs: int = 1,
    enqueue: bool = False,
    start_method: str | None = None,
    app_loader: AppLoader | None = None,
    on_progress: t.Callable[[Outcome], None] | None = None,
) -> Summary:
    """Generate the cache files of every source of ``ids``' groups, in the current app.

    ``force`` regenerates files that exist; ``enqueue`` sends each file's job to
    its async backend instead of generating here. ``jobs > 1`` uses that many
    processes, started with ``start_method`` (default
    :func:`default_start_method`); those that do not fork build the app with
    ``app_loader``. ``on_progress`` is called with the outcome of each source as
    it is done. Raises :class:`~flask_imagekit.exceptions.ImageKitError` when the
    worker processes cannot be started or die; a failure of one source or
    group is in the summary instead.
    """
    items = _work(ids)
    if enqueue:
        outcomes = _serial(items, force, enqueue=True)
    elif jobs > 1:
        method = start_method or default_start_method()
        worker_app = _worker_app_for(method, app_loader)
        outcomes = _parallel(items, jobs, force, method, worker_app)
    else:
        outcomes = _serial(items, force)
    summary = Summary()
    for outcome in outcomes:
        summary.add(outcome)
        if on_progress is not None:
            on_progress(outcome)
    return summary


def _work(ids: t.Sequence[str]) -> t.Iterator[WorkItem]:
    """Yield (generator ids, source) for every source, each source once per group.

    A source or a group that cannot be read yields a failed Outcome instead, so
    one bad item never stops the run.
    """
    groups: list[tuple[t.Any, list[str]]] = []
    for generator_id in ids:
        for group in app_source_groups(generator_id):
            for known, group_ids in groups:
                if known == group:
                    group_ids.append(generator_id)
                    break
            else:
                groups.append((group, [generator_id]))
    for group, group_ids in groups:
        try:
            for item in group.files():
                try:
                    source = _source_of(item)
                except Exception as exc:
                    failures = [(gid, failure_reason(exc)) for gid in group_ids]
                    yield tuple(group_ids), Outcome(source=repr(item), failures=failures)
                    continue
                if source:
                    yield tuple(group_ids), source
        except Exception as exc:
            failures = [
                (gid, f"listing the sources failed: {failure_reason(exc)}") for gid in group_ids
            ]
            yield tuple(group_ids), Outcome(source=repr(group), failures=failures)


def _source_of(item: t.Any) -> SourceFile | None:
    """A source a worker process can reopen; files a group opened by path are closed."""
    name = getattr(item, "name", None)
    if hasattr(item, "read") and isinstance(name, str) and os.path.isfile(name):
        item.close()
        return SourceFile(name, path=os.path.abspath(name))
    return as_source(item)


def _serial(
    items: t.Iterator[WorkItem], force: bool, enqueue: bool = False
) -> t.Iterator[Outcome]:
    for ids, source in items:
        if isinstance(source, Outcome):
            yield source
        else:
            yield generate_source(ids, source, force=force, enqueue=enqueue)


# Worker processes ---------------------------------------------------------------------------


def default_start_method() -> str:
    """``IMAGEKIT_START_METHOD`` if set; otherwise ``fork`` where available, else ``spawn``."""
    available = multiprocessing.get_all_start_methods()
    chosen = os.environ.get(START_METHOD_ENV)
    if chosen:
        if chosen not in available:
            msg = (
                f"{START_METHOD_ENV}={chosen!r} is not a start method of this platform; "
                f"use one of {', '.join(available)}."
            )
            raise ImproperlyConfigured(msg)
        return chosen
    return "fork" if "fork" in available else "spawn"


@dataclasses.dataclass(frozen=True)
class AppLoader:
    """How a worker process that did not fork builds the app: as the ``flask`` command did.

    ``import_path`` is what ``flask --app`` (or ``FLASK_APP``) names, ``create_app``
    a factory importable by name (a custom ``FlaskGroup``'s), and ``cwd`` the
    directory both are relative to. With neither, ``wsgi.py`` or ``app.py`` in
    ``cwd`` is loaded, as ``flask`` does.
    """

    import_path: str | None = None
    create_app: t.Callable[..., Flask] | None = None
    cwd: str = dataclasses.field(default_factory=os.getcwd)

    @classmethod
    def from_script_info(cls, info: ScriptInfo) -> AppLoader:
        """The loader of the app the ``flask`` command loads with ``info``."""
        return cls(import_path=info.app_import_path, create_app=info.create_app)

    def load(self) -> Flask:
        """Build the app, in ``cwd``."""
        previous = os.getcwd()
        os.chdir(self.cwd)
        try:
            info = ScriptInfo(app_import_path=self.import_path, create_app=self.create_app)
            return info.load_app()
        finally:
            os.chdir(previous)


def _worker_app_for(method: str, loader: AppLoader | None) -> Flask | AppLoader:
    """What the worker processes get to find the app: the app itself if they fork."""
    if method == "fork":
        # Handed to the forked process as it is, never pickled.
        return t.cast(Flask, current_app._get_current_object())  # type: ignore[attr-defined]
    if loader is not None:
        try:
            pickle.dumps(loader)
        except (pickle.PicklingError, AttributeError, TypeError):
            what = f"the app factory {loader.create_app!r}"
        else:
            return loader
    else:
        what = "an app given without its import path"
    msg = (
        f"Worker processes started with {method!r} build the app again, and {what} "
        "cannot be sent to them. Name the app by import path (`flask --app "
        "module:create_app imagekit generate`, or FLASK_APP), or start them with fork "
        f"({START_METHOD_ENV}=fork) where the platform has it."
    )
    raise ImproperlyConfigured(msg)


# The app of this worker process, set when it starts (never inherited).
_worker_app: Flask | None = None


def _worker_init(app: Flask | AppLoader) -> None:
    global _worker_app
    # The processes already use every core: no resize or encode threads on top.
    set_resize_threads(1)
    set_encode_threads(1)
    _worker_app = app.load() if isinstance(app, AppLoader) else app


def _worker_generate(ids: tuple[str, ...], source: SourceFile, force: bool) -> Outcome:
    app = _worker_app
    if app is None:
        msg = "This worker process has no app: it was not started by generation.run()."
        raise GenerationError(msg)
    with app.app_context():
        return generate_source(ids, source, force=force)


def _parallel(
    items: t.Iterator[WorkItem], jobs: int, force: bool, method: str, app: Flask | AppLoader
) -> t.Iterator[Outcome]:
    context = multiprocessing.get_context(method)
    try:
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=jobs, mp_context=context, initializer=_worker_init, initargs=(app,)
        ) as pool:
            pending: set[concurrent.futures.Future[Outcome]] = set()
            for ids, source in items:
                if isinstance(source, Outcome):
                    yield source
                    continue
                if source.is_stream:
                    # An open file cannot travel to a worker: generate it here.
                    yield generate_source(ids, source, force=force)
                    continue
                pending.add(pool.submit(_worker_generate, ids, source, force))
                if len(pending) >= jobs * 4:
                    done, pending = concurrent.futures.wait(
                        pending, return_when=concurrent.futures.FIRST_COMPLETED
                    )
                    yield from (future.result() for future in done)
            for future in concurrent.futures.as_completed(pending):
                yield future.result()
    except concurrent.futures.process.BrokenProcessPool as exc:
        msg = (
            f"A worker process of --jobs stopped ({exc}); its error is printed above. "
            f"Processes started with {method!r} build the app again: check that the app "
            "loads in a new process, or use fewer jobs if they ran out of memory."
        )
        raise GenerationError(msg) from exc
