"""Image processors: pilkit's processors, with the same names, arguments and results.

A processor is any object with a ``process(img) -> img`` method. These are frozen
dataclasses, pure (no I/O, the input image is never changed), comparable and
hashable by their parameters. Resizing processors also have ``plan(size)``, which
describes their work as one resize of a region of the input (:class:`ResizePlan`).
"""

from __future__ import annotations

from .adjust import Adjust, Convert, GaussianBlur, Reflection, Transpose
from .base import (
    REDUCING_GAP,
    Anchor,
    AnchorLike,
    ColorLike,
    Processor,
    ProcessorPipeline,
    ResizePlan,
    plan_processors,
    resolve_palette,
)
from .canvas import AddBorder, ResizeCanvas
from .crop import Crop, Side, SmartCrop, TrimBorderColor
from .overlay import ColorOverlay, ImageOverlay, MakeOpaque, SetOpacity
from .resize import Resize, ResizeToCover, ResizeToFill, ResizeToFit, SmartResize, Thumbnail

__all__ = [
    "REDUCING_GAP",
    "AddBorder",
    "Adjust",
    "Anchor",
    "AnchorLike",
    "ColorLike",
    "ColorOverlay",
    "Convert",
    "Crop",
    "GaussianBlur",
    "ImageOverlay",
    "MakeOpaque",
    "Processor",
    "ProcessorPipeline",
    "Reflection",
    "Resize",
    "ResizeCanvas",
    "ResizePlan",
    "ResizeToCover",
    "ResizeToFill",
    "ResizeToFit",
    "SetOpacity",
    "Side",
    "SmartCrop",
    "SmartResize",
    "Thumbnail",
    "TrimBorderColor",
    "Transpose",
    "plan_processors",
    "resolve_palette",
]
