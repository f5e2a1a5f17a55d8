"""Planning the fast path: which resize each processor list starts with, and the draft scale.

A processor list whose first processor has a ``plan()`` (see
:class:`~flask_imagekit.processors.base.ResizePlan`) starts with one resize of a
region of the upright image. That region, mapped to the image as stored, tells
how far a JPEG can be decoded at reduced scale (``Image.draft``).
"""

from __future__ import annotations

import math
import typing as t

from PIL import Image

from ..processors.base import ResizePlan, plan_processors
from ..processors.orientation import to_stored_box, upright_size

__all__ = ["DRAFT_MARGIN", "Box", "draft_request", "plan_lists"]

#: The reduced-scale decode keeps at least this many source pixels per output
#: pixel along each axis, so the final Lanczos pass still has detail to work with.
DRAFT_MARGIN = 1.5

#: A region of an image: (left, upper, right, lower), in pixels.
Box = tuple[float, float, float, float]

# The modes whose plans are carried out here; others take the ordinary path.
_PLAN_MODES = frozenset({"RGB", "RGBA", "L", "LA", "CMYK"})


def plan_lists(
    img: Image.Image, processor_lists: t.Sequence[t.Sequence[t.Any]], orientation: int
) -> tuple[list[ResizePlan | None], list[Box | None]]:
    """The plan of each list for ``img`` turned by ``orientation``, and its box as stored."""
    upright = upright_size(img.size, orientation)
    plans = [
        _plan(processors, upright) if processors and img.mode in _PLAN_MODES else None
        for processors in processor_lists
    ]
    boxes = [
        None if plan is None else to_stored_box(plan.box, img.size, orientation) for plan in plans
    ]
    return plans, boxes


def _plan(processors: t.Sequence[t.Any], size: tuple[int, int]) -> ResizePlan | None:
    try:
        return plan_processors(processors, size)
    except Exception:
        # A processor whose plan() fails (or means something else) takes the
        # ordinary path, where its process() reports what is wrong.
        return None


def draft_request(
    stored_size: tuple[int, int],
    plans: t.Sequence[ResizePlan | None],
    boxes: t.Sequence[Box | None],
    orientation: int,
) -> tuple[int, int] | None:
    """The size to ask a JPEG draft of ``stored_size`` for, or None to decode it whole.

    Every list must have a plan; the reduction is the largest that keeps
    :data:`DRAFT_MARGIN` over every plan's output, and at least 2.
    """
    if not all(box is not None for box in boxes):
        return None
    max_scale = min(
        min(
            (box[2] - box[0]) / (DRAFT_MARGIN * out[0]),
            (box[3] - box[1]) / (DRAFT_MARGIN * out[1]),
        )
        for box, out in (
            (box, upright_size(plan.size, orientation))
            for box, plan in zip(boxes, plans, strict=True)
            if box is not None and plan is not None
        )
    )
    if max_scale < 2:
        return None
    return (math.ceil(stored_size[0] / max_scale), math.ceil(stored_size[1] / max_scale))
