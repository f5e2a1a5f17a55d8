"""The records a backend keeps of the pictures of a spec's output.

Every responsive candidate generated records, under keys named after its spec's
own file, what the pictures of that spec show (see
:class:`~flask_imagekit.cachefiles.backends.states.PictureInfo`: the output's size,
the source's width, the blur preview), so that a page renders a ``<picture>`` from
one lookup; and it adds its ``(width, format)`` to the candidates made of the spec,
so that deleting the source finds every one of them. Adding reads the list first,
from the shared cache: two processes adding to one list at the same moment may
each write it without the other's candidate (``flask imagekit clean`` finds such a
file once its source is gone).
"""

from __future__ import annotations

import typing as t

from ..sizing import source_size
from .states import (
    MAX_RECORDED_CANDIDATES,
    CandidateKey,
    PictureInfo,
    made_key,
    made_value,
    parse_made,
    parse_picture,
    picture_key,
    picture_value,
)

if t.TYPE_CHECKING:
    from .. import ImageCacheFile

__all__ = ["PictureRecords"]


class PictureRecords:
    """The picture records of a backend that keeps states (mixed into its class)."""

    def _call(self, file: ImageCacheFile, op: str, *args: t.Any, **kwargs: t.Any) -> t.Any:
        raise NotImplementedError  # the backend's access to its state cache

    def _exists_timeout(self, file: ImageCacheFile) -> int:
        raise NotImplementedError

    def picture_info(self, file: ImageCacheFile) -> PictureInfo | None:
        """What the responsive candidates of ``file`` (a spec's own file) recorded when
        generated: its output's size, the source's width, the preview. One read, never
        the storage."""
        key = picture_key(file.app_state.cache_prefix, file.name)
        return parse_picture(self._call(file, "get", key))

    def candidates_made(self, file: ImageCacheFile) -> tuple[CandidateKey, ...]:
        """The ``(width, format)`` of the candidates made of ``file`` (a spec's own file)."""
        return parse_made(
            self._call(file, "get", made_key(file.app_state.cache_prefix, file.name))
        )

    def remember_picture(
        self, file: ImageCacheFile, info: PictureInfo, made: t.Sequence[CandidateKey] = ()
    ) -> None:
        """Record ``info`` for the pictures of ``file`` (a spec's own file), and ``made``,
        candidates of it known to be there, with those recorded already."""
        self._record(file, file.name, info, made)

    def forget_picture(self, file: ImageCacheFile) -> None:
        """Drop the records of the pictures of ``file`` (its source is gone)."""
        prefix = file.app_state.cache_prefix
        self._call(file, "delete", picture_key(prefix, file.name))
        self._call(file, "delete", made_key(prefix, file.name))

    def record_candidate(self, file: ImageCacheFile) -> None:
        """``file`` was just generated: if it is a responsive candidate, record what it
        learned for its spec's pictures (nothing for any other file)."""
        generator = file.generator
        learned = getattr(generator, "picture_info", None)
        base_name = getattr(getattr(generator, "base", None), "cachefile_name", None)
        if not learned or not learned[0] or not base_name:
            return
        size, preview = learned
        # Known from the decode that made it; read from the header only for a
        # generator that did not say.
        source = getattr(generator, "source_size", None)
        source_width = source[0] if source else _source_width(generator, file)
        info = PictureInfo(size, preview, source_width)
        own = _key(file.candidate)
        self._record(file, base_name, info, [own] if own is not None else [])

    def _record(
        self,
        file: ImageCacheFile,
        base_name: str,
        info: PictureInfo,
        made: t.Sequence[CandidateKey],
    ) -> None:
        prefix = file.app_state.cache_prefix
        timeout = self._exists_timeout(file)
        self._call(
            file, "set", picture_key(prefix, base_name), picture_value(info), timeout=timeout
        )
        if made:
            key = made_key(prefix, base_name)
            known = parse_made(self._call(file, "get", key))
            if not set(made) <= set(known) and len(known) < MAX_RECORDED_CANDIDATES:
                self._call(file, "set", key, made_value([*known, *made]), timeout=timeout)


def _key(candidate: tuple[int | None, str | None] | None) -> CandidateKey | None:
    if candidate is None:
        return None
    width, fmt = candidate
    key = (width, fmt.upper() if fmt else None)
    return None if key == (None, None) else key


def _source_width(generator: t.Any, file: ImageCacheFile) -> int | None:
    try:
        size = source_size(generator, file.app_state)
    except Exception:
        return None  # the record does without it (a storage that fails just now)
    return None if size is None else size[0]
