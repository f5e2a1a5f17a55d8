"""Responsive candidates: a spec's output scaled to one width, in one format.

A ``<picture>`` offers each image at several widths and in several formats; each
of those *candidates* is an ordinary cache file whose generator is a
:class:`Candidate` of the spec: the spec's processors, then a downscale to the
width (never an upscale: a candidate is never wider than the spec's own output),
encoded in the format.

Candidates of one source generated together share one decode, one run of the
spec's processors and one downscale per width (see
:mod:`flask_imagekit.specs.sharing`). A candidate in the spec's own format is
encoded with the spec's ``options``; in another format, with the spec's
``format_options`` for that format, over the encoder's defaults (see
:data:`~flask_imagekit.imaging.ENCODER_DEFAULTS`).
"""

from __future__ import annotations

import typing as t

from ..exceptions import ImproperlyConfigured
from ..processors import ResizeToFit
from . import ImageSpec

if t.TYPE_CHECKING:
    from PIL import Image

    from .sharing import Share

__all__ = ["Candidate", "PictureInfo", "candidate_spec", "candidate_widths", "declared_candidates"]

#: What a generated candidate tells a ``<picture>``: the size of the spec's own
#: output, and a blur preview (a data URI of at most 1 KiB) or None.
PictureInfo = tuple[tuple[int, int] | None, str | None]


class Candidate(ImageSpec):
    """The output of ``base`` scaled down to ``width`` and encoded as ``format``.

    Once generated, :attr:`picture_info` holds the size of ``base``'s output and
    a blur preview of the image.
    """

    def __init__(self, base: ImageSpec, width: int | None, format: str | None) -> None:
        super().__init__(base.source)
        self.base = base
        self.width = width
        self._stem = list(base.processors or ())
        self._tail = () if width is None else (ResizeToFit(width=width, upscale=False),)
        self.processors = [*self._stem, *self._tail]
        own = _own_format(base)
        wanted = format.upper() if format else own
        # The spec's own format, however it is named, gives the same file.
        self.format = base.format if wanted in (None, own) else wanted
        if self.format == base.format:
            self.options = base.options
        else:
            self.options = dict((base.format_options or {}).get(t.cast(str, wanted)) or {})
        self.autoconvert = base.autoconvert
        self.auto_orient = base.auto_orient
        self.keep_icc_profile = base.keep_icc_profile
        for name in ("cachefile_storage", "cachefile_backend", "cachefile_strategy"):
            setattr(self, name, getattr(base, name))
        self.cachefile_namer = type(base).cachefile_namer
        self.app_state = base.app_state
        #: (size of the spec's output, blur preview), once generated.
        self.picture_info: PictureInfo | None = None

    def processing(self) -> tuple[list[t.Any], tuple[t.Any, ...]]:
        """The spec's processors, then the downscale to the width."""
        return list(self._stem), self._tail

    def _generated(self, img: Image.Image, share: Share) -> None:
        self.picture_info = (share.base_size() or img.size, share.preview(img))

    def __repr__(self) -> str:
        return (
            f"<Candidate of {type(self.base).__name__} width={self.width} "
            f"format={self.format} source={self.source!r}>"
        )


def _own_format(spec: ImageSpec) -> str | None:
    """The spec's output format, when it can be told without reading the source."""
    if spec.format:
        return spec.format.upper()
    if spec.source and spec.source.name:
        return spec.output_format()
    return None


def candidate_spec(spec: t.Any, width: int | None, format: str | None) -> t.Any:
    """The candidate of ``spec`` at ``width`` in ``format`` (``spec`` itself for neither).

    ``format`` None, or the spec's own format, is the spec's own format.
    """
    if width is None and (format is None or _is_own(spec, format)):
        return spec
    if not isinstance(spec, ImageSpec):
        msg = (
            f"{spec!r} is not an ImageSpec, so it has no responsive candidates; "
            "picture() and srcset() need a spec made of processors."
        )
        raise ImproperlyConfigured(msg)
    return Candidate(spec, width, format)


def _is_own(spec: t.Any, format: str) -> bool:
    return isinstance(spec, ImageSpec) and _own_format(spec) == format.upper()


def candidate_widths(widths: t.Iterable[int], full_width: int | None) -> list[int | None]:
    """The widths to offer of an output ``full_width`` pixels wide, narrowest first.

    Widths at or above the full width are dropped, and the full width itself
    (``None``: the spec's own output, not scaled) ends the list, so no candidate is
    ever wider than the spec's output. With the full width unknown, every width is
    offered as given (a candidate is never upscaled, whatever its width).
    """
    unique = sorted({int(width) for width in widths})
    if full_width is None:
        return list(unique)
    return [*(width for width in unique if width < full_width), None]


def declared_candidates(spec: t.Any, full_width: int | None) -> list[tuple[int | None, str]]:
    """The ``(width, format)`` of every candidate ``spec`` declares, besides its own file.

    From its ``responsive_widths`` and ``responsive_formats``: each format at the
    spec's own width (``None``), then each width narrower than ``full_width`` in
    every format and the spec's own, narrowest first. Empty for a spec that
    declares neither. With ``full_width`` None, every declared width is listed.
    """
    if not isinstance(spec, ImageSpec):
        return []
    widths = spec.responsive_widths or ()
    formats = [fmt.upper() for fmt in spec.responsive_formats or ()]
    if not widths and not formats:
        return []
    own = _own_format(spec) or spec.output_format()
    others = [fmt for fmt in dict.fromkeys(formats) if fmt != own]
    found: list[tuple[int | None, str]] = [(None, fmt) for fmt in others]
    for width in candidate_widths(widths, full_width):
        if width is not None:
            found.extend((width, fmt) for fmt in [*others, own])
    return found
