"""Image processors: pilkit's processors, with the same names, arguments and results.

A processor is any object with a ``process(img) -> img`` method. These are frozen
dataclasses, pure (no I/O, the input image is never changed), comparable and
hashable by their parameters. Resizing processors also have ``plan(size)``, which
describes their work as one resize of a region of the input (:class:`ResizePlan`),
and every processor here has ``cost(size, mode)`` (:class:`Cost`): the size and
mode of its result and the memory it needs, so that a generation over
``IMAGEKIT_MAX_DECODE_BYTES`` or ``IMAGEKIT_MAX_OUTPUT_PIXELS`` is refused before
it allocates. A processor of your own without ``cost()`` (or ``plan()``) is taken
to make :data:`~flask_imagekit.processors.base.FALLBACK_COPIES` RGBA copies of its
input and to keep its size.
"""

from __future__ import annotations

from .adjust import Adjust, Convert, GaussianBlur, Reflection, Transpose
from .base import (
    Anchor,
    AnchorLike,
    ColorLike,
    Cost,
    Processor,
    ProcessorPipeline,
    ResizePlan,
    plan_processors,
)
from .canvas import AddBorder, ResizeCanvas
from .crop import Crop, Side, SmartCrop, TrimBorderColor
from .overlay import ColorOverlay, ImageOverlay, MakeOpaque, SetOpacity
from .resampling import REDUCING_GAP, resolve_palette
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
    "Cost",
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
