"""Shared pieces of the processors: anchors, pipelines, resize plans and helpers."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Final, NamedTuple, Protocol, TypeGuard, runtime_checkable

from PIL import Image

from flask_imagekit.exceptions import ImproperlyConfigured

__all__ = [
    "REDUCING_GAP",
    "Anchor",
    "AnchorLike",
    "ColorLike",
    "Processor",
    "ProcessorPipeline",
    "ResizePlan",
    "check_size",
    "freeze_color",
    "is_processor",
    "lanczos_resize",
    "plan_processors",
    "resolve_palette",
]

#: ``reducing_gap`` given to :meth:`PIL.Image.Image.resize` by the resizing processors.
#: Pillow first shrinks by an integer factor with ``reduce()`` and keeps at least this
#: factor for the final LANCZOS pass: several times faster on big shrinks, and at 3.0
#: indistinguishable from a single full LANCZOS pass.
REDUCING_GAP: Final[float] = 3.0

#: An anchor: a name of :class:`Anchor` (``"c"``, ``"tl"``, ...) or an ``(x, y)``
#: tuple of fractions, ``(0, 0)`` being top left and ``(1, 1)`` bottom right.
AnchorLike = str | tuple[float, float]

#: A colour as Pillow takes it: a name or ``#rrggbb`` string, a number, or a tuple.
ColorLike = str | float | tuple[float, ...]


@runtime_checkable
class Processor(Protocol):
    """Anything with a ``process(img) -> img`` method is a processor."""

    def process(self, img: Image.Image) -> Image.Image:
        """Return the transformed image; never modify ``img`` in place."""
        ...


def is_processor(obj: object) -> TypeGuard[Processor]:
    """Tell whether ``obj`` has a callable ``process`` method, i.e. is a processor."""
    return callable(getattr(obj, "process", None))


class ResizePlan(NamedTuple):
    """What a processor does, expressed as one resize of a region of its input.

    For an input of the size given to ``plan()``, ``processor.process(img)`` equals
    ``img.resize(size, LANCZOS, box=box)`` followed by each processor of ``after``
    (up to resampling noise). Palette images are resolved first, as ``Resize`` does
    (:meth:`apply` does it).
    """

    #: Region of the input (left, upper, right, lower), in input pixels.
    box: tuple[float, float, float, float]
    #: Size the region is resized to.
    size: tuple[int, int]
    #: Processors that finish the job on the resized image.
    after: tuple[Processor, ...] = ()

    def rescaled(self, from_size: tuple[int, int], to_size: tuple[int, int]) -> ResizePlan:
        """This plan for the same input decoded at another size (e.g. a JPEG draft)."""
        scale_x, scale_y = to_size[0] / from_size[0], to_size[1] / from_size[1]
        left, top, right, bottom = self.box
        box = (
            left * scale_x,
            top * scale_y,
            min(right * scale_x, to_size[0]),
            min(bottom * scale_y, to_size[1]),
        )
        return self._replace(box=box)

    def apply(self, img: Image.Image) -> Image.Image:
        """Carry out the plan on ``img`` (an image of the size the plan was made for)."""
        img = lanczos_resize(resolve_palette(img), self.size, box=self.box)
        for processor in self.after:
            img = processor.process(img)
        return img


def resolve_palette(img: Image.Image) -> Image.Image:
    """Convert a palette image to its palette's mode, as pilkit does before resizing.

    Palette images with transparency become RGBA so that their transparency survives
    (pilkit converts them to RGB, turning transparent pixels into the palette colour).
    """
    # The palette is only known once the image is loaded.
    img.load()
    if img.palette is None:
        return img
    if img.mode == "PA" or (img.mode == "P" and "transparency" in img.info):
        return img.convert("RGBA")
    return img.convert(img.palette.mode)


def lanczos_resize(
    img: Image.Image,
    size: tuple[int, int],
    box: tuple[float, float, float, float] | None = None,
) -> Image.Image:
    """Resize ``img`` (or its ``box`` region) to ``size`` with LANCZOS and ``REDUCING_GAP``."""
    # reduce() has no implementation for these modes; "1" and "P" are resampled
    # with NEAREST anyway, where reducing_gap does nothing.
    gap: float | None = REDUCING_GAP
    if img.mode in ("1", "P") or img.mode.startswith("I;16"):
        gap = None
    return img.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=gap)


class Anchor:
    """Anchor points, pilkit's names and shortcuts; ``(x, y)`` fraction tuples work too."""

    TOP_LEFT: Final = "tl"
    TOP: Final = "t"
    TOP_RIGHT: Final = "tr"
    BOTTOM_LEFT: Final = "bl"
    BOTTOM: Final = "b"
    BOTTOM_RIGHT: Final = "br"
    CENTER: Final = "c"
    LEFT: Final = "l"
    RIGHT: Final = "r"

    _ANCHOR_PTS: Final[dict[str, tuple[float, float]]] = {
        TOP_LEFT: (0, 0),
        TOP: (0.5, 0),
        TOP_RIGHT: (1, 0),
        LEFT: (0, 0.5),
        CENTER: (0.5, 0.5),
        RIGHT: (1, 0.5),
        BOTTOM_LEFT: (0, 1),
        BOTTOM: (0.5, 1),
        BOTTOM_RIGHT: (1, 1),
    }

    @staticmethod
    def get_tuple(anchor: AnchorLike) -> tuple[float, float]:
        """Return the ``(x, y)`` fractions of an anchor name or tuple."""
        if not isinstance(anchor, str):
            return _anchor_tuple(anchor)
        try:
            return Anchor._ANCHOR_PTS[anchor]
        except KeyError:
            names = ", ".join(repr(name) for name in Anchor._ANCHOR_PTS)
            msg = (
                f"Unknown anchor {anchor!r}. Use one of {names} (or the Anchor.* "
                "constants), or an (x, y) tuple of fractions such as (0.5, 0.5)."
            )
            raise ImproperlyConfigured(msg) from None

    @staticmethod
    def validate(anchor: object) -> AnchorLike:
        """Return ``anchor`` as a known name or an ``(x, y)`` tuple; raise if it is neither."""
        if isinstance(anchor, str):
            Anchor.get_tuple(anchor)
            return anchor
        return _anchor_tuple(anchor)


