"""The layout of a ``<picture>``: its candidates, their URLs, the output's size and preview.

:meth:`Layout.resolve` finds the size of the spec's own output and the source's
width (what the candidates recorded with their state, else the source's header or
the spec's own file), builds the cache file of each candidate, and under JustInTime
generates the missing ones together; the layout then writes the ``srcset`` values
and the ``<picture>`` markup.
"""

from __future__ import annotations

import dataclasses
import typing as t

from markupsafe import escape
from PIL import Image

from ..cachefiles.backends import CachedFileBackend, CacheFileState
from ..cachefiles.backends.states import PictureInfo, for_page
from ..cachefiles.html import blur_style, source_tag, srcset_entry, tag
from ..cachefiles.sizing import Foreseen, SizeUnknown, foresee, foresee_spec
from ..cachefiles.strategies import JustInTime
from ..exceptions import MissingCacheFile, SourceError
from ..signals import existence_required
from ..specs import decode_together
from ..specs.responsive import candidate_widths
from .records import learned_preview, restore_record

if t.TYPE_CHECKING:
    from ..cachefiles import ImageCacheFile
    from ..state import AppState

__all__ = ["Key", "Layout", "Request", "picture_info"]

#: ``(width, format)`` of a candidate: None for the spec's own output width or format.
Key = tuple[int | None, str | None]


@dataclasses.dataclass(frozen=True)
class Request:
    """What a template asked for."""

    generator_id: str
    kwargs: dict[str, t.Any]
    widths: t.Iterable[int] | None
    formats: t.Iterable[str] | None
    sizes: str | None
    attrs: t.Mapping[str, t.Any] | None
    placeholder: str | None
    #: ``srcset()``: the value of one format's srcset alone.
    only: bool = False


def picture_info(base: ImageCacheFile) -> PictureInfo | None:
    """What the candidates of the spec's own file ``base`` recorded (None: nothing yet)."""
    reader = getattr(base.cachefile_backend, "picture_info", None)
    return None if reader is None else t.cast("PictureInfo | None", reader(base))


@dataclasses.dataclass
class Layout:
    """The candidates of one picture, their URLs, and the output's size and preview."""

    #: None when it cannot be foreseen before the file is made (OnRequest): then the
    #: only candidate of each format is the spec's full output, and no width is told.
    size: tuple[int, int] | None
    preview: str | None
    files: dict[Key, ImageCacheFile]
    urls: dict[Key, str]
    base_url: str
    just_in_time: bool
    pending: bool
    #: The files shown: the candidates, and the spec's own file (the ``<img>``'s ``src``).
    shown: dict[Key, ImageCacheFile]

    @classmethod
    def resolve(
        cls,
        state: AppState,
        request: Request,
        base: ImageCacheFile,
        widths: tuple[int, ...],
        formats: list[str | None],
    ) -> Layout:
        """Find the output's size, build the candidates, and (JustInTime) generate them."""
        backend = base.cachefile_backend
        just_in_time = isinstance(base.cachefile_strategy, JustInTime) and isinstance(
            backend, CachedFileBackend
        )
        info = picture_info(base)
        size: tuple[int, int] | None
        if info is not None:
            size, source_width = info.size, info.source_width
        else:
            found = _from_header(base, state) if just_in_time else _foreseen(base)
            size, source_width = found.size, found.source[0] if found.source else None
        # JustInTime with the size unknown: every width, until the spec's own file tells.
        every = just_in_time and size is None
        files = candidates(state, request, base, widths, formats, size, source_width, every)
        pending = False
        if just_in_time:
            offer = (widths, source_width)
            size, files, pending = generate_missing(
                base, backend, files, size, offer, show_base=not request.only
            )
            urls = {key: file.storage.url(file.name) for key, file in files.items()}
            base_url = base.storage.url(base.name)
        else:
            urls = {key: file.url for key, file in files.items()}
            base_url = base.url
        preview = info.preview if info is not None else None
        if info is None and size is not None:
            learned = learned_preview(files.values())
            if learned is not None:
                preview = learned[0]  # just generated: recorded with their state meanwhile
            elif not pending and (just_in_time or request.placeholder == "blur"):
                # Nothing recorded, nothing generated: the record was lost (a state cache
                # emptied), or never made. Made again once, from what is there.
                record = PictureInfo(size, None, source_width)
                preview = restore_record(backend, base, files, record, just_in_time)
        shown = files if request.only else {**files, (None, None): base}
        return cls(size, preview, files, urls, base_url, just_in_time, pending, shown)

    def srcset(self, fmt: str | None) -> str:
        """The srcset value of the candidates in ``fmt`` (None: the spec's own format).

        With the output's size unknown, the one candidate of ``fmt`` without a width.
        """
        full = self.size[0] if self.size is not None else None
        entries = [
            srcset_entry(url, full if width is None else width)
            for (width, form), url in self.urls.items()
            if form == fmt
        ]
        return ", ".join(entries)

    def markup(self, request: Request, attrs: dict[str, t.Any]) -> str:
        """The ``<picture>``: a ``<source>`` per modern format, then the ``<img>``."""
        size = self.size
        # Sizes mean nothing without widths in the srcset (an output of unknown size),
        # and the <img>'s one candidate of unknown width is its src.
        sizes = None if size is None else request.sizes or default_sizes(size)
        formats = list(dict.fromkeys(form for _, form in self.urls if form is not None))
        sources = [source_tag(Image.MIME[form], self.srcset(form), sizes) for form in formats]
        parts = [f'src="{escape(self.base_url)}"']
        if size is not None and sizes is not None:
            parts.append(f'srcset="{escape(self.srcset(None))}"')
            parts.append(f'sizes="{escape(sizes)}"')
            if "width" not in attrs and "height" not in attrs:
                parts.append(f'width="{size[0]}" height="{size[1]}"')
        img_attrs = {"loading": "lazy", "decoding": "async", **attrs}
        if request.placeholder == "blur" and self.preview is not None:
            style = blur_style(self.preview, attrs.get("style"))
            if style is not None:
                img_attrs["style"] = style
        return f"<picture>{''.join(sources)}{tag(parts, img_attrs)}</picture>"


