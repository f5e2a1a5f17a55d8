"""The app's commands: ``flask --app example_app init-db`` and ``... seed``."""

from __future__ import annotations

import io
import time

import click
from flask.cli import with_appcontext
from PIL import Image
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage

from flask_imagekit.extension import current_state

from .drawing import avatar, draw
from .extensions import cache, db
from .models import Author, Photo
from .sourcegroups import FEATURED_DIR

__all__ = ["AUTHORS", "SAMPLES", "init_db_command", "seed_command"]

#: The sample authors.
AUTHORS = ["Ada Lovelace", "Grace Hopper", "Alan Turing"]

#: The sample photos: (title, drawing style, width, height, square crop anchor).
SAMPLES: list[tuple[str, str, int, int, str]] = [
    ("Alpine dawn", "landscape", 2400, 1600, "c"),
    ("Evening swell", "waves", 2400, 1600, "c"),
    ("Bauhaus no. 3", "shapes", 1600, 2000, "t"),
    ("City after midnight", "city", 2400, 1350, "b"),
    ("Lake at noon", "landscape", 2000, 2000, "c"),
    ("Tidal lines", "waves", 1600, 2400, "b"),
    ("Composition in red", "shapes", 2400, 1600, "l"),
    ("Harbour lights", "city", 1800, 2400, "b"),
    ("Ridge at sunset", "landscape", 2400, 1200, "r"),
    ("Dune waves", "waves", 2000, 1500, "c"),
    ("Primary forms", "shapes", 1800, 1800, "c"),
    ("Skyline in blue", "city", 2400, 1600, "c"),
]

#: The featured images: (file name, drawing style, seed).
FEATURED_IMAGES = [
    ("mountains.jpg", "landscape", 101),
    ("skyline.jpg", "city", 102),
    ("tide.jpg", "waves", 103),
]


def _jpeg(image: Image.Image, filename: str) -> FileStorage:
    """An in-memory upload of ``image``, as a browser would send it."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92)
    buffer.seek(0)
    return FileStorage(buffer, filename=filename, content_type="image/jpeg")


def _slug(title: str) -> str:
    return "-".join("".join(c for c in word if c.isalnum()) for word in title.lower().split())


@click.command("init-db")
@click.option("--drop", is_flag=True, help="Drop the tables first (deletes every row).")
@with_appcontext
def init_db_command(drop: bool) -> None:
    """Create the database tables."""
    if drop:
        db.drop_all()
    db.create_all()
    click.echo(f"Database ready: {db.engine.url.render_as_string(hide_password=True)}")


@click.command("seed")
@click.option(
    "--count",
    type=click.IntRange(0, 500),
    default=len(SAMPLES),
    show_default=True,
    help="How many sample photos to draw.",
)
@click.option("--reset", is_flag=True, help="Delete every photo, author and media file first.")
@with_appcontext
def seed_command(count: int, reset: bool) -> None:
    """Draw sample photos and save them through the models.

    Each photo is assigned to ``Photo.image`` (a ProcessedImageField, which
    stores it fitted in 1600 px) and committed, so flask_imagekit's
    source_created signal fires and the Optimistic specs are generated (the
    OnRequest gallery cards are not: browsers ask for them). Also
    draws the featured images (a folder the custom source group reads). Does
    nothing if photos exist, unless --reset.
    """
    db.create_all()
    if reset:
        _reset()
    existing = db.session.scalar(select(func.count()).select_from(Photo)) or 0
    if existing:
        click.echo(f"Already seeded: {existing} photos. Use --reset to start again.")
        return
    started = time.perf_counter()
    storage = current_state().source_storage
    for name, style, seed in FEATURED_IMAGES:
        buffer = io.BytesIO()
        draw(style, (2400, 900), seed).save(buffer, "JPEG", quality=90)
        storage.save(f"{FEATURED_DIR}/{name}", buffer.getvalue())
    click.echo(f"Drew {len(FEATURED_IMAGES)} featured images in {FEATURED_DIR}/")

    authors = []
    for name in AUTHORS:
        author = Author(name=name)
        # Assigning an upload to a ProcessedImageField processes and stores it.
        author.avatar = _jpeg(avatar(name), f"{_slug(name)}.jpg")  # type: ignore[assignment]
        authors.append(author)
    db.session.add_all(authors)
    for index in range(count):
        title, style, width, height, anchor = SAMPLES[index % len(SAMPLES)]
        if index >= len(SAMPLES):
            title = f"{title} ({index // len(SAMPLES) + 1})"
        image = draw(style, (width, height), seed=index)
        photo = Photo(title=title, crop_anchor=anchor, author=authors[index % len(authors)])
        photo.image = _jpeg(image, f"{_slug(title)}.jpg")  # type: ignore[assignment]
        db.session.add(photo)
        click.echo(f"[{index + 1}/{count}] {title}: {style} {width}x{height} -> {photo.image}")
    db.session.commit()  # source_created -> the Optimistic specs are generated now
    took = time.perf_counter() - started
    click.echo(
        f"Seeded {count} photos by {len(authors)} authors in {took:.1f} s; "
        "their display, square and WebP images were generated on commit; "
        "their gallery cards are made when a browser first asks for them."
    )


def _reset() -> None:
    """Drop every row, media file and cache file state of the app."""
    db.drop_all()
    db.create_all()
    state = current_state()
    for storage, folders in (
        (state.source_storage, ["photos", "avatars", FEATURED_DIR]),
        (state.storage, [state.cachefile_dir]),
    ):
        for folder in folders:
            for name in list(storage.walk(folder)):
                storage.delete(name)
    cache.clear()  # flask_imagekit keeps its cache file states there
    click.echo("Deleted every photo, author, media file and cache file state.")
