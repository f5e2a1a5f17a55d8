"""The pages: the gallery, a photo's page, and the upload form."""

from __future__ import annotations

import typing as t

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.exceptions import RequestEntityTooLarge

from flask_imagekit import ImageKitError

from .extensions import db
from .forms import UploadForm
from .models import Author, Photo
from .sourcegroups import FEATURED
from .specs import ANCHORS

if t.TYPE_CHECKING:
    from werkzeug.wrappers import Response

__all__ = ["VARIANTS", "bp"]

bp = Blueprint("gallery", __name__)

#: The specs the photo page shows with ``generateimage`` below the large image
#: (itself ``example_app:photo:display``): (label, spec id).
VARIANTS = [
    ("Gallery thumbnail", "example_app:photo:thumbnail"),
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
    return render_template("gallery.html", page=page, featured=list(FEATURED.files()))


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
    author = _author(form.author.data)
    if author is not None and form.avatar.data:
        try:
            author.avatar = form.avatar.data  # processed by the model's column
        except ImageKitError as exc:
            db.session.rollback()
            form.avatar.errors = [str(exc)]
            return render_template("upload.html", form=form), 400
    photo = Photo(
        title=form.title.data,
        image=form.image.data,  # already processed by the form: stored as is
        crop_anchor=form.crop_anchor.data,
        author=author,
    )
    db.session.add(photo)
    db.session.commit()  # flask_imagekit generates the photo's specs now (Optimistic)
    flash(f"“{photo.title}” was uploaded.", "success")
    return redirect(url_for(".detail", photo_id=photo.id))


def _author(name: str | None) -> Author | None:
    name = (name or "").strip()
    if not name:
        return None
    author = db.session.scalar(select(Author).where(Author.name == name))
    if author is None:
        author = Author(name=name)
        db.session.add(author)
    return author


@bp.app_errorhandler(RequestEntityTooLarge)
def too_large(error: RequestEntityTooLarge) -> tuple[str, int]:
    """Show the upload form again when the request body is over ``MAX_CONTENT_LENGTH``."""
    form = UploadForm(formdata=None)
    limit = current_app.config["MAX_CONTENT_LENGTH"] / (1024 * 1024)
    form.image.errors = [f"The upload is larger than {limit:g} MB. Choose a smaller file."]
    return render_template("upload.html", form=form), 413
