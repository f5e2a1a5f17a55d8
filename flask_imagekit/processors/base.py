"""Shared pieces of the processors: anchors, pipelines, resize plans, costs and helpers.

The resampling primitives (:mod:`.resampling`) are importable from here too.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Final, NamedTuple, Protocol, TypeGuard, runtime_checkable

from PIL import Image

from ..exceptions import ImproperlyConfigured
from .resampling import REDUCING_GAP, lanczos_resize, palette_mode, resolve_palette, scale_box

__all__ = [
    "FALLBACK_COPIES",
    "QUANTIZE_COST",
    "REDUCING_GAP",
    "Anchor",
    "AnchorLike",
    "ColorLike",
    "Cost",
    "Processor",
    "ProcessorPipeline",
    "ResizePlan",
    "chain_cost",
    "check_size",
    "copies",
    "fallback_cost",
    "freeze_color",
    "image_bytes",
    "is_processor",
    "lanczos_resize",
    "palette_mode",
    "plan_processors",
    "processor_cost",
    "resize_cost",
    "resolve_palette",
    "scale_box",
    "unchanged",
]

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

    def rescaled(self, from_size: tuple[int, int], to_size: tuple[float, float]) -> ResizePlan:
        """This plan for the same input decoded at another size (e.g. a JPEG draft).

        For a JPEG draft, the exact ``to_size`` is the one ``Image.draft()`` returns
        (the end of its box); the draft's own size is that, rounded up.
        """
        return self._replace(box=scale_box(self.box, from_size, to_size))

    def apply(self, img: Image.Image) -> Image.Image:
        """Carry out the plan on ``img`` (an image of the size the plan was made for)."""
        img = lanczos_resize(resolve_palette(img), self.size, box=self.box)
        for processor in self.after:
            img = processor.process(img)
        return img

    def cost(self, size: tuple[int, int], mode: str) -> Cost:
        """What :meth:`apply` costs on an image of ``size`` and ``mode``."""
        resized = resize_cost(size, palette_mode(mode), self.box, self.size, convert=mode)
        return resized.then(chain_cost(self.after, resized.size, resized.mode))


# The memory a processor needs ------------------------------------------------------------

#: A processor without a ``cost()`` (nor a ``plan()``) is taken to make this many
#: RGBA copies of its input, its result among them, and to keep the size. The most
#: expensive processors here (Adjust, TrimBorderColor: an RGBA conversion, the
#: enhanced or differenced copy, a band split or mask, the result) peak at about 4.1;
#: one more leaves room for a processor that works on a copy of those. A processor
#: that changes the size is checked again once it has run (``Cost.guessed``).
FALLBACK_COPIES: Final[int] = 5

#: Bytes per pixel of quantizing an image to a palette (median cut keeps a hash of
#: every distinct colour), measured on noise, its worst case.
QUANTIZE_COST: Final[float] = 40.0

# Bytes Pillow stores per pixel, by mode; every other mode takes 4.
_BYTES_PER_PIXEL: Final[dict[str, int]] = {
    "1": 1,
    "L": 1,
    "P": 1,
    "I;16": 2,
    "I;16B": 2,
    "I;16L": 2,
    "I;16N": 2,
}


def image_bytes(size: tuple[int, int], mode: str) -> int:
    """The memory, in bytes, Pillow takes for the pixels of an image of ``size`` and ``mode``."""
    return size[0] * size[1] * _BYTES_PER_PIXEL.get(mode, 4)


def copies(size: tuple[int, int], count: float, mode: str = "RGBA") -> int:
    """The memory of ``count`` images of ``size`` and ``mode`` (RGBA by default), in bytes."""
    return int(count * image_bytes(size, mode))


class Cost(NamedTuple):
    """What a processor makes of an image of a given size and mode, and the memory it takes.

    Returned by a processor's ``cost(size, mode)``, so that a generation is refused
    before it allocates what it cannot afford (``IMAGEKIT_MAX_DECODE_BYTES``,
    ``IMAGEKIT_MAX_OUTPUT_PIXELS``).
    """

    #: Size of the result.
    size: tuple[int, int]
    #: Mode of the result.
    mode: str
    #: Bytes allocated at the peak, beyond the input (which stays alive): the result,
    #: and the copies and conversions made on the way.
    extra: int
    #: The largest image made (the result included), whose pixels count against
    #: ``IMAGEKIT_MAX_OUTPUT_PIXELS``.
    largest: tuple[int, int]
    #: True when the result could not be foreseen (a processor without ``cost()``):
    #: the pipeline checks the following steps again once it has run.
    guessed: bool = False

    @classmethod
    def of(cls, size: tuple[int, int], mode: str, extra: int, *made: tuple[int, int]) -> Cost:
        """A cost whose largest image is the largest of the result and ``made``."""
        largest = max((size, *made), key=lambda s: s[0] * s[1])
        return cls(size, mode, extra, largest)

    def then(self, other: Cost) -> Cost:
        """This step followed by ``other``, run on this step's result."""
        # A step that allocates nothing returned its input, which is not counted.
        result = image_bytes(self.size, self.mode) if self.extra else 0
        extra = max(self.extra, result + other.extra)
        largest = max(self.largest, other.largest, key=lambda s: s[0] * s[1])
        return Cost(other.size, other.mode, extra, largest, self.guessed or other.guessed)


