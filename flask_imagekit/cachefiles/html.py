"""Markup of cache files: ``<img>`` and ``<source>`` tags, placeholders, and the
warnings of images that fail.

In production a file that cannot be shown renders a placeholder (the built-in
one is a neutral inline SVG sized like the file), with one warning per file and
failure window.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import typing as t
from urllib.parse import quote

from markupsafe import Markup, escape

from ..exceptions import (
    GenerationError,
    ImageKitError,
    ImproperlyConfigured,
    MissingCacheFile,
    SourceError,
    StorageError,
)

__all__ = [
    "PER_IMAGE_ERRORS",
    "SHOWN_INSTEAD",
    "WarningWindows",
    "blur_style",
    "builtin_placeholder",
    "check_attributes",
    "placeholder_tag",
    "size_from_attributes",
    "source_tag",
    "srcset_entry",
    "tag",
]

logger = logging.getLogger("flask_imagekit")

#: Problems of one image, which degrade to a placeholder in production.
PER_IMAGE_ERRORS: tuple[type[ImageKitError], ...] = (
    SourceError,
    GenerationError,
    MissingCacheFile,
    StorageError,
)

#: What :meth:`WarningWindows.warn` logs by default.
SHOWN_INSTEAD = "flask_imagekit: %s cannot be shown, rendering a placeholder: %s"

_INVALID_ATTRIBUTE = re.compile(r"[\s/>=\"'<]", re.ASCII)
# An image as a data URI: what a blurred preview may be.
_IMAGE_DATA_URI = re.compile(r"data:image/[a-z0-9.+-]+[;,]", re.ASCII | re.IGNORECASE)
# What may stay as it is in an unquoted CSS url() (no quotes, parentheses, backslashes
# or spaces); anything else is percent-encoded, which a data URI decodes back.
_CSS_URL_SAFE = "/:;,=+-._~%"
_WHITESPACE = re.compile(r"\s")


class WarningWindows:
    """One warning per image and kind of failure within a window of seconds."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def warn(
        self, label: str, error: BaseException, window: float, message: str = SHOWN_INSTEAD
    ) -> None:
        """Log ``message`` % (``label``, ``error``) unless done lately for them.

        ``message`` says what happened (by default: ``label`` cannot be shown, a
        placeholder is); each message has windows of its own.
        """
        key = f"{label}|{type(error).__name__}|{message}"
        now = time.monotonic()
        with self._lock:
            if self._until.get(key, 0.0) > now:
                return
            if len(self._until) > self.max_entries:
                self._until.clear()
            self._until[key] = now + window
        logger.warning(message, label, error)


def check_attributes(attrs: t.Mapping[t.Any, t.Any]) -> None:
    """Refuse HTML attribute names that could break out of the tag."""
    for key in attrs:
        if not isinstance(key, str) or not key or _INVALID_ATTRIBUTE.search(key):
            msg = (
                f"Invalid HTML attribute name {key!r}: names cannot hold spaces, quotes, "
                "'/', '<', '>' or '='."
            )
            raise ImproperlyConfigured(msg)


def tag(parts: list[str], attrs: t.Mapping[str, t.Any]) -> Markup:
    """``<img parts... attrs...>`` with the attributes' values escaped."""
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        parts.append(escape(key) if value is True else f'{escape(key)}="{escape(value)}"')
    return Markup(f"<img {' '.join(parts)}>")


def builtin_placeholder(size: tuple[int, int] | None) -> str:
    """A neutral grey inline SVG, sized like the file when its size is known."""
    width, height = size or (1, 1)
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><rect width="100%" height="100%" fill="#e5e7eb"/></svg>'
    )
    return "data:image/svg+xml," + quote(svg, safe=' =:/"')


def size_from_attributes(attrs: t.Mapping[str, t.Any] | None) -> tuple[int, int] | None:
    """The size ``width``/``height`` attributes give, when both are numbers."""
    attrs = attrs or {}
    try:
        return int(attrs["width"]), int(attrs["height"])
    except (KeyError, TypeError, ValueError):
        return None


def placeholder_tag(
    url: str, size: tuple[int, int] | None, attrs: t.Mapping[str, t.Any]
) -> Markup:
    """The ``<img>`` of a placeholder at ``url``, sized unless ``attrs`` size it."""
    parts = [f'src="{escape(url)}"']
    if size is not None and "width" not in attrs and "height" not in attrs:
        parts.append(f'width="{size[0]}" height="{size[1]}"')
    return tag(parts, attrs)


def srcset_entry(url: str, width: int | None) -> str:
    """``"URL 480w"``: one candidate of a ``srcset``, its URL safe to split on spaces.

    ``width`` None: the URL alone (the one candidate, of a width not known yet).
    """
    if _WHITESPACE.search(url):
        url = _WHITESPACE.sub(lambda match: quote(match.group()), url)
    return url if width is None else f"{url} {width}w"


def source_tag(mime: str, srcset: str, sizes: str | None) -> str:
    """``<source type=.. srcset=.. sizes=..>``, the values escaped (no ``sizes``: None)."""
    tail = "" if sizes is None else f' sizes="{escape(sizes)}"'
    return f'<source type="{escape(mime)}" srcset="{escape(srcset)}"{tail}>'


def blur_style(preview: str, style: t.Any = None) -> str | None:
    """CSS showing ``preview`` behind an ``<img>`` until the image covers it.

    ``preview`` must be an image ``data:`` URI (anything else gives None); it goes
    in an unquoted ``url()`` percent-encoded where it could end the ``url()`` or the
    declaration. ``style``, the tag's own, comes after, so its declarations win.
    The result is escaped as any attribute value when the tag is written.
    """
    if not isinstance(preview, str) or not _IMAGE_DATA_URI.match(preview):
        return None
    own = f"background-size:cover;background-image:url({quote(preview, safe=_CSS_URL_SAFE)})"
    return f"{own};{style}" if style else own
