"""The example app's models: photos, with derived images, and their authors.

``Photo.image`` is a ``ProcessedImageField``: an upload assigned to it is fitted
in 1600 px and stored once, as JPEG, without its EXIF data. The ``ImageSpecField``
attributes derive the other images from it. ``card`` uses the ``OnRequest``
strategy: its files are made when a browser first asks for them. The others use
``Optimistic``: they are generated when a photo is committed (flask_imagekit's
``source_created`` signal). Looking up any of their URLs costs no storage call.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from flask_imagekit.models import ImageSpecField, ProcessedImageField, StoredImage
from flask_imagekit.processors import ResizeToFill, ResizeToFit

from .extensions import db
from .specs import AVATAR_SIZE, WEBP_BOX, UploadedPhoto

__all__ = ["Author", "Photo"]

OPTIMISTIC = "flask_imagekit.cachefiles.strategies.Optimistic"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Author(db.Model):  # type: ignore[name-defined,misc]
    """Someone who uploads photos; the avatar is cropped to a square once, on upload."""

    __tablename__ = "author"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    avatar: Mapped[StoredImage | None] = ProcessedImageField(
        upload_to="avatars",
        processors=[ResizeToFill(*AVATAR_SIZE)],
        format="JPEG",
        options={"quality": 85},
    )
    photos: Mapped[list[Photo]] = relationship(back_populates="author")

    def __repr__(self) -> str:
        return f"<Author {self.id} {self.name!r}>"


class Photo(db.Model):  # type: ignore[name-defined,misc]
    """A photo: the stored upload and the images derived from it."""

    __tablename__ = "photo"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(120))
    #: Processed as the upload form's spec does it (an upload the form already
    #: processed is stored as is).
    image: Mapped[StoredImage] = ProcessedImageField(
        upload_to="photos", spec=UploadedPhoto, nullable=False
    )
    #: Where ``square`` is cropped: one of :data:`example_app.specs.ANCHORS`.
    crop_anchor: Mapped[str] = mapped_column(String(2), default="c")
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("author.id"))
    author: Mapped[Author | None] = relationship(back_populates="photos")

    #: Registered spec :class:`example_app.specs.GalleryCard` (OnRequest): the
    #: gallery shows it with ``picture()``; the field lets ``flask imagekit
    #: generate`` make its files ahead of time.
    card = ImageSpecField(source="image", spec_id="example_app:photo:card")
    #: Registered spec :class:`example_app.specs.Display`.
    display = ImageSpecField(source="image", spec_id="example_app:photo:display")
    #: Registered dynamic spec :class:`example_app.specs.SquareCrop`.
    square = ImageSpecField(source="image", spec_id="example_app:photo:square")
    #: Shorthand spec (id ``example_app:photo:webp``): a WebP copy.
    webp = ImageSpecField(
        source="image",
        processors=[ResizeToFit(*WEBP_BOX)],
        format="WEBP",
        options={"quality": 80},
        cachefile_strategy=OPTIMISTIC,
    )

    def __repr__(self) -> str:
        return f"<Photo {self.id} {self.title!r}>"
