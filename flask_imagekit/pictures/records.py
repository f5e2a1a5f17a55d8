"""A picture's record, made again when it was lost: from the candidates that are there.

The record of a spec's pictures (its output's size, the source's width, the blur
preview: see :class:`~flask_imagekit.cachefiles.backends.states.PictureInfo`), and
the list of the candidates made, are written when a candidate is generated. A
state cache that loses them (a restart without persistence, an eviction,
``FLUSHDB``) loses them for good, since the files are there and nothing generates
them again: a page that finds no record makes it again, once, from the smallest
candidate that is there (read and scaled down to a preview, a few milliseconds),
and records it with the candidates known to be there. A candidate not there yet
leaves the preview out of the record; it is added when the candidate is made.
"""

from __future__ import annotations

import typing as t

from ..cachefiles.backends import CacheFileState
from ..cachefiles.backends.states import CandidateKey, PictureInfo
from ..exceptions import ImageKitError
from ..imaging import blur_preview, open_image
from ..imaging.preview import PREVIEW_SIDE
from ..specs.responsive import BROWSER_FORMATS

if t.TYPE_CHECKING:
    from ..cachefiles import ImageCacheFile

__all__ = ["learned_preview", "restore_record"]

# The formats a preview is read back from, cheapest to decode first.
_DECODE_ORDER = {"JPEG": 0, "WEBP": 1, "PNG": 2, "GIF": 3, "AVIF": 4}


def learned_preview(files: t.Iterable[ImageCacheFile]) -> tuple[str | None] | None:
    """``(preview,)`` of the candidates among ``files`` generated just now, which also
    recorded it with their state; None when none was generated."""
    for file in files:
        learned = getattr(file.generator, "picture_info", None)
        if learned:
            return (learned[1],)
    return None


def restore_record(
    backend: t.Any,
    base: ImageCacheFile,
    files: t.Mapping[CandidateKey, ImageCacheFile],
    record: PictureInfo,
    there: bool,
) -> str | None:
    """Record ``record`` for ``base``'s pictures, with the preview of the smallest
    candidate among ``files`` and the candidates known to be there; its preview.

    ``there``: every candidate in ``files`` exists (JustInTime has just made sure);
    otherwise only one whose state says it exists, or whose state is unknown, is
    read (the state cache was emptied: it may well be there).
    """
    remember = getattr(backend, "remember_picture", None)
    if remember is None:
        return None
    made = [(key, file) for key, file in files.items() if file is not base]
    if not made:
        return None
    key, smallest = min(made, key=lambda item: (item[0][0] or 0, _cost(item[1])))
    if not there:
        state = backend.lookup(smallest).state
        if state not in (None, CacheFileState.EXISTS):
            return None  # on its way: it records the preview when it is made
    preview, found = _read_preview(smallest)
    keys = [key for key, _ in made] if there else ([key] if found else [])
    remember(base, record._replace(preview=preview), keys)
    return preview


def _cost(file: ImageCacheFile) -> int:
    fmt = getattr(file.generator, "format", None) or ""
    return _DECODE_ORDER.get(fmt.upper(), len(BROWSER_FORMATS))


def _read_preview(file: ImageCacheFile) -> tuple[str | None, bool]:
    """The blur preview of ``file``, and whether it is there."""
    try:
        with file.storage.open(file.name, "rb") as fp:
            img = open_image(fp, formats=BROWSER_FORMATS, name=file.name)
            with img:
                img.draft(img.mode, (PREVIEW_SIDE * 4, PREVIEW_SIDE * 4))
                img.load()
                return blur_preview(img), True
    except FileNotFoundError:
        return None, False
    except (ImageKitError, OSError):
        return None, True  # there, but unreadable: a preview is optional
