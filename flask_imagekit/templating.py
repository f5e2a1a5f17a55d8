"""Jinja globals: ``generateimage``, ``thumbnail``, ``picture`` and ``srcset``.

``generateimage`` and ``thumbnail`` return the cache file; rendering it gives
``<img src width height>`` (with ``attrs`` added, escaped), and
``{% set th = ... %}`` gives ``th.url``, ``th.width`` and ``th.height``.
``picture`` and ``srcset`` (see :mod:`flask_imagekit.pictures`) give a spec's
output at several widths and formats.
"""

from __future__ import annotations

import functools
import re
import typing as t

from .cachefiles import ImageCacheFile
from .exceptions import ImproperlyConfigured
from .globals import current_state
from .pictures import picture, srcset

if t.TYPE_CHECKING:
    from flask import Flask

    from .state import AppState

__all__ = [
    "generateimage",
    "init_templating",
    "parse_dimensions",
    "picture",
    "srcset",
    "thumbnail",
]

THUMBNAIL_GENERATOR_ID = "imagekit:thumbnail"
_DIMENSIONS = re.compile(r"^(\d*)x(\d*)$")


def generateimage(
    generator_id: str, attrs: t.Mapping[str, t.Any] | None = None, **generator_kwargs: t.Any
) -> ImageCacheFile:
    """The cache file of the generator ``generator_id`` built with ``generator_kwargs``."""
    return file_for(generator_id, generator_kwargs, attrs)


def file_for(
    generator_id: str,
    generator_kwargs: t.Mapping[str, t.Any],
    attrs: t.Mapping[str, t.Any] | None = None,
    state: AppState | None = None,
) -> ImageCacheFile:
    """The cache file of ``generator_id`` built with ``generator_kwargs``.

    Files of specs whose output depends only on these arguments are remembered
    for a while (see :class:`~flask_imagekit.filememo.FileMemo`), so rendering the
    same image again costs a dictionary lookup and the strategy's check.
    """
    state = state or current_state()
    memo = state.file_memo
    key = memo.key(state.registry, generator_id, generator_kwargs, attrs)
    if key is None:
        return state.cachefile(generator_id, html_attrs=attrs, **generator_kwargs)
    epoch = state.states_epoch
    file: ImageCacheFile | None = memo.get(key, epoch)
    if file is None:
        file = state.cachefile(generator_id, html_attrs=attrs, **generator_kwargs)
        memo.put(key, file, epoch)
    return file


@functools.lru_cache(maxsize=512)
def parse_dimensions(dimensions: str) -> tuple[int | None, int | None]:
    """Parse ``"100x50"``, ``"100x"`` or ``"x50"`` into ``(width, height)``."""
    match = _DIMENSIONS.match(dimensions.strip()) if isinstance(dimensions, str) else None
    if match is None or match.groups() == ("", ""):
        msg = (
            f"Invalid thumbnail dimensions {dimensions!r}: use 'WIDTHxHEIGHT', 'WIDTHx' or "
            "'xHEIGHT', such as '100x50'."
        )
        raise ImproperlyConfigured(msg)
    width, height = (int(value) if value else None for value in match.groups())
    if width == 0 or height == 0:
        msg = f"Invalid thumbnail dimensions {dimensions!r}: sizes must be at least 1 pixel."
        raise ImproperlyConfigured(msg)
    return width, height


def thumbnail(
    dimensions: str,
    source: t.Any,
    generator_id: str | None = None,
    attrs: t.Mapping[str, t.Any] | None = None,
    anchor: t.Any = None,
    crop: bool | None = None,
    upscale: bool | None = None,
    **kwargs: t.Any,
) -> ImageCacheFile:
    """A thumbnail of ``source`` at ``dimensions`` (pilkit ``Thumbnail`` semantics).

    ``format="WEBP"`` (or any format) picks the output format, as in
    django-imagekit 6. With ``IMAGEKIT_THUMBNAIL_SIZES`` set, ``dimensions`` must
    be one of its strings, so a view that passes a visitor's value cannot make a
    new cache file per distinct size.
    """
    if not isinstance(dimensions, str):
        msg = f"Invalid thumbnail dimensions {dimensions!r}: give a string such as '100x50'."
        raise ImproperlyConfigured(msg)
    state = current_state()
    allowed = state.thumbnail_sizes
    if allowed is not None and dimensions.strip() not in allowed:
        msg = (
            f"thumbnail({dimensions!r}) is not in IMAGEKIT_THUMBNAIL_SIZES "
            f"({sorted(allowed)}); use one of those sizes or add this one to the setting."
        )
        raise ImproperlyConfigured(msg)
    kwargs["source"] = source
    kwargs["width"], kwargs["height"] = parse_dimensions(dimensions)
    # Like django-imagekit, pass only what the template gave.
    if anchor is not None:
        kwargs["anchor"] = anchor
    if crop is not None:
        kwargs["crop"] = crop
    if upscale is not None:
        kwargs["upscale"] = upscale
    return file_for(generator_id or THUMBNAIL_GENERATOR_ID, kwargs, attrs, state)


def init_templating(app: Flask) -> None:
    """Add the globals to ``app``'s Jinja environment."""
    app.jinja_env.globals.update(
        generateimage=generateimage, thumbnail=thumbnail, picture=picture, srcset=srcset
    )
