"""The pixel size of a cache file: from its state, its strategy, or the file itself.

A page needs ``width`` and ``height``. The backend's state usually knows them (a
generation records them); a strategy may know them without the file
(``expected_size``: OnRequest foresees them from the source's header); otherwise
the strategy may generate the file, and the size is read from the file's header
once and remembered in its state.
"""

from __future__ import annotations

import typing as t

from ..exceptions import MissingCacheFile
from .output import read_size

if t.TYPE_CHECKING:
    from .file import ImageCacheFile

__all__ = ["measure"]


def measure(file: ImageCacheFile) -> tuple[int, int]:
    """The ``(width, height)`` of ``file``; the strategy may generate it first.

    Raises :class:`~flask_imagekit.exceptions.MissingCacheFile` when the file is
    not there yet (a worker still has to make it), and what the strategy raises.
    """
    expected = getattr(file.cachefile_strategy, "expected_size", None)
    if expected is not None:
        # Known without generating; None: the state says the file exists, read it.
        size = expected(file)
        if size is not None:
            return t.cast(tuple[int, int], size)
    file._require_content()
    size = file._size  # the strategy may have just generated it
    if size is not None:
        return size
    backend = file.cachefile_backend
    size = backend.dimensions(file)
    if size is None:
        try:
            size = _stored_size(file)
        except FileNotFoundError:
            # Assumed to exist (Optimistic) but missing: make it now.
            file.generate()
            try:
                size = file._size or _stored_size(file)
            except FileNotFoundError as exc:
                msg = (
                    f"{file.name!r} does not exist yet (its backend {backend!r} may "
                    "still be generating it), so its size is unknown."
                )
                raise MissingCacheFile(msg) from exc
        backend.remember_dimensions(file, size)
    return t.cast(tuple[int, int], size)


def _stored_size(file: ImageCacheFile) -> tuple[int, int]:
    with file.storage.open(file.name, "rb") as fp:
        return read_size(fp)
