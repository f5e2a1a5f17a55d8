"""Processors that change the canvas around the image: ResizeCanvas and AddBorder."""

from __future__ import annotations

import dataclasses

from PIL import Image

from ..exceptions import ImproperlyConfigured
from .base import Anchor, AnchorLike, ColorLike, Cost, check_size, freeze_color, image_bytes

__all__ = ["AddBorder", "ResizeCanvas"]

#: pilkit's default canvas colour: transparent white.
TRANSPARENT: tuple[int, int, int, int] = (255, 255, 255, 0)


def _is_thickness(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclasses.dataclass(frozen=True)
class ResizeCanvas:
    """Put the image on a ``width`` x ``height`` RGBA canvas of ``color``, by anchor or x/y.

    As in pilkit, the result is RGBA, ``color`` defaults to transparent white and the
    anchor to the centre; ``x``/``y`` give the position of the image on the canvas.
    """

    width: int
    height: int
    color: ColorLike | None = None
    anchor: AnchorLike | None = None
    x: int | None = None
    y: int | None = None

    def __post_init__(self) -> None:
        check_size("ResizeCanvas", width=self.width, height=self.height)
        if self.x is not None or self.y is not None:
            if self.anchor:
                msg = "Give either an anchor or x and y coordinates, not both."
                raise ImproperlyConfigured(msg)
            object.__setattr__(self, "x", self.x or 0)
            object.__setattr__(self, "y", self.y or 0)
            object.__setattr__(self, "anchor", None)
        else:
            object.__setattr__(self, "anchor", Anchor.validate(self.anchor or Anchor.CENTER))
        object.__setattr__(self, "color", freeze_color(self.color or TRANSPARENT))

    def process(self, img: Image.Image) -> Image.Image:
        """Return a new RGBA canvas with ``img`` pasted at the anchor or at (x, y)."""
        if self.anchor is not None:
            anchor_x, anchor_y = Anchor.get_tuple(self.anchor)
            x = int(float(self.width - img.width) * float(anchor_x))
            y = int(float(self.height - img.height) * float(anchor_y))
        else:
            x, y = self.x or 0, self.y or 0
        canvas = Image.new("RGBA", (self.width, self.height), self.color)
        canvas.paste(img, (x, y))
        return canvas

    def cost(self, size: tuple[int, int], mode: str) -> Cost:
        """The memory and size of :meth:`process`: the canvas, and the image made RGBA."""
        return _canvas_cost(size, mode, (self.width, self.height))


@dataclasses.dataclass(frozen=True)
class AddBorder:
    """Add a border of ``thickness`` (int, or (top, right, bottom, left)) in ``color``.

    As in pilkit, the result is RGBA and the border defaults to transparent white.
    """

    thickness: int | tuple[int, int, int, int]
    color: ColorLike | None = None

    def __post_init__(self) -> None:
        thickness = self.thickness
        if isinstance(thickness, list):
            thickness = tuple(thickness)
            object.__setattr__(self, "thickness", thickness)
        valid = _is_thickness(thickness) or (
            isinstance(thickness, tuple)
            and len(thickness) == 4
            and all(_is_thickness(v) for v in thickness)
        )
        if not valid:
            msg = (
                f"AddBorder: thickness must be an int or a (top, right, bottom, left) tuple "
                f"of ints >= 0, not {self.thickness!r}."
            )
            raise ImproperlyConfigured(msg)
        object.__setattr__(self, "color", freeze_color(self.color))

    @property
    def sides(self) -> tuple[int, int, int, int]:
        """The border thickness as (top, right, bottom, left)."""
        if isinstance(self.thickness, int):
            return (self.thickness,) * 4
        return self.thickness

    @property
    def top(self) -> int:
        """Thickness of the top border."""
        return self.sides[0]

    @property
    def right(self) -> int:
        """Thickness of the right border."""
        return self.sides[1]

    @property
    def bottom(self) -> int:
        """Thickness of the bottom border."""
        return self.sides[2]

    @property
    def left(self) -> int:
        """Thickness of the left border."""
        return self.sides[3]

    def process(self, img: Image.Image) -> Image.Image:
        """Return ``img`` on a canvas larger by the border on each side."""
        top, right, bottom, left = self.sides
        return ResizeCanvas(
            img.width + left + right, img.height + top + bottom, color=self.color, x=left, y=top
        ).process(img)

    def cost(self, size: tuple[int, int], mode: str) -> Cost:
        """The memory and size of :meth:`process` on an image of ``size`` and ``mode``."""
        top, right, bottom, left = self.sides
        return _canvas_cost(size, mode, (size[0] + left + right, size[1] + top + bottom))


def _canvas_cost(size: tuple[int, int], mode: str, canvas: tuple[int, int]) -> Cost:
    # paste() converts an image of another mode to the canvas's mode first.
    converted = 0 if mode == "RGBA" else image_bytes(size, "RGBA")
    return Cost.of(canvas, "RGBA", image_bytes(canvas, "RGBA") + converted)
