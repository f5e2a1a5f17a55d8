"""WTForms integration: a file field that processes the uploaded image on validation.

Needs the ``wtforms`` extra (``pip install imagekit-flask[wtforms]``)::

    class AvatarForm(FlaskForm):
        avatar = ProcessedImageField(spec_id="myapp:avatar", validators=[FileRequired()])

After ``form.validate()``, ``form.avatar.data`` is the processed image as a
werkzeug ``FileStorage`` whose filename has the output format's extension; a
source that is not a usable image becomes a validation error. Assigned to a
model's ``ProcessedImageField`` column with the same spec, it is stored as is,
not processed again; a column with another spec processes the original upload
with its own spec.

The validation error is in plain words for the visitor (see
:func:`visitor_message`): no paths, file names or names of settings. The
library's detailed message, which says what to configure, is logged as a
warning and kept on the field as ``field.imagekit_error``.
"""

from __future__ import annotations

import logging
import os
import re
import typing as t

from PIL import Image
from werkzeug.datastructures import FileStorage
from wtforms import FileField, ValidationError

from . import defaults
from .exceptions import ImageKitError, MissingSource, SourceError
from .formats import format_to_extension, sniff_format
from .globals import current_state, current_state_or_none
from .registry import default_registry
from .specs import ImageSpec
from .specs.fieldspecs import spec_class, spec_signature
from .specs.hashing import canonical

__all__ = ["ProcessedImageField", "ProcessedUpload", "visitor_message"]

logger = logging.getLogger(__name__)

#: How formats are named to visitors, where it differs from Pillow's name.
_FORMAT_NAMES = {"WEBP": "WebP", "MPO": "JPEG"}

# File names are quoted in messages: a file called "corrupt.png" says nothing.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
# (words in a SourceError's message, what a visitor is told), first match wins.
_SOURCE_MESSAGES = (
    (("is empty",), "The file is empty. Choose the image again."),
    (("has no pixels",), "This image has no pixels. Choose another image."),
    (
        ("scans", "marker segments"),
        "This JPEG is saved in a way we cannot use. Save it again as an ordinary JPEG "
        "and upload that.",
    ),
    (
        ("truncated", "corrupt", "could not decode"),
        "The file is truncated or damaged. Upload the complete file again.",
    ),
    (
        ("over the limit", "more pixels than"),
        "This image is too large. Upload an image with fewer pixels.",
    ),
    (("could not read", "could not open"), "The file could not be read. Upload it again."),
)


class ProcessedUpload(FileStorage):
    """An upload already processed by a spec.

    A model column with the same spec stores it unchanged; one with another spec
    processes :attr:`imagekit_original` (the upload as it was received) instead.
    """

    imagekit_processed = True
    #: What made it (see :func:`flask_imagekit.specs.fieldspecs.spec_signature`).
    imagekit_spec: str | None = None
    #: The upload before processing.
    imagekit_original: FileStorage | None = None


class ProcessedImageField(FileField):  # type: ignore[misc]
    """A file field whose upload is processed by a spec when the form validates.

    Give a registered ``spec_id``, or ``processors``/``format``/``options`` for a
    spec of its own; with both (django-imagekit's form usage), the spec is
    registered under ``spec_id``. A refused upload's error is shown in plain
    words; the exception, with the detail, is :attr:`imagekit_error`.
    """

    #: The error that refused the last upload (None if it was accepted).
    imagekit_error: ImageKitError | None = None

    def __init__(
        self,
        label: str | None = None,
        validators: t.Sequence[t.Any] | None = None,
        *,
        spec_id: str | None = None,
        processors: t.Any = None,
        format: str | None = None,
        options: t.Mapping[str, t.Any] | None = None,
        autoconvert: bool = True,
        **kwargs: t.Any,
    ) -> None:
        super().__init__(label, validators, **kwargs)
        self.spec_id = spec_id
        self.spec_class: type[ImageSpec] | None = None
        if not spec_id or processors is not None or format or options:
            self.spec_class = _spec_class(processors, format, options, autoconvert)
            if spec_id:
                # As django-imagekit does: the field's spec becomes a registered one.
                default_registry.register_generator(spec_id, self.spec_class, replace=True)
                self.spec_class = None

    def _spec(self, upload: FileStorage) -> t.Any:
        if self.spec_id:
            return current_state().registry.get_generator(self.spec_id, source=upload)
        assert self.spec_class is not None
        return self.spec_class(source=upload)

    def post_validate(self, form: t.Any, validation_stopped: bool) -> None:
        """Process the upload once the other validators passed."""
        self.imagekit_error = None
        upload: t.Any = getattr(self, "data", None)
        if validation_stopped or not isinstance(upload, FileStorage) or not upload:
            return
        if isinstance(upload, ProcessedUpload):
            return
        spec = self._spec(upload)
        try:
            content = spec.generate()
        except ImageKitError as exc:
            self.imagekit_error = exc
            logger.warning(
                "flask_imagekit: the upload %r of the field %r was refused: %s",
                upload.filename,
                self.name,
                exc,
            )
            raise ValidationError(visitor_message(exc)) from exc
        fmt = spec.format or sniff_format(content)
        stem = os.path.splitext(os.path.basename(upload.filename or "image"))[0] or "image"
        processed = ProcessedUpload(
            stream=content,
            filename=f"{stem}{format_to_extension(fmt)}",
            name=upload.name,
            content_type=_mimetype(fmt),
        )
        processed.imagekit_spec = spec_signature(spec)
        processed.imagekit_original = upload
        self.data = processed


# WTForms builds its fields again for every form instance: one class per settings,
# so registering it again is a no-op.
_spec_classes: dict[str, type[ImageSpec]] = {}


def _spec_class(
    processors: t.Any, format: str | None, options: t.Mapping[str, t.Any] | None, autoconvert: bool
) -> type[ImageSpec]:
    try:
        listed = list(processors or ())
    except TypeError:
        listed = processors  # not a list: spec_class() says so
    key = canonical([listed, format, options, autoconvert])
    cls = _spec_classes.get(key)
    if cls is None:
        cls = _spec_classes[key] = spec_class(
            processors if processors is not None else [],
            format,
            options,
            name="ProcessedImageFieldSpec",
            autoconvert=autoconvert,
        )
    return cls


def visitor_message(error: ImageKitError) -> str:
    """Say in plain words why an upload was refused with ``error``.

    For the visitor who uploaded it: no paths, file names or names of settings,
    only what they can do. Log ``error`` itself for the site's owner.
    """
    if isinstance(error, MissingSource):
        return "No file was received. Choose the image again."
    if not isinstance(error, SourceError):
        return "Your image could not be saved right now. Please try again later."
    text = _QUOTED.sub("", str(error)).lower()
    for words, message in _SOURCE_MESSAGES:
        if any(word in text for word in words):
            return message
    return f"This file is not an image we accept. Upload {_accepted_formats()} image."


def _accepted_formats() -> str:
    state = current_state_or_none()
    formats = (
        state.allowed_source_formats if state is not None else defaults.ALLOWED_SOURCE_FORMATS
    )
    names = list(dict.fromkeys(_FORMAT_NAMES.get(fmt, fmt) for fmt in formats))
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    article = "an" if listed[:1] in "AEIOU" else "a"
    return f"{article} {listed}"


def _mimetype(fmt: str) -> str:
    return Image.MIME.get(fmt.upper(), "application/octet-stream")
