"""Every name DESIGN.md promises is importable from its documented module."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "flask_imagekit": ["ImageKit", "ImageSpec", "register", "unregister"],
    "flask_imagekit.processors": [
        "Resize",
        "ResizeToCover",
        "ResizeToFill",
        "ResizeToFit",
        "SmartResize",
        "ResizeCanvas",
        "AddBorder",
        "Thumbnail",
        "Crop",
        "SmartCrop",
        "Anchor",
        "TrimBorderColor",
        "Adjust",
        "Reflection",
        "Transpose",
        "MakeOpaque",
        "SetOpacity",
        "ColorOverlay",
        "ImageOverlay",
        "Convert",
        "GaussianBlur",
        "ProcessorPipeline",
    ],
    "flask_imagekit.models": ["ImageSpecField", "ProcessedImageField"],
    "flask_imagekit.cachefiles": [
        "ImageCacheFile",
        "LazyImageCacheFile",
        "LazyGeneratedImageFile",
    ],
    "flask_imagekit.cachefiles.backends": ["Simple", "Celery", "RQ", "CacheFileState"],
    "flask_imagekit.cachefiles.strategies": ["JustInTime", "Optimistic"],
    "flask_imagekit.cachefiles.namers": ["hash", "source_name_as_path", "source_name_dot_hash"],
    "flask_imagekit.specs.sourcegroups": ["ImageFieldSourceGroup"],
    "flask_imagekit.signals": ["source_created", "source_changed", "source_deleted"],
    "flask_imagekit.storage": ["FileSystemStorage", "FsspecStorage"],
    "flask_imagekit.utils": [
        "get_field_info",
        "open_image",
        "save_image",
        "format_to_extension",
        "extension_to_format",
        "suggest_extension",
        "UnknownFormat",
        "UnknownExtension",
    ],
    "flask_imagekit.exceptions": [
        "ImageKitError",
        "AlreadyRegistered",
        "NotRegistered",
        "MissingSource",
        "SourceError",
        "ImproperlyConfigured",
    ],
    "flask_imagekit.forms": ["ProcessedImageField"],
}


@pytest.mark.parametrize(("module", "name"), [(m, n) for m, ns in PUBLIC.items() for n in ns])
def test_public_name_exists(module: str, name: str) -> None:
    assert getattr(importlib.import_module(module), name) is not None


def test_errors_share_one_base() -> None:
    from flask_imagekit import exceptions

    for name in exceptions.__all__:
        assert issubclass(getattr(exceptions, name), exceptions.ImageKitError)


def test_lazy_alias() -> None:
    from flask_imagekit.cachefiles import LazyGeneratedImageFile, LazyImageCacheFile

    assert LazyGeneratedImageFile is LazyImageCacheFile


def test_package_is_typed() -> None:
    from importlib.resources import files

    assert files("flask_imagekit").joinpath("py.typed").is_file()
