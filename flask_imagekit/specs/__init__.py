"""Image specs: generators that derive an image from a source.

A spec class declares ``processors`` (a list, or a property for specs that change
with their source), ``format``, ``options`` and ``autoconvert``; an instance is
bound to one source and ``generate()`` returns the encoded image.
"""

from __future__ import annotations

import io
import threading
import typing as t

from PIL import Image

from ..cachefiles import namers
from ..config import current_state, current_state_or_none
from ..exceptions import GenerationError, ImageKitError, ImproperlyConfigured, MissingSource
from ..imaging import (
    DEFAULT_ALLOWED_FORMATS,
    DEFAULT_MAX_DECODE_BYTES,
    DEFAULT_MAX_OUTPUT_PIXELS,
    _load,
    check_pipeline,
    decode_many,
    open_image,
    save_image,
)
from ..processors.base import image_bytes, processor_cost
from ..sources import SourceFile, as_source
from ..utils import WEB_FORMATS, UnknownFormat, format_for_name, format_to_extension
from .hashing import canonical, digest

__all__ = ["WEB_FORMATS", "BaseImageSpec", "ImageSpec", "format_for_name", "prepare_specs"]

_DEFAULT_MAX_PIXELS = 50_000_000
_PARAMS_MEMO_SIZE = 4096
_MEMO_SIZE = 100_000
_names_memo: dict[tuple[t.Any, ...], str] = {}
_BUILTIN_NAMERS = frozenset((namers.hash, namers.source_name_as_path, namers.source_name_dot_hash))
_hash_memo: dict[tuple[t.Any, str], str] = {}
# Spec classes with static parameters: their canonical form, computed once.
_params_memo: dict[tuple[t.Any, ...], str] = {}
_params_memo_lock = threading.Lock()


class BaseImageSpec:
    """A generator bound to a source, with the cache file settings it wants.

    ``cachefile_storage``, ``cachefile_backend``, ``cachefile_strategy`` and
    ``cachefile_namer`` default to the app's settings when left as None.
    """

    cachefile_storage: t.Any = None
    cachefile_backend: t.Any = None
    cachefile_strategy: t.Any = None
    cachefile_namer: t.Any = None

    def __init__(self, source: t.Any = None) -> None:
        self.source: SourceFile | None = as_source(source)

    @property
    def cachefile_name(self) -> str | None:
        """The cache file name from the spec's namer (None without a source)."""
        if not self.source:
            return None
        state = current_state()
        namer = type(self).cachefile_namer
        if namer is None:
            namer = state.spec_cachefile_namer
        elif isinstance(namer, str):
            from ..config import resolve

            namer = resolve("cachefile_namer", namer)
        get_hash = getattr(self, "get_hash", None)
        if get_hash is None or namer not in _BUILTIN_NAMERS:
            # A user's namer may read anything (the row, the time): ask it each time.
            return t.cast(str, namer(self))
        # Namers are pure functions of these: remember their answers.
        format = getattr(self, "format", None)
        key = (namer, state.cachefile_dir, get_hash(), self.source.name, format)
        name = _names_memo.get(key)
        if name is None:
            name = t.cast(str, namer(self))
            if len(_names_memo) > _MEMO_SIZE:
                _names_memo.clear()
            _names_memo[key] = name
        return name

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
            key = (self.source.identity() if self.source else None, self._params_canonical())
            cached = _hash_memo.get(key)
            if cached is None:
                cached = digest(*key)
                if len(_hash_memo) > _MEMO_SIZE:
                    _hash_memo.clear()
                _hash_memo[key] = cached
            self.__dict__["_hash"] = cached
        return cached

    def _params_canonical(self) -> str:
        params = self._params()
        try:
            # Keyed on content, so in-place edits and properties are noticed.
            key = (
                type(self),
                tuple(params[0]),
                params[1],
                frozenset(params[2].items()),
                params[3],
                params[4],
                tuple(params[5:]),
            )
            text = _params_memo.get(key)
        except TypeError:  # unhashable parameters: no memo
            return canonical(params)
        if text is None:
            text = canonical(params)
            with _params_memo_lock:
                if len(_params_memo) > _PARAMS_MEMO_SIZE:
                    _params_memo.clear()
                _params_memo[key] = text
        return text

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
        prepared = self.__dict__.pop("_decoded", None)
        if prepared is None:
            prepare_specs([self])
            prepared = self.__dict__.pop("_decoded")
        img, remaining, original_format = prepared
        for index, processor in enumerate(remaining):
            guessed = processor_cost(processor, img.size, img.mode).guessed
            try:
                img = processor.process(img)
            except ImageKitError:
                raise
            except Exception as exc:
                msg = (
                    f"The processor {processor!r} of {type(self).__name__} failed on "
                    f"{source.name!r}: {exc}. Fix the processor or the spec's parameters."
                )
                raise GenerationError(msg) from exc
            if not isinstance(img, Image.Image):
                msg = (
                    f"The processor {processor!r} of {type(self).__name__} returned {img!r} "
                    "instead of an image; process() must return the processed image."
                )
                raise GenerationError(msg)
            if guessed:
                # Its result could not be foreseen: check what follows now that it is known.
                _, _, max_bytes, max_output_pixels = _limits()
                start = prepared[0]
                check_pipeline(
                    img,
                    remaining[index + 1 :],
                    self.output_format(original_format),
                    max_bytes=max_bytes,
                    max_output_pixels=max_output_pixels,
                    held=0 if img is start else image_bytes(start.size, start.mode),
                    icc=bool(start.info.get("icc_profile")),
                    options=self.options,
                    name=source.name,
                )
        fmt = self.output_format(original_format)
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
                icc_profile=prepared[0].info.get("icc_profile"),
            )
        except Exception as exc:
            msg = (
                f"Could not encode the output of {type(self).__name__} for {source.name!r} "
                f"as {fmt}: {exc}. Check the spec's format and options."
            )
            raise GenerationError(msg) from exc
        return out


