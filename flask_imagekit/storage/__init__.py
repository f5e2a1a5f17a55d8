"""Storages: where source images and generated cache files are kept.

A storage maps relative, ``"/"``-separated names such as ``"CACHE/images/a.jpg"``
to bytes.  Every storage checks names with :func:`clean_name`, so a name that is
accepted by one storage is accepted by all of them, and no name can reach
outside the storage root.

Two storages are provided:

* :class:`FileSystemStorage` keeps files in a local directory.
* :class:`FsspecStorage` keeps files in any `fsspec <https://filesystem-spec.readthedocs.io>`_
  filesystem (S3, GCS, memory, ...).

The rules for names live in :mod:`flask_imagekit.storage.names`, the interface in
:mod:`flask_imagekit.storage.base`.
"""

from __future__ import annotations

from .base import Storage
from .filesystem import FileSystemStorage
from .fsspecstorage import FsspecStorage
from .names import (
    MAX_COMPONENT_BYTES,
    MAX_NAME_BYTES,
    MAX_NAME_COMPONENTS,
    clean_name,
    is_temporary_name,
)

__all__ = [
    "MAX_COMPONENT_BYTES",
    "MAX_NAME_BYTES",
    "MAX_NAME_COMPONENTS",
    "FileSystemStorage",
    "FsspecStorage",
    "Storage",
    "clean_name",
    "is_temporary_name",
]
