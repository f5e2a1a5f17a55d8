"""Processors that cut the image down: Crop, SmartCrop and TrimBorderColor."""

from __future__ import annotations

import dataclasses
from typing import Final

from PIL import Image, ImageChops, ImageDraw, ImageStat

from ..exceptions import ImproperlyConfigured
from .base import AnchorLike, Cost, check_size, copies, image_bytes
from .canvas import ResizeCanvas

__all__ = ["Crop", "Side", "SmartCrop", "TrimBorderColor", "detect_border_color"]


class Side:
    """The sides of an image, for :class:`TrimBorderColor`."""

    TOP: Final = "t"
    RIGHT: Final = "r"
    BOTTOM: Final = "b"
    LEFT: Final = "l"
    ALL: Final = (TOP, RIGHT, BOTTOM, LEFT)


def detect_border_color(img: Image.Image) -> tuple[int, ...]:
    """Return the median RGBA colour of the outermost ring of pixels of ``img``."""
    mask = Image.new("1", img.size, 1)
    w, h = img.width - 2, img.height - 2
    if w > 0 and h > 0:
        ImageDraw.Draw(mask).rectangle((1, 1, w, h), 0)
    median = ImageStat.Stat(img.convert("RGBA").histogram(mask)).median
    return tuple(int(v) for v in median)


@dataclasses.dataclass(frozen=True)
class TrimBorderColor:
    """Trim the border ``color`` (detected when None) from ``sides``, within ``tolerance``.

    ``color`` is an RGBA tuple; ``tolerance`` goes from 0 (exact colour) to 1.
    """

    color: tuple[int, int, int, int] | None = None
    tolerance: float = 0.3
    sides: tuple[str, ...] = Side.ALL

    def __post_init__(self) -> None:
        if not 0 <= self.tolerance <= 1:
            msg = (
                f"TrimBorderColor: {self.tolerance!r} is an invalid tolerance; "
                "give a number between 0 and 1 (inclusive)."
            )
            raise ImproperlyConfigured(msg)
        unknown = [side for side in self.sides if side not in Side.ALL]
        if unknown:
            msg = f"TrimBorderColor: unknown sides {unknown!r}; use Side.TOP/RIGHT/BOTTOM/LEFT."
            raise ImproperlyConfigured(msg)
        object.__setattr__(self, "sides", tuple(self.sides))
        if self.color is not None:
            object.__setattr__(self, "color", tuple(self.color))

    def process(self, img: Image.Image) -> Image.Image:
        """Return ``img`` cropped to the bounding box of what differs from the border colour."""
        source = img.convert("RGBA")
        border_color = self.color or detect_border_color(source)
        diff = ImageChops.difference(source, Image.new("RGBA", img.size, border_color))
        # A tolerance of 0 needs no subtraction; 1 would trim every colour down to
        # nothing, so pilkit ignores it.
        if self.tolerance not in (0, 1):
            threshold = ImageChops.constant(diff, int(self.tolerance * 255)).convert("RGBA")
            diff = ImageChops.subtract(diff, threshold)
        # pilkit calls getbbox(), which on RGBA looks at the alpha channel only since
        # Pillow 9.x, so opaque images were never trimmed; compare every channel.
        bbox = diff.getbbox(alpha_only=False)
        if not bbox:
            return img
        left, top, right, bottom = bbox
        return img.crop(
            (
                left if Side.LEFT in self.sides else 0,
                top if Side.TOP in self.sides else 0,
                right if Side.RIGHT in self.sides else img.width,
                bottom if Side.BOTTOM in self.sides else img.height,
            )
        )

    def cost(self, size: tuple[int, int], mode: str) -> Cost:
        """The memory of :meth:`process`: the RGBA copy, the border, the differences.

        The size of the result depends on the pixels, so it is guessed (the whole
        image) and the steps after this one are checked again once it has run.
        """
        return Cost(size, mode, copies(size, 4.5), size, guessed=True)


