"""Image specs: generators that derive an image from a source.

A spec class declares ``processors`` (a list, or a property for specs that change
with their source), ``format``, ``options`` and ``autoconvert``; an instance is
bound to one source and ``generate()`` returns the encoded image.
"""

from __future__ import annotations

import functools
import io
import typing as t

from .. import defaults
from ..exceptions import (
    GenerationError,
    ImproperlyConfigured,
    MissingSource,
    UnknownFormat,
)
from ..formats import WEB_FORMATS, format_for_name, format_to_extension, sniff_format
from ..globals import current_state, current_state_or_none
from ..imaging import open_image, save_image
from ..importing import resolve
from ..sources import SourceFile, as_source
from .encoding_pool import encode_threads, set_encode_threads
from .hashing import canonical, digest
from .sharing import Limits, Share, share_decode

if t.TYPE_CHECKING:
    from PIL import Image

    from ..state import AppState

__all__ = [
    "WEB_FORMATS",
    "BaseImageSpec",
    "ImageSpec",
    "decode_together",
    "encode_threads",
    "format_for_name",
    "prepare_specs",
    "set_encode_threads",
]


class BaseImageSpec:
    """A generator bound to a source, with the cache file settings it wants.

    ``cachefile_storage``, ``cachefile_backend``, ``cachefile_strategy`` and
    ``cachefile_namer`` default to the app's settings when left as None.
    """

    cachefile_storage: t.Any = None
    cachefile_backend: t.Any = None
    cachefile_strategy: t.Any = None
    cachefile_namer: t.Any = None
    #: The app state the spec reads its settings from; None: the current app's.
    #: :meth:`AppState.cachefile <flask_imagekit.state.AppState.cachefile>` sets it,
    #: so a page asks Flask for the app once, not once per setting.
    app_state: AppState | None = None

    def __init__(self, source: t.Any = None) -> None:
        self.source: SourceFile | None = as_source(source)

    def settings(self) -> AppState:
        """The app state this spec works for (:attr:`app_state`, or the current app's)."""
        return self.app_state or current_state()

    def __getstate__(self) -> dict[str, t.Any]:
        # The app state stays with its app; a shared decode stays in its process.
        state = dict(self.__dict__)
        for key in ("app_state", "_share", "_decode_group"):
            state.pop(key, None)
        return state

    @property
    def cachefile_name(self) -> str | None:
        """The cache file name from the spec's namer (None without a source)."""
        if not self.source:
            return None
        # The class's namer (a function there is not a method); a candidate copies its spec's.
        namer = self.__dict__.get("cachefile_namer") or type(self).cachefile_namer
        if namer is None:
            namer = self.settings().spec_cachefile_namer
        elif isinstance(namer, str):
            namer = _namer(namer)
        return t.cast(str, namer(self))

    def generate(self) -> t.IO[bytes]:
        """Return the generated image as a binary file object."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} source={self.source!r}>"


class ImageSpec(BaseImageSpec):
    """A spec made of processors, an output format and encoder options.

    ``auto_orient`` (default True) turns the source upright by its EXIF
    orientation before the processors run. Outputs are converted to sRGB and carry
    no ICC profile; ``keep_icc_profile = True`` keeps the source's profile instead
    (and its colours as they are) when LittleCMS can use it and it is at most
    64 KiB.
    """

    #: django-imagekit's ``ImageSpec.MissingSource``.
    MissingSource = MissingSource

    processors: t.Any = ()
    format: str | None = None
    options: t.Mapping[str, t.Any] | None = None
    autoconvert: bool = True
    auto_orient: bool = True
    keep_icc_profile: bool = False
    #: Encoder options of the responsive candidates in other formats than the
    #: spec's own, by format: ``{"AVIF": {"quality": 50}, "WEBP": {...}}``
    #: (``options`` apply to the spec's own format).
    format_options: t.Mapping[str, t.Mapping[str, t.Any]] | None = None
    #: The widths of the responsive candidates ``flask imagekit generate`` makes
    #: (those narrower than the spec's output); None: none.
    responsive_widths: t.Sequence[int] | None = None
    #: Their formats besides the spec's own, such as ``["AVIF", "WEBP"]``; None: none.
    responsive_formats: t.Sequence[str] | None = None

    def output_format(self, sniffed: str | None = None) -> str:
        """The format this spec encodes to: ``format``, or one chosen from the source name.

        See :func:`format_for_name`. ``sniffed`` is the source's decoded format, used
        only for a source without a name (a stream); it is read from the source's
        header when not given.
        """
        if self.format:
            try:
                format_to_extension(self.format)
            except UnknownFormat:
                msg = (
                    f"{type(self).__name__}.format = {self.format!r} is not an image format "
                    "Pillow knows; use one such as 'JPEG', 'PNG', 'WEBP' or 'AVIF'."
                )
                raise ImproperlyConfigured(msg) from None
            return self.format.upper()
        name = self.source.name if self.source else None
        if not name and sniffed is None and self.source:
            sniffed = _sniff(self.source)
        return format_for_name(name, sniffed)

    def get_hash(self) -> str:
        """A stable digest of the source's identity and every parameter of the output.

        The identity is the source's name for a file in the app's source storage
        (django-imagekit's names), with a storage token for another storage, and
        a digest of the bytes for a source that is not stored (see
        :meth:`SourceFile.identity`).
        """
        cached: str | None = self.__dict__.get("_hash")
        if cached is None:
            state = self.app_state
            identity = None
            if self.source:
                identity = self.source.identity(state.source_storage if state else None)
            cached = self.__dict__["_hash"] = _digest(identity, self.canonical_parameters())
        return cached

    def canonical_parameters(self) -> str:
        """The canonical text of every parameter of the output (not the source).

        Equal for specs that make the same output from the same source, whatever
        the dict order, process or Python version.
        """
        params = self._params()
        try:
            # Keyed on content, so in-place edits and properties are noticed.
            return _canonical_params(
                (
                    tuple(params[0]),
                    params[1],
                    frozenset(params[2].items()),
                    params[3],
                    params[4],
                    tuple(params[5:]),
                )
            )
        except TypeError:  # unhashable parameters: no memo
            return canonical(params)

    def _params(self) -> list[t.Any]:
        return [
            list(self.processors or ()),
            self.format,
            dict(self.options or {}),
            self.autoconvert,
            self.auto_orient,
            # Only when set, so that the names of existing cache files stay the same.
            *([True] if self.keep_icc_profile else []),
        ]

    def processing(self) -> tuple[list[t.Any], tuple[t.Any, ...]]:
        """The processors, as (the spec's own, a final downscale of a candidate).

        Specs generated together share what they have in common: the image made
        by equal first parts is made once, then each final downscale once for
        every format of that width (see :mod:`flask_imagekit.specs.sharing`).
        """
        return list(self.processors or ()), ()

    def generate(self) -> io.BytesIO:
        """Open the source, run the processors and encode; return a BytesIO.

        Raises :class:`MissingSource` without a source, :class:`SourceError` for a
        source that cannot be used, :class:`GenerationError` when a processor or
        the encoder fails.
        """
        source = self.source
        if not source:
            msg = f"{type(self).__name__} has no source image. Pass source=... to the spec."
            raise MissingSource(msg)
        share: Share | None = self.__dict__.pop("_share", None)
        if share is None:
            # Specs decoded together (see decode_together) share the first decode.
            group: list[ImageSpec] = self.__dict__.pop("_decode_group", None) or [self]
            pending = [
                spec for spec in group if spec is self or spec.__dict__.pop("_decode_group", None)
            ]
            prepare_specs(pending)
            share = t.cast(Share, self.__dict__.pop("_share"))
        try:
            # Specs decoded together: the first to generate encodes every output.
            out = share.encoded(self)
            if out is None:
                out = self._encode(share)
        finally:
            share.release()
        return out

    def _encode(self, share: Share) -> io.BytesIO:
        """Encode this spec's image of ``share`` (in a thread, for specs decoded together)."""
        img = share.image(self)
        fmt = self.output_format(share.original_format)
        out = io.BytesIO()
        try:
            save_image(
                img,
                out,
                fmt,
                self.options,
                self.autoconvert,
                keep_icc_profile=self.keep_icc_profile,
                # Processors that build a new image leave img.info, and the profile, behind.
                icc_profile=share.icc_profile,
            )
        except Exception as exc:
            name = self.source.name if self.source else None
            msg = (
                f"Could not encode the output of {type(self).__name__} for {name!r} "
                f"as {fmt}: {exc}. Check the spec's format and options."
            )
            raise GenerationError(msg) from exc
        self._generated(img, share)
        return out

    def discard(self) -> None:
        """Let go of the shared decode (see :func:`prepare_specs`) without generating.

        Drops the output encoded ahead for this spec, if any.
        """
        share: Share | None = self.__dict__.pop("_share", None)
        if share is not None:
            share.discard()
        self.__dict__.pop("_decode_group", None)

    def _generated(self, img: Image.Image, share: Share) -> None:
        """Called with the image just encoded, before its share lets it go."""


def prepare_specs(specs: t.Sequence[ImageSpec]) -> None:
    """Decode the source of ``specs`` (all bound to one source) once, for all of them.

    Each spec's next ``generate()`` starts from the shared decode instead of
    reading and decoding the source again, and specs that make the same image
    share it (see :mod:`flask_imagekit.specs.sharing`). They are about to be
    generated: the first to generate encodes the outputs of all, on several
    threads (see :mod:`flask_imagekit.specs.encoding_pool`); a spec that will not
    generate after all should :meth:`~ImageSpec.discard` its share.
    """
    if not specs:
        return
    source = specs[0].source
    if not source:
        msg = f"{type(specs[0]).__name__} has no source image. Pass source=... to the spec."
        raise MissingSource(msg)
    state = specs[0].app_state
    formats, max_pixels, max_bytes, max_output_pixels = _limits(state)
    with source.open(state.source_storage if state else None) as fp:
        img = open_image(
            fp, formats=formats, max_pixels=max_pixels, max_bytes=max_bytes, name=source.name
        )
        limits = Limits(max_bytes, max_output_pixels)
        encode = _encode_shared if len(specs) > 1 else None
        shares = share_decode(img, specs, limits, source.name, encode)
    for spec, share in zip(specs, shares, strict=True):
        spec.__dict__["_share"] = share


def decode_together(specs: t.Iterable[t.Any]) -> None:
    """Let the image specs among ``specs`` (one source) share one decode of it.

    Nothing is decoded now: the first of them to generate decodes the source for
    every one that has not generated or been discarded yet, and encodes their
    outputs (see :func:`prepare_specs`); if none generates, none costs anything.
    """
    group = [spec for spec in specs if isinstance(spec, ImageSpec) and spec.source]
    if len(group) > 1:
        for spec in group:
            spec.__dict__["_decode_group"] = group


def _encode_shared(spec: ImageSpec, share: Share) -> io.BytesIO:
    return spec._encode(share)


@functools.lru_cache(maxsize=4096)
def _canonical_params(key: tuple[t.Any, ...]) -> str:
    processors, format, options, autoconvert, auto_orient, extra = key
    return canonical([list(processors), format, dict(options), autoconvert, auto_orient, *extra])


@functools.lru_cache(maxsize=100_000)
def _digest(identity: t.Any, params: str) -> str:
    return digest(identity, params)


@functools.lru_cache(maxsize=64)
def _namer(path: str) -> t.Callable[[t.Any], str]:
    return t.cast(t.Callable[[t.Any], str], resolve("cachefile_namer", path))


def _limits(state: AppState | None) -> tuple[tuple[str, ...], int | None, int | None, int | None]:
    """Allowed formats, max source pixels, max decode bytes and max output pixels."""
    state = state or current_state_or_none()
    if state is None:
        return (
            defaults.ALLOWED_SOURCE_FORMATS,
            defaults.MAX_SOURCE_PIXELS,
            defaults.MAX_DECODE_BYTES,
            defaults.MAX_OUTPUT_PIXELS,
        )
    return (
        state.allowed_source_formats,
        state.max_source_pixels,
        state.max_decode_bytes,
        state.max_output_pixels,
    )


def _sniff(source: SourceFile) -> str | None:
    try:
        with source.open() as fp:
            return sniff_format(fp)
    except Exception:
        # The generation itself reports an unreadable source with a clear error.
        return None
