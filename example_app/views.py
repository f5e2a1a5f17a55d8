"""The pages: the gallery, a photo's page, and the upload form.

An author belongs to the browser session that created it: the session cookie
is signed with ``SECRET_KEY``, and it lists the authors (id and name) created
in it, so only that session may upload under the name or replace its avatar. A
name typed in any other session is refused as taken (seeded authors belong to
no session).

Visitors see refused uploads in plain words (``visitor_message``); the
detail, with paths and the names of settings, goes to the log.
"""

from __future__ import annotations

import logging
import typing as t

from flask import Blueprint, current_app, flash, redirect, render_template, session, url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from werkzeug.exceptions import RequestEntityTooLarge

from flask_imagekit import ImageKitError
from flask_imagekit.exceptions import SourceError
from flask_imagekit.forms import visitor_message

from .extensions import db
from .forms import UploadForm
from .models import Author, Photo
from .sourcegroups import FEATURED
from .specs import ANCHORS

if t.TYPE_CHECKING:
    from werkzeug.wrappers import Response
    from wtforms import Field

__all__ = ["CARD_SIZES", "OWNED_AUTHORS", "VARIANTS", "bp"]

logger = logging.getLogger(__name__)

bp = Blueprint("gallery", __name__)

#: Session key listing ``[id, name]`` of the authors created in the session.
OWNED_AUTHORS = "authors"
#: A session owns only the authors it created last (keeps the cookie small).
MAX_OWNED_AUTHORS = 10

#: The ``sizes`` of the gallery's cards: how wide a card is at each viewport width,
#: so the browser picks the narrowest candidate that fills it. It follows
#: ``ul.grid`` in ``static/style.css``: 1 column up to 600 px (1rem margins), 2 up
#: to 900 px, 3 up to 1200 px, then 4 in the 1200 px page (2rem margins, 1.2rem
#: gaps): 270 px.
CARD_SIZES = (
    "(max-width: 600px) calc(100vw - 2rem), "
    "(max-width: 900px) calc((100vw - 5.2rem) / 2), "
    "(max-width: 1200px) calc((100vw - 6.4rem) / 3), "
    "270px"
)

#: The specs the photo page shows with ``generateimage`` below the large image
#: (itself ``example_app:photo:display``): (label, spec id).
VARIANTS = [
    ("Gallery card", "example_app:photo:card"),
    ("WebP copy", "example_app:photo:webp"),
]


@bp.get("/")
def index() -> str:
    """The gallery: the featured banners, then the photos, newest first."""
    statement = (
        select(Photo)
        .options(selectinload(Photo.author))
        .order_by(Photo.created_at.desc(), Photo.id.desc())
    )
    page = db.paginate(statement, per_page=current_app.config["PHOTOS_PER_PAGE"], error_out=False)
    return render_template(
        "gallery.html", page=page, featured=list(FEATURED.files()), card_sizes=CARD_SIZES
    )


@bp.get("/photos/<int:photo_id>")
def detail(photo_id: int) -> str:
    """One photo, with every image flask_imagekit derives from it."""
    photo = db.get_or_404(Photo, photo_id)
    return render_template("detail.html", photo=photo, variants=VARIANTS, anchors=ANCHORS)


@bp.route("/upload", methods=["GET", "POST"])
def upload() -> str | Response | tuple[str, int]:
    """The upload form; a valid photo is stored and its page shown."""
    form = UploadForm()
    if not form.validate_on_submit():
        status = 400 if form.is_submitted() else 200
        return render_template("upload.html", form=form), status
    name = (form.author.data or "").strip()
    author = db.session.scalar(select(Author).where(Author.name == name)) if name else None
    if author is not None and (author.id, author.name) not in _owned_authors():
        return _name_taken(form, name)
    if name and author is None:
        author = Author(name=name)
        db.session.add(author)
    field: Field = form.avatar
    try:
        if author is not None and form.avatar.data:
            author.avatar = form.avatar.data  # processed by the model's column
        field = form.image
        photo = Photo(
            title=form.title.data,
            image=form.image.data,  # already processed by the form: stored as is
            crop_anchor=form.crop_anchor.data,
            author=author,
        )
        db.session.add(photo)
        db.session.commit()  # flask_imagekit generates the photo's specs now (Optimistic)
    except ImageKitError as exc:
        db.session.rollback()  # and the files stored for it are deleted
        return _refused(form, field, exc)
    except IntegrityError:
        db.session.rollback()
        return _name_taken(form, name)  # another session created it meanwhile
    if author is not None:
        _own(author)
    flash(f"“{photo.title}” was uploaded.", "success")
    return redirect(url_for(".detail", photo_id=photo.id))


def _owned_authors() -> list[tuple[int, str]]:
    """``(id, name)`` of the authors created in this session (the cookie is signed).

    The name is kept with the id so that an id given again to another author
    (after ``seed --reset``) does not belong to an old session.
    """
    owned = session.get(OWNED_AUTHORS)
    if not isinstance(owned, list):
        return []
    return [
        (entry[0], entry[1])
        for entry in owned
        if isinstance(entry, list)
        and len(entry) == 2
        and isinstance(entry[0], int)
        and isinstance(entry[1], str)
    ]


def _own(author: Author) -> None:
    owned = [[author_id, name] for author_id, name in _owned_authors() if author_id != author.id]
    session[OWNED_AUTHORS] = [*owned, [author.id, author.name]][-MAX_OWNED_AUTHORS:]


def _name_taken(form: UploadForm, name: str) -> tuple[str, int]:
    form.author.errors = [f"The name “{name}” is taken by another visitor. Choose another name."]
    return render_template("upload.html", form=form), 400


def _refused(form: UploadForm, field: Field, error: ImageKitError) -> tuple[str, int]:
    """Show the form again with plain words; the detail is for the log."""
    if isinstance(error, SourceError):
        logger.warning("Upload refused (%s): %s", field.name, error)
        status = 400
    else:
        logger.error("Upload failed (%s): %s", field.name, error, exc_info=error)
        status = 500
    field.errors = [visitor_message(error)]
    return render_template("upload.html", form=form), status


@bp.app_errorhandler(RequestEntityTooLarge)
def too_large(error: RequestEntityTooLarge) -> tuple[str, int]:
    """Show the upload form again when the request body is over ``MAX_CONTENT_LENGTH``."""
    form = UploadForm(formdata=None)
    limit = current_app.config["MAX_CONTENT_LENGTH"] / (1024 * 1024)
    form.image.errors = [f"The upload is larger than {limit:g} MB. Choose a smaller file."]
    return render_template("upload.html", form=form), 413