def _anchor_tuple(anchor: object) -> tuple[float, float]:
    if isinstance(anchor, (tuple, list)) and len(anchor) == 2:
        x, y = anchor
        if _is_number(x) and _is_number(y):
            return (x, y)
    msg = (
        f"Invalid anchor {anchor!r}. Use an Anchor.* constant (such as Anchor.CENTER "
        "or 'c') or an (x, y) tuple of fractions such as (0.5, 0.5)."
    )
    raise ImproperlyConfigured(msg)


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_size(owner: str, **dimensions: int | None) -> None:
    """Raise ImproperlyConfigured unless every given dimension is None or a positive int."""
    for name, value in dimensions.items():
        if value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            continue
        msg = f"{owner}: {name} must be a positive number of pixels, not {value!r}."
        raise ImproperlyConfigured(msg)


def freeze_color(color: object) -> object:
    """Return ``color`` with lists turned into tuples, so processors stay hashable."""
    return tuple(color) if isinstance(color, list) else color


def plan_processors(processors: Sequence[object], size: tuple[int, int]) -> ResizePlan | None:
    """Return the plan of the first processor with the others appended to its ``after``.

    None when the list is empty, the first processor has no ``plan`` or it returns None.
    """
    if not processors:
        return None
    first, rest = processors[0], processors[1:]
    plan = getattr(first, "plan", None)
    if not callable(plan):
        return None
    result = plan(size)
    if not isinstance(result, ResizePlan):
        return None
    after: list[Processor] = []
    for processor in rest:
        if not is_processor(processor):
            return None
        after.append(processor)
    return result._replace(after=(*result.after, *after))


@dataclasses.dataclass(frozen=True, init=False)
class ProcessorPipeline:
    """Run processors in order; pilkit's ``ProcessorPipeline([ProcessorA(), ProcessorB()])``."""

    processors: tuple[Processor, ...]

    def __init__(self, processors: Iterable[Processor] = ()) -> None:
        object.__setattr__(self, "processors", tuple(processors))

    def process(self, img: Image.Image) -> Image.Image:
        """Return ``img`` run through every processor in order."""
        for processor in self.processors:
            img = processor.process(img)
        return img

    def plan(self, size: tuple[int, int]) -> ResizePlan | None:
        """Plan of the first processor, the other processors appended to its ``after``."""
        return plan_processors(self.processors, size)

    def __iter__(self) -> Iterator[Processor]:
        return iter(self.processors)

    def __len__(self) -> int:
        return len(self.processors)

    def __getitem__(self, index: int) -> Processor:
        return self.processors[index]
