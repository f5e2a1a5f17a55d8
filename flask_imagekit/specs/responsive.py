"""Responsive candidates: a spec's output scaled to one width, in one format.

A ``<picture>`` offers each image at several widths and in several formats; each
of those *candidates* is an ordinary cache file whose generator is a
:class:`Candidate` of the spec: the spec's processors, then a downscale to the
width (never an upscale: a candidate is never wider than the spec's own output),
encoded in the format.
"""

from __future__ import annotations

import typing as t

from ..exceptions import ImproperlyConfigured
from ..processors import ResizeToFit
from . import ImageSpec

__all__ = ["Candidate", "candidate_spec", "candidate_widths"]


class Candidate(ImageSpec):
    """The output of ``base`` scaled down to ``width`` and encoded as ``format``."""

    def __init__(self, base: ImageSpec, width: int | None, format: str | None) -> None:
        super().__init__(base.source)
        self.base = base
        self.width = width
        processors = list(base.processors or ())
        if width is not None:
            processors.append(ResizeToFit(width=width, upscale=False))
        self.processors = processors
        self.format = format.upper() if format else base.format
        self.options = base.options
        self.autoconvert = base.autoconvert
        self.auto_orient = base.auto_orient
        self.keep_icc_profile = base.keep_icc_profile
        for name in ("cachefile_storage", "cachefile_backend", "cachefile_strategy"):
            setattr(self, name, getattr(base, name))
        self.cachefile_namer = type(base).cachefile_namer
        self.app_state = base.app_state

    def __repr__(self) -> str:
        return (
            f"<Candidate of {type(self.base).__name__} width={self.width} "
            f"format={self.format} source={self.source!r}>"
        )


def candidate_spec(spec: t.Any, width: int | None, format: str | None) -> t.Any:
    """The candidate of ``spec`` at ``width`` in ``format`` (``spec`` itself for neither)."""
    if width is None and format is None:
        return spec
    if not isinstance(spec, ImageSpec):
        msg = (
            f"{spec!r} is not an ImageSpec, so it has no responsive candidates; "
            "picture() and srcset() need a spec made of processors."
        )
        raise ImproperlyConfigured(msg)
    return Candidate(spec, width, format)


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
