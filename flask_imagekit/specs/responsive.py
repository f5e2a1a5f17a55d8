"""Responsive candidates: a spec's output scaled to one width, in one format.

A ``<picture>`` offers each image at several widths and in several formats; each
of those *candidates* is an ordinary cache file whose generator is a
:class:`Candidate` of the spec: the spec's processors, then a downscale to the
width (never an upscale of the spec's output), encoded in the format. Which widths
are worth offering is :func:`candidate_widths`'s: none as wide as the spec's output
or wider, and none wider than the source, which a spec may have scaled up
(``ResizeToFit`` and ``ResizeToFill`` do unless ``upscale=False``).

Candidates of one source generated together share one decode, one run of the
spec's processors and one downscale per width (see
:mod:`flask_imagekit.specs.sharing`). A candidate in the spec's own format is
encoded with the spec's ``options``; in another format, with the spec's
``format_options`` for that format, over the encoder's defaults (see
:data:`~flask_imagekit.imaging.ENCODER_DEFAULTS`).
"""

from __future__ import annotations

import logging
import typing as t

from PIL import Image

from ..defaults import MAX_CANDIDATE_WIDTH
from ..exceptions import ImproperlyConfigured
from ..importing import invalid
from ..processors import ResizeToFit
from . import ImageSpec

if t.TYPE_CHECKING:
    from .sharing import Share

__all__ = [
    "BROWSER_FORMATS",
    "Candidate",
    "CandidateInfo",
    "candidate_spec",
    "candidate_widths",
    "declared_candidates",
    "responsive_formats",
    "responsive_widths",
]

logger = logging.getLogger("flask_imagekit")

#: The formats a ``<picture>`` may offer: those browsers show.
BROWSER_FORMATS = ("AVIF", "WEBP", "JPEG", "PNG", "GIF")

#: What a generated candidate tells a ``<picture>``: the size of the spec's own
#: output, and a blur preview (a data URI of at most 1 KiB) or None.
CandidateInfo = tuple[tuple[int, int] | None, str | None]


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
        self.picture_info: CandidateInfo | None = None
        #: The size of the source it was made from (upright), once generated.
        self.source_size: tuple[int, int] | None = None

    def processing(self) -> tuple[list[t.Any], tuple[t.Any, ...]]:
        """The spec's processors, then the downscale to the width."""
        return list(self._stem), self._tail

    def _generated(self, img: Image.Image, share: Share) -> None:
        self.picture_info = (share.base_size() or img.size, share.preview(img))
        self.source_size = share.source_size()

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


def candidate_widths(
    widths: t.Iterable[int], full_width: int | None, source_width: int | None = None
) -> list[int | None]:
    """The widths to offer of an output ``full_width`` pixels wide, narrowest first.

    No candidate is wider than the output nor than the source (``source_width``, as
    the spec sees it, when known): a spec may scale a small source up, its
    candidates never do. The widths below the narrower of the two are offered,
    then that width itself: ``None`` for the spec's own output, else the source's
    width (a candidate of that width). With the full width unknown, every width
    narrower than the source is offered, then the source's width: the caller drops
    those that turn out as wide as the output, or wider.
    """
    unique = sorted({int(width) for width in widths})
    if full_width is None:
        if source_width is None:
            return list(unique)
        return [*(width for width in unique if width < source_width), source_width]
    cap = full_width if source_width is None else min(full_width, source_width)
    return [*(width for width in unique if width < cap), None if cap == full_width else cap]


def declared_candidates(
    spec: t.Any, full_width: int | None, source_width: int | None = None
) -> list[tuple[int | None, str]]:
    """The ``(width, format)`` of every candidate ``spec`` declares, besides its own file.

    From its ``responsive_widths`` and ``responsive_formats`` (formats this Pillow
    build cannot encode left out, as :func:`responsive_formats` does): each format at
    the spec's own width (``None``) unless the source is narrower, then each width
    of :func:`candidate_widths` in every format and the spec's own, narrowest first.
    Empty for a spec that declares neither. With ``full_width`` None, every declared
    width narrower than the source is listed. Raises
    :class:`~flask_imagekit.exceptions.ImproperlyConfigured` for declared widths or
    formats that are not valid.
    """
    if not isinstance(spec, ImageSpec):
        return []
    declared_widths = spec.responsive_widths
    declared_formats = spec.responsive_formats
    if not declared_widths and not declared_formats:
        return []
    label = type(spec).__name__
    widths: t.Sequence[int] = ()
    if declared_widths:
        widths = responsive_widths(f"{label}.responsive_widths", declared_widths)
    formats: t.Sequence[str] = ()
    if declared_formats:
        formats = responsive_formats(f"{label}.responsive_formats", declared_formats)
    own = _own_format(spec) or spec.output_format()
    others = [fmt for fmt in formats if fmt != own]
    offered = candidate_widths(widths, full_width, source_width)
    found: list[tuple[int | None, str]] = []
    if full_width is None or None in offered:
        found.extend((None, fmt) for fmt in others)
    for width in offered:
        if width is not None:
            found.extend((width, fmt) for fmt in [*others, own])
    return found


# Validation ------------------------------------------------------------------------------


def responsive_widths(key: str, value: t.Any) -> tuple[int, ...]:
    """Validate the widths ``picture()`` offers (``key`` names them in errors); sorted, unique."""
    expected = (
        f"a non-empty list of widths in pixels (integers from 1 to {MAX_CANDIDATE_WIDTH}), "
        "such as [480, 800, 1200]"
    )
    if isinstance(value, str) or not isinstance(value, t.Iterable):
        invalid(key, value, expected)
    widths = list(value)
    if not widths or not all(
        type(width) is int and 0 < width <= MAX_CANDIDATE_WIDTH for width in widths
    ):
        invalid(key, value, expected)
    return tuple(sorted(set(widths)))


def responsive_formats(key: str, value: t.Any, *, warn: bool = False) -> tuple[str, ...]:
    """Validate the formats ``picture()`` offers, best first (``key`` names them in errors).

    Only formats browsers show (:data:`BROWSER_FORMATS`); one this Pillow build
    cannot encode (AVIF without libavif) is left out, with a warning in the log
    when ``warn``.
    """
    expected = f"a list of formats browsers show (some of {', '.join(BROWSER_FORMATS)})"
    if isinstance(value, str) or not isinstance(value, t.Iterable):
        invalid(key, value, expected)
    names = list(value)
    if not all(isinstance(name, str) for name in names):
        invalid(key, value, expected)
    formats = list(dict.fromkeys(name.upper() for name in names))
    refused = [fmt for fmt in formats if fmt not in BROWSER_FORMATS]
    if refused:
        invalid(key, value, f"{expected}, not {', '.join(refused)}")
    Image.init()
    missing = [fmt for fmt in formats if fmt not in Image.SAVE]
    if missing and warn:
        logger.warning(
            "flask_imagekit: %s names %s, which this Pillow build cannot encode; "
            "picture() leaves %s out.",
            key,
            ", ".join(missing),
            "it" if len(missing) == 1 else "them",
        )
    return tuple(fmt for fmt in formats if fmt in Image.SAVE)
