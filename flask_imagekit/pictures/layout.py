"""The layout of a ``<picture>``: its candidates, their URLs, the output's size and preview.

:meth:`Layout.resolve` finds the size of the spec's own output (what the candidates
recorded with their state, else the spec's own file), builds the cache file of each
candidate, and under JustInTime generates the missing ones together; the layout then
writes the ``srcset`` values and the ``<picture>`` markup.
"""

from __future__ import annotations

import dataclasses
import typing as t

from markupsafe import escape
from PIL import Image

from ..cachefiles.backends import CachedFileBackend, CacheFileState
from ..cachefiles.backends.states import PictureInfo, for_page
from ..cachefiles.html import blur_style, source_tag, srcset_entry, tag
from ..cachefiles.strategies import JustInTime, SizeUnknown
from ..exceptions import MissingCacheFile
from ..signals import existence_required
from ..specs import decode_together
from ..specs.responsive import candidate_widths

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

    #: None when it cannot be foreseen before the file is made (OnRequest).
    size: tuple[int, int] | None
    preview: str | None
    files: dict[Key, ImageCacheFile]
    urls: dict[Key, str]
    base_url: str
    just_in_time: bool
    pending: bool

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
        size = info.size if info is not None else None
        if size is None and not just_in_time:
            size = output_size(base)
        # JustInTime with the size unknown: every width, until the spec's own file tells.
        every = just_in_time and size is None
        files = candidates(state, request, base, widths, formats, size, every)
        pending = generated = False
        if just_in_time:
            size, files, generated, pending = generate_missing(base, backend, files, size)
            urls = {key: file.storage.url(file.name) for key, file in files.items()}
            base_url = base.storage.url(base.name)
        else:
            urls = {key: file.url for key, file in files.items()}
            base_url = base.url
        preview = info.preview if info is not None else None
        if preview is None and generated and request.placeholder == "blur":
            # Just generated: the candidates recorded their preview meanwhile.
            info = picture_info(base)
            preview = info.preview if info is not None else None
        return cls(size, preview, files, urls, base_url, just_in_time, pending)

    def srcset(self, fmt: str | None) -> str:
        """The srcset value of the candidates in ``fmt`` (None: the spec's own format)."""
        full = self.size[0] if self.size is not None else 0  # None keys only when known
        entries = [
            srcset_entry(url, full if width is None else width)
            for (width, form), url in self.urls.items()
            if form == fmt
        ]
        return ", ".join(entries)

    def markup(self, request: Request, attrs: dict[str, t.Any]) -> str:
        """The ``<picture>``: a ``<source>`` per modern format, then the ``<img>``."""
        sizes = request.sizes or default_sizes(self.size)
        formats = list(dict.fromkeys(form for _, form in self.urls if form is not None))
        sources = [source_tag(Image.MIME[form], self.srcset(form), sizes) for form in formats]
        parts = [f'src="{escape(self.base_url)}"']
        own = self.srcset(None)
        if own:
            parts.append(f'srcset="{escape(own)}"')
        parts.append(f'sizes="{escape(sizes)}"')
        if self.size is not None and "width" not in attrs and "height" not in attrs:
            parts.append(f'width="{self.size[0]}" height="{self.size[1]}"')
        img_attrs = {"loading": "lazy", "decoding": "async", **attrs}
        if request.placeholder == "blur" and self.preview is not None:
            style = blur_style(self.preview, attrs.get("style"))
            if style is not None:
                img_attrs["style"] = style
        return f"<picture>{''.join(sources)}{tag(parts, img_attrs)}</picture>"


def default_sizes(size: tuple[int, int] | None) -> str:
    """Shown at its own width, or the viewport's on narrower screens."""
    if size is None:
        return "100vw"
    return f"(max-width: {size[0]}px) 100vw, {size[0]}px"


def generate_missing(
    base: ImageCacheFile,
    backend: CachedFileBackend,
    files: dict[Key, ImageCacheFile],
    size: tuple[int, int] | None,
) -> tuple[tuple[int, int], dict[Key, ImageCacheFile], bool, bool]:
    """JustInTime: generate the candidates that do not exist yet, decoding the source once.

    With ``size`` unknown, ``files`` has every width; the spec's own file tells the
    size (generated first when missing, which decodes the source for every missing
    candidate), and the candidates too wide are dropped. Returns the size, the
    candidates, whether some were missing, and whether some are still on their way
    (a worker, another process's lock).
    """
    if existence_required.receivers:
        for file in files.values():
            existence_required.send(file, file=file)
    checked = list(files.values())
    if size is None and all(file is not base for file in checked):
        checked.append(base)  # srcset() of another format: its size comes from it all the same
    missing = [file for file in checked if backend.lookup(file).state is not CacheFileState.EXISTS]
    generated = bool(missing)
    if len(missing) > 1 and not backend.is_async:
        decode_together([file.generator for file in missing])
    if size is None:
        size = output_size(base)
        if size is None:
            msg = f"The size of {base.name!r} is unknown."
            raise MissingCacheFile(msg)
        files = {key: file for key, file in files.items() if key[0] is None or key[0] < size[0]}
        kept = {id(file) for file in files.values()}
        missing = [file for file in missing if file is not base and id(file) in kept]
    pending = False
    with for_page():
        for file in missing:
            try:
                file.generate()
            except MissingCacheFile:  # another process holds its lock
                pending = True
    return size, files, generated, pending or (bool(missing) and backend.is_async)


def candidates(
    state: AppState,
    request: Request,
    base: ImageCacheFile,
    widths: tuple[int, ...],
    formats: list[str | None],
    size: tuple[int, int] | None,
    every: bool,
) -> dict[Key, ImageCacheFile]:
    """The cache file of each candidate, narrowest first, format by format.

    ``every``: the output size is not known yet, so build every width and the full
    width too; the caller drops those that turn out too wide. Otherwise, with the
    size unknown, the widths as given (a candidate is never upscaled).
    """
    offered = candidate_widths(widths, None if size is None else size[0])
    if every:
        offered.append(None)
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


# What is shown instead --------------------------------------------------------------------
