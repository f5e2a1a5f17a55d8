"""The upload form.

The photo goes through flask_imagekit's WTForms ``ProcessedImageField``: the
upload is processed by the ``example_app:upload`` spec while the form
validates, so a file that is not a usable image (not an image, truncated, too
many pixels) becomes a validation error in plain words (flask_imagekit logs
the detail). The avatar is a plain file field; the model's
``ProcessedImageField`` column processes it when it is assigned.
"""

from __future__ import annotations

import typing as t

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from flask_imagekit.forms import ProcessedImageField

from .specs import ANCHORS

__all__ = ["UploadForm"]


def _anchor_choices() -> list[t.Any]:
    try:
        from wtforms import SelectChoice  # WTForms 3.3 deprecates (value, label) tuples
    except ImportError:
        return list(ANCHORS.items())
    return [SelectChoice(value, label) for value, label in ANCHORS.items()]


class UploadForm(FlaskForm):  # type: ignore[misc]
    """A photo with its title, the square crop's anchor and, optionally, its author."""

    title = StringField("Title", validators=[DataRequired(), Length(max=120)])
    image = ProcessedImageField(
        "Photo",
        spec_id="example_app:upload",
        validators=[FileRequired("Choose a photo to upload.")],
        render_kw={"accept": "image/*"},
    )
    crop_anchor = SelectField(
        "Square crop", choices=_anchor_choices(), default="c", validate_choice=True
    )
    author = StringField("Your name", validators=[Optional(), Length(max=80)])
    avatar = FileField("Your avatar", render_kw={"accept": "image/*"})
