"""The ``flask imagekit`` command group: ``generate`` and ``list``.

The commands parse their options and print; the work is
:mod:`flask_imagekit.generation`'s.
"""

from __future__ import annotations

import multiprocessing
import sys
import typing as t

import click
from flask.cli import AppGroup, ScriptInfo

from . import generation
from .exceptions import ImageKitError
from .generation import compile_pattern, generate_source, matching_ids
from .globals import current_state

__all__ = ["compile_pattern", "generate_source", "imagekit_cli", "matching_ids"]

imagekit_cli = AppGroup("imagekit", help="Generate and inspect flask_imagekit cache files.")


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
    "--start-method",
    type=click.Choice(multiprocessing.get_all_start_methods()),
    envvar=generation.START_METHOD_ENV,
    show_envvar=True,
    help="How --jobs starts its processes: fork where available, spawn elsewhere.",
)
@click.option(
    "--enqueue",
    is_flag=True,
    help="Send jobs to the async backend (Celery, RQ) instead of generating here.",
)
def generate_command(
    patterns: tuple[str, ...], force: bool, jobs: int, start_method: str | None, enqueue: bool
) -> None:
    """Generate the cache files of every source group matching PATTERNS.

    A pattern is a generator id where '*' matches within a segment and '**'
    across segments; it also matches the ids below it. No pattern: all.
    """
    ids = matching_ids(patterns)
    if not ids:
        click.echo("No registered source group matches; nothing to generate.")
        return
    total = generation.count_sources(ids)
    # Taken now: source groups may change the working directory as they walk.
    info = click.get_current_context().find_object(ScriptInfo)
    loader = generation.AppLoader.from_script_info(info) if info is not None else None
    done_label = "enqueued" if enqueue else "generated"
    tty = sys.stdout.isatty()
    with click.progressbar(
        length=total if total is not None else 0,
        label="Enqueueing" if enqueue else "Generating",
        show_pos=True,
        file=None if tty else t.cast(t.TextIO, _Null()),
    ) as bar:
        done = 0

        def progress(outcome: generation.Outcome) -> None:
            nonlocal done
            done += 1
            if tty:
                bar.update(1)
                return
            status = "ok" if not outcome.failures else f"{len(outcome.failures)} failed"
            click.echo(
                f"[{done}/{total if total is not None else '?'}] {outcome.source}: "
                f"{outcome.generated} {done_label}, {outcome.existed} already there, {status}"
            )

        try:
            summary = generation.run(
                ids,
                force=force,
                jobs=jobs,
                enqueue=enqueue,
                start_method=start_method,
                app_loader=loader,
                on_progress=progress,
            )
        except ImageKitError as exc:
            raise click.ClickException(str(exc)) from exc
    generated, failures = summary.generated, summary.failures
    click.echo(
        f"{done_label.capitalize()} {generated} file{'s' * (generated != 1)}, "
        f"{summary.existed} already there, {len(failures)} failed."
    )
    for source, generator_id, reason in failures:
        click.echo(f"FAILED {source} ({generator_id}): {reason}", err=True)
    if failures:
        raise click.exceptions.Exit(1)


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
    for generator_id in current_state().registry.generator_ids():
        groups = generation.app_source_groups(generator_id)
        if not groups:
            click.echo(f"{generator_id}  (no source group)")
            continue
        candidates = _candidates_note(generator_id)
        for group in groups:
            count = generation.source_count(group)
            click.echo(f"{generator_id}  {group!r}  {count} sources{candidates}")


def _candidates_note(generator_id: str) -> str:
    """What ``generate`` makes besides each source's file: the spec's responsive candidates."""
    factory = current_state().registry.generator_factory(generator_id)
    widths = getattr(factory, "responsive_widths", None)
    formats = getattr(factory, "responsive_formats", None)
    if not widths and not formats:
        return ""
    parts = []
    if widths:
        parts.append(f" at {', '.join(str(width) for width in sorted(set(widths)))} px")
    if formats:
        parts.append(f" in {', '.join(str(fmt).upper() for fmt in formats)} and its own format")
    return f", each with candidates{''.join(parts)}"