@dataclasses.dataclass(frozen=True)
class Crop:
    """Crop to at most ``width`` x ``height`` at the anchor (default centre) or at x/y.

    Like pilkit, this is :class:`ResizeCanvas` that never enlarges: the result is RGBA,
    and ``x``/``y`` are where the image goes on the smaller canvas.
    """

    width: int | None = None
    height: int | None = None
    anchor: AnchorLike | None = None
    x: int | None = None
    y: int | None = None

    def __post_init__(self) -> None:
        check_size("Crop", width=self.width, height=self.height)
        # Checked and normalised as ResizeCanvas does it, now rather than at the first image.
        canvas = ResizeCanvas(1, 1, anchor=self.anchor, x=self.x, y=self.y)
        object.__setattr__(self, "anchor", canvas.anchor)
        object.__setattr__(self, "x", canvas.x)
        object.__setattr__(self, "y", canvas.y)

    def process(self, img: Image.Image) -> Image.Image:
        """Return the anchored ``width`` x ``height`` region of ``img`` as RGBA."""
        width = img.width if self.width is None else min(img.width, self.width)
        height = img.height if self.height is None else min(img.height, self.height)
        canvas = ResizeCanvas(width, height, anchor=self.anchor, x=self.x, y=self.y)
        return canvas.process(img)

    def cost(self, size: tuple[int, int], mode: str) -> Cost:
        """The memory and size of :meth:`process` on an image of ``size`` and ``mode``."""
        width = size[0] if self.width is None else min(size[0], self.width)
        height = size[1] if self.height is None else min(size[1], self.height)
        return ResizeCanvas(width, height, anchor=self.anchor, x=self.x, y=self.y).cost(size, mode)


@dataclasses.dataclass(frozen=True)
class SmartCrop:
    """Crop to ``width`` x ``height``, whittling away the slices with the least entropy."""

    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        check_size("SmartCrop", width=self.width, height=self.height)

    def compare_entropy(
        self, start_slice: Image.Image, end_slice: Image.Image, slice: int, difference: int
    ) -> tuple[int, int]:
        """Return how much to take off the start and the end, from the slices' entropy."""
        start_entropy = start_slice.entropy()
        end_entropy = end_slice.entropy()
        if end_entropy and abs(start_entropy / end_entropy - 1) < 0.01:
            # Less than 1% difference: take from both sides.
            if difference >= slice * 2:
                return slice, slice
            half_slice = slice // 2
            return half_slice, slice - half_slice
        if start_entropy > end_entropy:
            return 0, slice
        return slice, 0

    def process(self, img: Image.Image) -> Image.Image:
        """Return the ``width`` x ``height`` region of ``img`` with the most entropy."""
        source_x, source_y = img.size
        diff_x = source_x - min(source_x, source_x if self.width is None else self.width)
        diff_y = source_y - min(source_y, source_y if self.height is None else self.height)
        left = top = 0
        right, bottom = source_x, source_y
        while diff_x:
            size = min(diff_x, max(diff_x // 5, 10))
            start = img.crop((left, 0, left + size, source_y))
            end = img.crop((right - size, 0, right, source_y))
            add, remove = self.compare_entropy(start, end, size, diff_x)
            left += add
            right -= remove
            diff_x = diff_x - add - remove
        while diff_y:
            size = min(diff_y, max(diff_y // 5, 10))
            start = img.crop((0, top, source_x, top + size))
            end = img.crop((0, bottom - size, source_x, bottom))
            add, remove = self.compare_entropy(start, end, size, diff_y)
            top += add
            bottom -= remove
            diff_y = diff_y - add - remove
        return img.crop((left, top, right, bottom))

    def cost(self, size: tuple[int, int], mode: str) -> Cost:
        """The memory and size of :meth:`process`: two slices at a time, then the crop."""
        source_x, source_y = size
        out_x = source_x if self.width is None else min(source_x, self.width)
        out_y = source_y if self.height is None else min(source_y, self.height)
        diff_x, diff_y = source_x - out_x, source_y - out_y
        slice_x = min(diff_x, max(diff_x // 5, 10))
        slice_y = min(diff_y, max(diff_y // 5, 10))
        slices = max(
            2 * image_bytes((slice_x, source_y), mode), 2 * image_bytes((out_x, slice_y), mode)
        )
        out = (out_x, out_y)
        return Cost.of(out, mode, slices + image_bytes(out, mode))