def prepare_specs(specs: t.Sequence[ImageSpec]) -> None:
    """Decode the source of ``specs`` (all bound to one source) once, for all of them.

    Each spec's next ``generate()`` starts from the shared decode instead of
    reading and decoding the source again.
    """
    if not specs:
        return
    source = specs[0].source
    if not source:
        msg = f"{type(specs[0]).__name__} has no source image. Pass source=... to the spec."
        raise MissingSource(msg)
    formats, max_pixels, max_bytes, max_output_pixels = _limits()
    processor_lists = [list(spec.processors or ()) for spec in specs]
    with source.open() as fp:
        img = open_image(
            fp, formats=formats, max_pixels=max_pixels, max_bytes=max_bytes, name=source.name
        )
        original_format = img.format
        # auto_orient is per spec; the specs of one source almost always agree.
        groups: dict[bool, list[int]] = {}
        for index, spec in enumerate(specs):
            groups.setdefault(bool(spec.auto_orient), []).append(index)
        if len(groups) > 1:
            _load(img, source.name)
        for number, (auto_orient, indexes) in enumerate(groups.items()):
            # With several groups, the source and each group's decode stay alive.
            held = image_bytes(img.size, img.mode) * (1 + number) if len(groups) > 1 else 0
            decoded = decode_many(
                img if len(groups) == 1 else img.copy(),
                [processor_lists[i] for i in indexes],
                auto_orient=auto_orient,
                name=source.name,
                formats=[specs[i].output_format(original_format) for i in indexes],
                options=[specs[i].options for i in indexes],
                max_bytes=max_bytes,
                max_output_pixels=max_output_pixels,
                held=held,
            )
            for index, (image, remaining) in zip(indexes, decoded, strict=True):
                specs[index].__dict__["_decoded"] = (image, remaining, original_format)


def _limits() -> tuple[tuple[str, ...], int | None, int | None, int | None]:
    """Allowed formats, max source pixels, max decode bytes and max output pixels."""
    state = current_state_or_none()
    if state is None:
        return (
            DEFAULT_ALLOWED_FORMATS,
            _DEFAULT_MAX_PIXELS,
            DEFAULT_MAX_DECODE_BYTES,
            DEFAULT_MAX_OUTPUT_PIXELS,
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
            with Image.open(fp) as img:
                return img.format
    except Exception:
        # The generation itself reports an unreadable source with a clear error.
        return None