def unchanged(size: tuple[int, int], mode: str) -> Cost:
    """The cost of a step that returns its input: nothing."""
    return Cost(size, mode, 0, (0, 0))


def fallback_cost(size: tuple[int, int], mode: str) -> Cost:
    """The cost of a processor that does not tell it: see :data:`FALLBACK_COPIES`."""
    return Cost(size, "RGBA", copies(size, FALLBACK_COPIES), size, guessed=True)


def processor_cost(processor: object, size: tuple[int, int], mode: str) -> Cost:
    """The cost of ``processor`` on an image of ``size`` and ``mode``.

    From its ``cost()``, else from its ``plan()`` (a resize), else
    :func:`fallback_cost`. A ``cost()`` or ``plan()`` that fails gives the
    fallback: the processor's ``process()`` reports what is wrong.
    """
    try:
        method = getattr(processor, "cost", None)
        if callable(method):
            result = method(size, mode)
            if isinstance(result, Cost):
                return result
        method = getattr(processor, "plan", None)
        if callable(method):
            plan = method(size)
            if isinstance(plan, ResizePlan):
                return plan.cost(size, mode)
    except Exception:
        pass
    return fallback_cost(size, mode)


def chain_cost(processors: Iterable[object], size: tuple[int, int], mode: str) -> Cost:
    """The cost of running ``processors`` one after the other, the first on ``size``/``mode``."""
    cost = unchanged(size, mode)
    for processor in processors:
        cost = cost.then(processor_cost(processor, cost.size, cost.mode))
    return cost


def resize_cost(
    size: tuple[int, int],
    mode: str,
    box: tuple[float, float, float, float] | None,
    out: tuple[int, int],
    *,
    convert: str | None = None,
    bands: int = 1,
) -> Cost:
    """The cost of a LANCZOS resize of ``box`` of an image to ``out`` (``reducing_gap`` 3).

    ``convert``: the mode of the input when it is first converted to ``mode`` (a
    palette image). ``bands``: how many bands the resize is split into (see
    :func:`flask_imagekit.imaging.resize`), which are pasted into a new image.
    """
    converted = 0 if convert in (None, mode) else image_bytes(size, mode)
    result = image_bytes(out, mode)
    if box is None:
        box = (0, 0, size[0], size[1])
    if out == size and box == (0, 0, size[0], size[1]):
        return Cost.of(out, mode, converted + result)  # Pillow returns a copy
    # LANCZOS on RGBA and LA works on a premultiplied copy of the whole image, and
    # converts the result back.
    premultiplied = image_bytes(size, mode) if mode in ("LA", "RGBA") else 0
    box_width, box_height = max(box[2] - box[0], 1.0), max(box[3] - box[1], 1.0)
    factor_x = int(box_width / out[0] / REDUCING_GAP) or 1
    factor_y = int(box_height / out[1] / REDUCING_GAP) or 1
    if mode in ("1", "P") or mode.startswith("I;16"):
        factor_x = factor_y = 1  # no reduce() for these modes
    reduced = (math.ceil(box_width / factor_x) + 2, math.ceil(box_height / factor_y) + 2)
    reduced_bytes = image_bytes(reduced, mode) if factor_x > 1 or factor_y > 1 else 0
    # The horizontal pass makes an image of the output's width and of the rows the
    # vertical pass reads: the box and the LANCZOS support around it (each band's).
    support = math.ceil(3 * max(1.0, reduced[1] / out[1]))
    rows = min(reduced[1], size[1]) + 2 * bands * (support + 1)
    temporary = image_bytes((out[0], rows), mode)
    pasted = result if bands > 1 else 0
    resampling = premultiplied + reduced_bytes + temporary + result + pasted
    converting_back = 2 * result if premultiplied else 0
    return Cost.of(out, mode, converted + max(resampling, converting_back))


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

    def cost(self, size: tuple[int, int], mode: str) -> Cost:
        """The cost of the processors, one after the other."""
        return chain_cost(self.processors, size, mode)

    def __iter__(self) -> Iterator[Processor]:
        return iter(self.processors)

    def __len__(self) -> int:
        return len(self.processors)

    def __getitem__(self, index: int) -> Processor:
        return self.processors[index]
