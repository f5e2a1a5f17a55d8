"""The errors flask_imagekit raises.

Every error a user can cause is an :class:`ImageKitError`, and its message says
what to do about it.
"""

from __future__ import annotations

__all__ = [
    "AlreadyRegistered",
    "GenerationError",
    "ImageKitError",
    "ImproperlyConfigured",
    "InvalidArgument",
    "JobRefused",
    "MissingCacheFile",
    "MissingSource",
    "NotRegistered",
    "SourceError",
    "StorageError",
    "SuspiciousName",
    "UnknownExtension",
    "UnknownFormat",
    "UnstoredSource",
]


class ImageKitError(Exception):
    """Base class of every error raised by flask_imagekit."""


class ImproperlyConfigured(ImageKitError):
    """An ``IMAGEKIT_*`` setting or a spec attribute has an invalid value."""


class AlreadyRegistered(ImageKitError):
    """Another object is already registered under the same id."""


class NotRegistered(ImageKitError, LookupError):
    """No object is registered under the requested id."""


class SourceError(ImageKitError):
    """A source image cannot be used: unreadable, corrupt, refused or too large."""


class MissingSource(SourceError):
    """A generator needs a source and none was given, or it no longer exists."""


class MissingCacheFile(ImageKitError):
    """A cache file is needed but does not exist (yet): an async backend may be on it."""


class GenerationError(ImageKitError):
    """A processor or encoder failed while generating a cache file."""


class StorageError(ImageKitError):
    """A storage could not read, write or delete a file."""


class SuspiciousName(StorageError, ValueError):
    """A file name would escape its storage root or is not a valid name."""


class UnknownFormat(ImageKitError, ValueError):
    """An image format name is not known to Pillow."""


class UnknownExtension(ImageKitError, ValueError):
    """A file extension does not belong to any image format Pillow knows."""


class UnstoredSource(ImageKitError, ValueError):
    """A backend that generates on workers was given a source they cannot read.

    Workers read sources by name from the source storage, so an upload, an open
    file or a filesystem path has to be stored first.
    """


class JobRefused(ImageKitError):
    """A worker refused a job: its signature or its fields are not what a scheduler sends."""


class InvalidArgument(ImproperlyConfigured, ValueError, TypeError):
    """A value given to flask_imagekit is not one it can use (a bad id, a wrong type).

    It is also a ``ValueError`` and a ``TypeError``, so code written against the
    built-in errors keeps catching it.
    """
