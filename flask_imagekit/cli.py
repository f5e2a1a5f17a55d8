"""The ``flask imagekit`` command group: ``generate`` and ``list``.

``generate`` walks every registered source group whose generator ids match the
patterns and generates each source's cache files; each source is read and
decoded once for all of its specs, sources are streamed (memory does not grow
with their number), and ``--jobs N`` spreads the work over N processes.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import os
import re
import sys
import typing as t

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from .cachefiles import ImageCacheFile
from .config import current_state
from .exceptions import ImageKitError
from .sources import SourceFile, as_source
from .specs import ImageSpec, prepare_specs

if t.TYPE_CHECKING:
    from .registry import Registry

__all__ = ["compile_pattern", "generate_source", "imagekit_cli", "matching_ids"]

imagekit_cli = AppGroup("imagekit", help="Generate and inspect flask_imagekit cache files.")


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


def app_source_groups(registry: Registry, generator_id: str) -> list[t.Any]:
    """The source groups of ``generator_id`` that belong to the current app.

    Model source groups are process-wide; those of models another app maps are
    left out.
    """
    return [
        group
        for group in registry.source_groups(generator_id)
        if getattr(group, "applies_to_current_app", lambda: True)()
    ]


def matching_ids(registry: Registry, patterns: t.Sequence[str]) -> list[str]:
    """Generator ids with source groups that match any of ``patterns`` (all if none)."""
    ids = [id for id in registry.source_group_ids() if app_source_groups(registry, id)]
    if not patterns:
        return ids
    compiled = [compile_pattern(pattern) for pattern in patterns]
    return [id for id in ids if any(regex.match(id) for regex in compiled)]


@dataclasses.dataclass
class Outcome:
    """What happened to one source's cache files."""

    source: str
    generated: int = 0
    existed: int = 0
    failures: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def generate_source(
    registry: Registry,
    generator_ids: t.Sequence[str],
    source: SourceFile,
    force: bool,
    enqueue: bool = False,
) -> Outcome:
    """Generate the cache files of ``source`` for every id, decoding it once.

    With ``enqueue``, send each file's job to its (async) backend instead.
    """
    outcome = Outcome(source=source.name or repr(source))
    files: list[tuple[str, ImageCacheFile]] = []
    for generator_id in generator_ids:
        try:
            generator = registry.get_generator(generator_id, source=source)
            file = ImageCacheFile(generator, generator_id=generator_id)
            backend = file.cachefile_backend
            if not force and backend.exists(file):
                outcome.existed += 1
            else:
                files.append((generator_id, file))
        except Exception as exc:
            outcome.failures.append((generator_id, _reason(exc)))
    if enqueue:
        _tally(outcome, files, lambda file: _enqueue(file, force))
        return outcome
    specs = [file.generator for _, file in files if isinstance(file.generator, ImageSpec)]
    if len(specs) > 1:
        try:
            prepare_specs(specs)
        except Exception as exc:
            outcome.failures.extend((generator_id, _reason(exc)) for generator_id, _ in files)
            return outcome
    _tally(outcome, files, lambda file: file.cachefile_backend.generate_now(file, force=force))
    return outcome


def _tally(
    outcome: Outcome,
    files: list[tuple[str, ImageCacheFile]],
    action: t.Callable[[ImageCacheFile], bool],
) -> None:
    """Run ``action`` on each file: True counts as done, False as already there."""
    for generator_id, file in files:
        try:
            if action(file):
                outcome.generated += 1
            else:
                outcome.existed += 1
        except Exception as exc:
            outcome.failures.append((generator_id, _reason(exc)))


def _enqueue(file: ImageCacheFile, force: bool) -> bool:
    from .cachefiles.backends import AsyncBackend

    backend = file.cachefile_backend
    if not isinstance(backend, AsyncBackend):
        msg = (
            f"--enqueue needs an async cache file backend (Celery or RQ), not {backend!r}; "
            "set IMAGEKIT_DEFAULT_CACHEFILE_BACKEND or drop --enqueue."
        )
        raise ImageKitError(msg)
    return backend.enqueue(file, force=force)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ImageKitError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


WorkItem = tuple[tuple[str, ...], "SourceFile | Outcome"]


def _work(registry: Registry, ids: list[str]) -> t.Iterator[WorkItem]:
    """Yield (generator ids, source) for every source, each source once per group.

    A source or a group that cannot be read yields a failed Outcome instead, so
    one bad item never stops the run.
    """
    groups: list[tuple[t.Any, list[str]]] = []
    for generator_id in ids:
        for group in app_source_groups(registry, generator_id):
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
                    failures = [(gid, _reason(exc)) for gid in group_ids]
                    yield tuple(group_ids), Outcome(source=repr(item), failures=failures)
                    continue
                if source:
                    yield tuple(group_ids), source
        except Exception as exc:
            failures = [(gid, f"listing the sources failed: {_reason(exc)}") for gid in group_ids]
            yield tuple(group_ids), Outcome(source=repr(group), failures=failures)


def _source_of(item: t.Any) -> SourceFile | None:
    """A source a worker process can reopen; files a group opened by path are closed."""
    name = getattr(item, "name", None)
    if hasattr(item, "read") and isinstance(name, str) and os.path.isfile(name):
        item.close()
        return SourceFile(name, path=os.path.abspath(name))
    return as_source(item)