def default_sizes(size: tuple[int, int]) -> str:
    """Shown at its own width, or the viewport's on narrower screens."""
    return f"(max-width: {size[0]}px) 100vw, {size[0]}px"


def generate_missing(
    base: ImageCacheFile,
    backend: CachedFileBackend,
    files: dict[Key, ImageCacheFile],
    size: tuple[int, int] | None,
    offer: tuple[tuple[int, ...], int | None],
    show_base: bool,
) -> tuple[tuple[int, int], dict[Key, ImageCacheFile], bool]:
    """JustInTime: generate the candidates that do not exist yet, decoding the source once.

    With ``size`` unknown, ``files`` has every width narrower than the source; the
    spec's own file tells the size (generated first when missing, which decodes the
    source for every missing candidate), and the candidates that are not among
    those :func:`candidate_widths` offers of ``offer`` (the widths asked for, the
    source's width) are dropped. ``show_base``: the spec's own file is the
    ``<img>``'s ``src``, even when it is no candidate (a source narrower than it).
    Every spec of the decode lets go of it at the end, generated or not (made by
    another process meanwhile, dropped, failed). Returns the size, the candidates,
    and whether some are still on their way (a worker, another process's lock).
    """
    if existence_required.receivers:
        for file in files.values():
            existence_required.send(file, file=file)
    checked = list(files.values())
    if (show_base or size is None) and all(file is not base for file in checked):
        # The <img>'s src, or (srcset() of another format) where the size comes from.
        checked.append(base)
    missing = [file for file in checked if backend.lookup(file).state is not CacheFileState.EXISTS]
    together = [file.generator for file in missing] if len(missing) > 1 else []
    if together and not backend.is_async:
        decode_together(together)
    pending = False
    try:
        if size is None:
            size = output_size(base)
            if size is None:
                msg = f"The size of {base.name!r} is unknown."
                raise MissingCacheFile(msg)
            offered = candidate_widths(offer[0], size[0], offer[1])
            files = {key: file for key, file in files.items() if key[0] in offered}
            kept = {id(file) for file in files.values()}
            missing = [file for file in missing if file is not base and id(file) in kept]
        with for_page():
            for file in missing:
                try:
                    file.generate()
                except MissingCacheFile:  # another process holds its lock
                    pending = True
    finally:
        for spec in together:
            discard = getattr(spec, "discard", None)
            if callable(discard):
                discard()
    return size, files, pending or (bool(missing) and backend.is_async)


def candidates(
    state: AppState,
    request: Request,
    base: ImageCacheFile,
    widths: tuple[int, ...],
    formats: list[str | None],
    size: tuple[int, int] | None,
    source_width: int | None,
    every: bool,
) -> dict[Key, ImageCacheFile]:
    """The cache file of each candidate, narrowest first, format by format.

    ``every``: the output size is not known yet, so build every width narrower than
    the source and the full width too; the caller drops those that turn out too
    wide. Otherwise, with the size unknown, only the full width of each format.
    """
    if every:
        offered = [*candidate_widths(widths, None, source_width), None]
    elif size is None:
        offered = [None]
    else:
        offered = candidate_widths(widths, size[0], source_width)
    files: dict[Key, ImageCacheFile] = {}
    for fmt in formats:
        for width in offered:
            key: Key = (width, fmt)
            if key == (None, None):
                files[key] = base  # the spec's own file, not a copy of it
            else:
                files[key] = state.cachefile(request.generator_id, candidate=key, **request.kwargs)
    return files


def output_size(base: ImageCacheFile) -> tuple[int, int] | None:
    """The size of the spec's own output, through its file (the strategy decides how).

    None when the strategy cannot foresee it before the file is made (OnRequest, a
    processor whose output size is unknown until it runs).
    """
    expected = getattr(base.cachefile_strategy, "expected_size", None)
    if expected is not None:
        try:
            size = expected(base)
        except SizeUnknown:
            return None
        if size is not None:
            return t.cast(tuple[int, int], size)
    size = base.size
    if size == (0, 0):
        # Production, and the file cannot be shown: its size already warned about it.
        msg = f"{base.name!r} cannot be shown."
        raise MissingCacheFile(msg)
    return size


def _foreseen(base: ImageCacheFile) -> Foreseen:
    """The output's size through the strategy, and the source's size where the strategy
    foresees sizes from the source's header (OnRequest: read once, remembered)."""
    size = output_size(base)
    if getattr(base.cachefile_strategy, "expected_size", None) is None:
        return Foreseen(size, None)  # Optimistic: known once the candidates recorded it
    try:
        return Foreseen(size, foresee(base).source)
    except SourceError:
        return Foreseen(size, None)


def _from_header(base: ImageCacheFile, state: AppState) -> Foreseen:
    """JustInTime, nothing recorded yet: the output's size and the source's, foreseen."""
    try:
        return foresee_spec(base.generator, state)
    except SourceError:
        return Foreseen(None, None)  # its generation says what is wrong, and remembers it
