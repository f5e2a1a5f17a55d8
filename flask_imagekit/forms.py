"""WTForms integration: a file field that processes the uploaded image on validation.

Needs the ``wtforms`` extra (``pip install imagekit-flask[wtforms]``)::

    class AvatarForm(FlaskForm):
        avatar = ProcessedImageField(spec_id="myapp:avatar", validators=[FileRequired()])

After ``form.validate()``, ``form.avatar.data`` is the processed image as a
werkzeug ``FileStorage`` whose filename has the output format's extension; a
source that is not a usable image becomes a validation error. Assigned to a
model's ``ProcessedImageField`` column, it is stored as is, not processed again.
"""

from __future__ import annotations

import io
import os
import typing as t

from werkzeug.datastructures import FileStorage
from wtforms import FileField, ValidationError

from .config import current_state
from .exceptions import ImageKitError, ImproperlyConfigured
from .specs import ImageSpec
from .utils import format_to_extension

__all__ = ["ProcessedImageField", "ProcessedUpload"]


class ProcessedUpload(FileStorage):
    """An upload already processed by a spec (model columns store it unchanged)."""

    imagekit_processed = True


class ProcessedImageField(FileField):  # type: ignore[misc]
    """A file field whose upload is processed by a spec when the form validates.

    Give a registered ``spec_id``, or ``processors``/``format``/``options`` for a
    spec of its own.
    """

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
        if spec_id and (processors is not None or format or options):
            msg = "ProcessedImageField takes spec_id= or processors/format/options, not both."
            raise ImproperlyConfigured(msg)
        self.spec_id = spec_id
        self.spec_class: type[ImageSpec] | None = None
        if not spec_id:
            attrs = {
                "processors": list(processors or ()),
                "format": format,
                "options": options,
                "autoconvert": autoconvert,
            }
            self.spec_class = type("ProcessedImageFieldSpec", (ImageSpec,), attrs)

    def _spec(self, upload: FileStorage) -> t.Any:
        if self.spec_id:
            return current_state().registry.get_generator(self.spec_id, source=upload)
        assert self.spec_class is not None
        return self.spec_class(source=upload)

    def post_validate(self, form: t.Any, validation_stopped: bool) -> None:
        """Process the upload once the other validators passed."""
        upload: t.Any = getattr(self, "data", None)
        if validation_stopped or not isinstance(upload, FileStorage) or not upload:
            return
        if isinstance(upload, ProcessedUpload):
            return
        spec = self._spec(upload)
        try:
            content = spec.generate()
        except ImageKitError as exc:
            raise ValidationError(str(exc)) from exc
        fmt = spec.format or _format_of(content)
        stem = os.path.splitext(os.path.basename(upload.filename or "image"))[0] or "image"
        self.data = ProcessedUpload(
            stream=content,
            filename=f"{stem}{format_to_extension(fmt)}",
            name=upload.name,
            content_type=_mimetype(fmt),
        )


def _format_of(content: io.BytesIO) -> str:
    from PIL import Image

    with Image.open(io.BytesIO(content.getvalue())) as img:
        return img.format or "JPEG"


def _mimetype(fmt: str) -> str:
    from PIL import Image

    return Image.MIME.get(fmt.upper(), "application/octet-stream")