def _count(registry: Registry, ids: list[str]) -> int | None:
    total = 0
    seen: list[t.Any] = []
    for generator_id in ids:
        for group in app_source_groups(registry, generator_id):
            if any(group == other for other in seen):
                continue
            seen.append(group)
            count = getattr(group, "count", None)
            if count is None:
                return None
            total += int(count())
    return total


# --jobs: worker processes forked from the command's process share its app.

_worker_app: Flask | None = None


def _worker_init() -> None:
    # The processes already use every core: no resize threads on top.
    from .imaging import set_resize_threads

    set_resize_threads(1)


def _worker_generate(ids: tuple[str, ...], source: SourceFile, force: bool) -> Outcome:
    assert _worker_app is not None
    with _worker_app.app_context():
        registry = current_app.extensions["imagekit"].state(_worker_app).registry
        return generate_source(registry, ids, source, force)


def _parallel(
    registry: Registry, items: t.Iterator[WorkItem], jobs: int, force: bool
) -> t.Iterator[Outcome]:
    global _worker_app
    _worker_app = current_app._get_current_object()  # type: ignore[attr-defined]
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=_worker_init
    ) as pool:
        pending: set[concurrent.futures.Future[Outcome]] = set()
        for ids, source in items:
            if isinstance(source, Outcome):
                yield source
                continue
            if source._stream:
                # An open file cannot travel to a worker: generate it here.
                yield generate_source(registry, ids, source, force)
                continue
            pending.add(pool.submit(_worker_generate, ids, source, force))
            if len(pending) >= jobs * 4:
                done, pending = concurrent.futures.wait(
                    pending, return_when=concurrent.futures.FIRST_COMPLETED
                )
                yield from (future.result() for future in done)
        for future in concurrent.futures.as_completed(pending):
            yield future.result()


@imagekit_cli.command("generate")
@click.argument("patterns", nargs=-1)
@click.option("--force", is_flag=True, help="Regenerate files that already exist.")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Number of worker processes.",
)
@click.option(
    "--enqueue",
    is_flag=True,
    help="Send jobs to the async backend (Celery, RQ) instead of generating here.",
)
def generate_command(patterns: tuple[str, ...], force: bool, jobs: int, enqueue: bool) -> None:
    """Generate the cache files of every source group matching PATTERNS.

    A pattern is a generator id where '*' matches within a segment and '**'
    across segments; it also matches the ids below it. No pattern: all.
    """
    registry = current_state().registry
    ids = matching_ids(registry, patterns)
    if not ids:
        click.echo("No registered source group matches; nothing to generate.")
        return
    total = _count(registry, ids)
    items = _work(registry, ids)
    if enqueue:
        outcomes = _serial(registry, items, force, enqueue=True)
    elif jobs > 1:
        outcomes = _parallel(registry, items, jobs, force)
    else:
        outcomes = _serial(registry, items, force)
    done_label = "enqueued" if enqueue else "generated"
    generated = existed = 0
    failures: list[tuple[str, str, str]] = []
    tty = sys.stdout.isatty()
    with click.progressbar(
        length=total if total is not None else 0,
        label="Enqueueing" if enqueue else "Generating",
        show_pos=True,
        file=None if tty else t.cast(t.TextIO, _Null()),
    ) as bar:
        for done, outcome in enumerate(outcomes, start=1):
            generated += outcome.generated
            existed += outcome.existed
            failures.extend((outcome.source, gid, reason) for gid, reason in outcome.failures)
            if tty:
                bar.update(1)
            else:
                status = "ok" if not outcome.failures else f"{len(outcome.failures)} failed"
                click.echo(
                    f"[{done}/{total if total is not None else '?'}] {outcome.source}: "
                    f"{outcome.generated} {done_label}, {outcome.existed} already there, {status}"
                )
    click.echo(
        f"{done_label.capitalize()} {generated} file{'s' * (generated != 1)}, "
        f"{existed} already there, {len(failures)} failed."
    )
    for source, generator_id, reason in failures:
        click.echo(f"FAILED {source} ({generator_id}): {reason}", err=True)
    if failures:
        raise click.exceptions.Exit(1)


def _serial(
    registry: Registry, items: t.Iterator[WorkItem], force: bool, enqueue: bool = False
) -> t.Iterator[Outcome]:
    for ids, source in items:
        if isinstance(source, Outcome):
            yield source
        else:
            yield generate_source(registry, ids, source, force, enqueue=enqueue)


class _Null:
    """A sink for the progress bar when stdout is not a terminal."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


@imagekit_cli.command("list")
def list_command() -> None:
    """List generator ids, their source groups and how many sources each has."""
    registry = current_state().registry
    for generator_id in registry.generator_ids():
        groups = app_source_groups(registry, generator_id)
        if not groups:
            click.echo(f"{generator_id}  (no source group)")
            continue
        for group in groups:
            click.echo(f"{generator_id}  {group!r}  {_group_count(group)} sources")


def _group_count(group: t.Any) -> int:
    count = getattr(group, "count", None)
    if count is not None:
        return int(count())
    total = 0
    for item in group.files():
        total += 1
        if hasattr(item, "close") and hasattr(item, "read"):
            item.close()
    return total
