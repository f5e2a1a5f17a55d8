"""SQLAlchemy integration: spec attributes on models, processed upload columns.

``ImageSpecField`` is a virtual attribute: ``profile.avatar_thumbnail`` is the
cache file of a spec applied to the ``avatar`` column. Defining one registers
its spec and an :class:`~flask_imagekit.specs.sourcegroups.ImageFieldSourceGroup`;
for the sessions of a Flask-SQLAlchemy ``db.session`` given to the extension
(see :func:`listen`), every registered group's column then sends
``source_created`` / ``source_changed`` / ``source_deleted`` once the
transaction commits (never for rolled-back work), so strategies such as
``Optimistic`` generate files as soon as a source is saved.

``ProcessedImageField`` is a real column: assigning an upload processes it once
and stores the result; the column keeps the stored name.
"""

from __future__ import annotations

from .columns import ProcessedColumn, ProcessedImageField, StoredImageType, spec_signature
from .fields import ImageSpecField
from .stored import StoredImage
from .transactions import listen

__all__ = [
    "ImageSpecField",
    "ProcessedColumn",
    "ProcessedImageField",
    "StoredImage",
    "StoredImageType",
    "listen",
    "spec_signature",
]
