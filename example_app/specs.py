"""The image specs of the example app, registered on its extension.

Two kinds are shown: a spec declared inline on the model (``Photo.webp`` in
:mod:`example_app.models`), and the registered specs below, which models use
through ``ImageSpecField(spec_id=...)``, templates through ``generateimage(...)``
and ``picture(...)``, and the upload form through ``spec_id=``.

Three strategies are shown: :class:`GalleryCard` is generated when a browser
first asks for one of its files (OnRequest), the photo page's images when a
photo is saved (Optimistic), the featured banners while the page renders
(JustInTime, the default).
"""

from __future__ import annotations

import typing as t

from flask_imagekit import ImageKitError, ImageSpec
from flask_imagekit.cachefiles.strategies import OnRequest, Optimistic
from flask_imagekit.processors import ResizeToFill, ResizeToFit
from flask_imagekit.utils import get_field_info

from .extensions import imagekit
from .sourcegroups import FEATURED

__all__ = [
    "AVATAR_SIZE",
    "CARD_FORMATS",
    "CARD_SIZE",
    "CARD_WIDTHS",
    "DISPLAY_BOX",
    "FEATURED_SIZE",
    "SQUARE_SIZE",
    "UPLOAD_BOX",
    "WEBP_BOX",
    "Display",
    "FeaturedBanner",
    "GalleryCard",
    "SquareCrop",
    "UploadedPhoto",
]

#: ``Photo.card``: the gallery grid's 4:3 crop, its largest candidate.
CARD_SIZE = (640, 480)
#: The narrower candidates of the card (a grid column is about 270 px wide on a
#: desktop screen: 320 px at 1x, the full 640 px at 2x).
CARD_WIDTHS = (320, 480)
#: The card's formats besides its own JPEG, best first.
CARD_FORMATS = ("AVIF", "WEBP")
#: ``Photo.display``: the large image of the detail page, fitted in this box.
DISPLAY_BOX = (1200, 800)
#: ``Photo.square``: a square crop anchored where the uploader chose.
SQUARE_SIZE = (240, 240)
#: ``Photo.webp``: a WebP copy fitted in this box.
WEBP_BOX = (640, 640)
#: Uploads are stored fitted in this box (the ``ProcessedImageField``).
UPLOAD_BOX = (1600, 1600)
#: ``Author.avatar``: stored as this square.
AVATAR_SIZE = (160, 160)
#: The featured banners (the custom source group).
FEATURED_SIZE = (640, 240)

#: The anchors the upload form offers for the square crop.
ANCHORS = {"c": "Centre", "t": "Top", "b": "Bottom", "l": "Left", "r": "Right"}


@imagekit.register.generator("example_app:upload")
class UploadedPhoto(ImageSpec):
    """What an upload is turned into before it is stored: at most 1600 px, JPEG.

    Used by the upload form (``forms.ProcessedImageField(spec_id=...)``), so a
    bad file is a validation error, and by the ``Photo.image`` column.
    """

    processors = [ResizeToFit(*UPLOAD_BOX, upscale=False)]
    format = "JPEG"
    options = {"quality": 88}


@imagekit.register.generator("example_app:photo:card")
class GalleryCard(ImageSpec):
    """The gallery's cards: a 4:3 crop at 640 px and narrower, in AVIF, WebP and JPEG.

    The gallery shows it with ``picture()``, which offers it at
    ``responsive_widths`` (and its own 640 px) in ``responsive_formats`` (and
    its own JPEG). OnRequest: the page renders without making anything; each
    file is made by the first browser that asks for it, and only the files
    browsers ask for are made. ``flask imagekit generate`` makes them all
    ahead of time (the ``Photo.card`` field gives it the photos).
    """

    processors = [ResizeToFill(*CARD_SIZE)]
    format = "JPEG"
    options = {"quality": 80}
    responsive_widths = CARD_WIDTHS
    responsive_formats = CARD_FORMATS
    cachefile_strategy = OnRequest


@imagekit.register.generator("example_app:photo:display")
class Display(ImageSpec):
    """The detail page's large image; generated as soon as a photo is saved."""

    processors = [ResizeToFit(*DISPLAY_BOX, upscale=False)]
    format = "JPEG"
    options = {"quality": 85}
    cachefile_strategy = Optimistic


@imagekit.register.generator("example_app:photo:square")
class SquareCrop(ImageSpec):
    """A square crop whose anchor comes from the photo's ``crop_anchor`` column.

    A spec that changes with its source: ``get_field_info`` gives the row the
    source was read from. Sources that do not come from a row (a name passed
    to ``generateimage``) are cropped around the centre.
    """

    format = "JPEG"
    options = {"quality": 85}
    cachefile_strategy = Optimistic

    @property
    def processors(self) -> list[t.Any]:
        """``ResizeToFill`` to :data:`SQUARE_SIZE` at the photo's anchor."""
        anchor = "c"
        try:
            photo, _ = get_field_info(self.source)
        except ImageKitError:
            pass
        else:
            anchor = getattr(photo, "crop_anchor", None) or "c"
        return [ResizeToFill(*SQUARE_SIZE, anchor=anchor)]


@imagekit.register.generator("example_app:featured")
class FeaturedBanner(ImageSpec):
    """The gallery's banners of the featured images (JustInTime, the default)."""

    processors = [ResizeToFill(*FEATURED_SIZE)]
    format = "JPEG"
    options = {"quality": 82}


# ``flask imagekit generate`` makes the banners of every featured image ahead of time.
imagekit.register.source_group("example_app:featured", FEATURED)
