"""The budgets of a generation: peak memory and image sizes, estimated before allocating.

Each step's memory comes from the processors' ``cost()`` (see
:class:`~flask_imagekit.processors.base.Cost`), the conversions and the encoder;
:class:`Tally` keeps the peak and the largest image, and refuses a generation
over ``IMAGEKIT_MAX_DECODE_BYTES`` or ``IMAGEKIT_MAX_OUTPUT_PIXELS``.
"""

from __future__ import annotations

import dataclasses
import typing as t

from PIL import Image

from ..exceptions import SourceError
from ..processors.base import QUANTIZE_COST, copies, image_bytes, processor_cost
from .encoding import ALPHA_MODES, WIDE_MODES
from .limits import DEFAULT_MAX_DECODE_BYTES, DEFAULT_MAX_OUTPUT_PIXELS, describe

__all__ = ["Tally", "check_pipeline", "describe_image", "encode_cost"]

# Memory the encoders take beyond the image they are given, in bytes per pixel,
# measured on noise (their worst case) with any options, and rounded up: libwebp
# (lossless: 40) and libavif keep planes and analysis buffers. JPEG, PNG and the
# others are estimated from their buffers and output (see _encoder_cost).
_WEBP_COST, _WEBP_LOSSLESS_COST, _AVIF_COST = 24.0, 40.0, 36.0
# Bytes per pixel of uncompressed image data, by mode. An encoder's output is kept
# whole (noise compresses to about this, JPEG to 1.4 per component at quality 100),
# in a buffer that may be copied as it grows.
_RAW_BYTES = {"1": 0.125, "L": 1.0, "P": 1.0, "LA": 2.0, "I;16": 2.0, "RGB": 3.0}
# JPEG chroma subsampling option -> coefficients per pixel of a colour image.
_JPEG_COMPONENTS = {0: 3.0, "4:4:4": 3.0, 1: 2.0, "4:2:2": 2.0, 2: 1.5, "4:2:0": 1.5, -1: 1.5}


def encode_cost(
    size: tuple[int, int],
    mode: str,
    format: str,
    *,
    transparency: bool = False,
    icc: bool = False,
    options: t.Mapping[str, t.Any] | None = None,
) -> int:
    """Estimated memory, in bytes, that ``save_image`` takes beyond the image it is given.

    The mode conversions of :func:`~flask_imagekit.imaging.encoding.prepare_image`
    (16-bit and CMYK, alpha flattened for JPEG, palettes for GIF), the sRGB
    conversion when the image has an ICC profile (``icc``), the encoder's buffers
    and its output, for the encoder ``options``. ``transparency``: the image may
    have a transparent colour (``info["transparency"]``).
    """
    fmt = format.upper()
    pixels = size[0] * size[1]
    extra = 0

    def convert(to: str) -> str:
        nonlocal extra
        extra += image_bytes(size, to)
        return to

    if mode == "CMYK":
        mode = convert("RGB")
    elif mode in WIDE_MODES:
        if fmt == "PNG" and mode.startswith("I;16"):
            if mode != "I;16":
                extra += image_bytes(size, "I")
                mode = convert("I;16")
        else:
            extra += 2 * image_bytes(size, "I")  # to 32-bit, then scaled
            mode = convert("L")
    elif mode in ("1", "RGBX", "YCbCr", "LAB", "HSV"):
        mode = convert("L" if mode == "1" else "RGB")
    elif mode in ("PA", "RGBa", "La"):
        mode = convert("LA" if mode == "La" else "RGBA")
    alpha = mode in ALPHA_MODES or transparency
    if fmt == "JPEG":
        if alpha:
            # An RGBA copy, a white base, the composite, then RGB.
            extra += copies(size, 3)
            mode = "RGB"
        elif mode not in ("RGB", "L"):
            mode = convert("RGB")
    elif fmt == "GIF":
        if mode != "P" or transparency:
            extra += copies(size, 1) + int(pixels * QUANTIZE_COST)
            if alpha:
                extra += copies(size, 1) + 2 * image_bytes(size, "L")
            mode = "P"
    elif fmt in ("WEBP", "AVIF"):
        if mode not in ("RGB", "RGBA"):
            if icc:
                extra += image_bytes(size, mode)
            mode = convert("RGBA" if alpha else "RGB")
    elif fmt == "PNG":
        if mode not in ("RGB", "RGBA", "L", "LA", "P", "I;16", "1"):
            mode = convert("RGBA" if alpha else "RGB")
    elif mode not in ("RGB", "RGBA", "L", "LA"):
        mode = convert("RGBA" if alpha else "RGB")
    if icc:
        extra += image_bytes(size, mode)  # the sRGB conversion makes a new image
    return extra + int(pixels * _encoder_cost(fmt, mode, options or {}))


def _encoder_cost(fmt: str, mode: str, options: t.Mapping[str, t.Any]) -> float:
    """Bytes per pixel an encoder takes for an image of ``mode``, its output included."""
    output = 2.0 * _RAW_BYTES.get(mode, 4.0)
    if fmt == "JPEG":
        subsampling = options.get("subsampling", -1)
        components = 1.0 if mode == "L" else _JPEG_COMPONENTS.get(subsampling, 3.0)
        # A row buffer of the whole image and libjpeg's coefficients (optimized
        # Huffman tables, progressive), then the output.
        return 1.0 + 2.0 * components + 2.0 * 1.4 * components
    if fmt == "WEBP":
        return _WEBP_LOSSLESS_COST if options.get("lossless") else _WEBP_COST
    if fmt == "AVIF":
        return _AVIF_COST
    return output + 0.5


@dataclasses.dataclass
class Tally:
    """The peak memory and the largest image of a generation, and the step of each."""

    memory: int = 0
    memory_at: str = ""
    largest: tuple[int, int] = (0, 0)
    largest_at: str = ""

    def add(self, memory: int, largest: tuple[int, int], at: str, made: str = "") -> None:
        """Tally a step ``at`` that peaks at ``memory`` bytes and ``made`` a ``largest`` image."""
        if memory > self.memory:
            self.memory, self.memory_at = memory, at
        if largest[0] * largest[1] > self.largest[0] * self.largest[1]:
            self.largest, self.largest_at = largest, made or f"an image made by {at}"

    def walk(
        self,
        size: tuple[int, int],
        mode: str,
        processors: t.Sequence[t.Any],
        format: str | None,
        *,
        held: int = 0,
        start_held: bool = True,
        transparency: bool = False,
        icc: bool = False,
        options: t.Mapping[str, t.Any] | None = None,
    ) -> None:
        """Tally running ``processors`` on an image of ``size``/``mode``, then encoding it.

        ``held``: bytes of other images alive meanwhile. With ``start_held``, the
        first image stays alive to the end (the spec keeps it for its profile).
        """
        start = image_bytes(size, mode) if start_held else 0
        for index, processor in enumerate(processors):
            cost = processor_cost(processor, size, mode)
            kept = start if index else 0
            at = f"{type(processor).__name__} on a {size[0]}x{size[1]} {mode} image"
            self.add(held + kept + image_bytes(size, mode) + cost.extra, cost.largest, at)
            size, mode = cost.size, cost.mode
        kept = start if processors else 0
        self.add(held, size, "the output", "the output")
        if format is not None:
            extra = encode_cost(
                size, mode, format, transparency=transparency, icc=icc, options=options
            )
            at = f"encoding a {size[0]}x{size[1]} {mode} image as {format.upper()}"
            self.add(held + kept + image_bytes(size, mode) + extra, (0, 0), at)

    def check(self, what: str, max_bytes: int | None, max_output_pixels: int | None) -> None:
        """Raise :class:`SourceError` naming ``what`` when the tally is over a limit."""
        width, height = self.largest
        if max_output_pixels is not None and width * height > max_output_pixels:
            msg = (
                f"{what}: {self.largest_at} would be {width}x{height} "
                f"({width * height:,} pixels), over the limit of {max_output_pixels:,} "
                "(IMAGEKIT_MAX_OUTPUT_PIXELS). Make the spec's output smaller (or resize "
                "first), or raise the limit."
            )
            raise SourceError(msg)
        if max_bytes is not None and self.memory > max_bytes:
            msg = (
                f"{what}: this generation needs about {self.memory // 2**20:,} MiB "
                f"({self.memory_at}), over the limit of {max_bytes // 2**20:,} MiB "
                "(IMAGEKIT_MAX_DECODE_BYTES). Put a resizing processor first in the "
                "spec, use a smaller image, or raise the limit."
            )
            raise SourceError(msg)


def check_pipeline(
    img: Image.Image,
    processors: t.Sequence[t.Any],
    format: str | None = None,
    *,
    max_bytes: int | None = DEFAULT_MAX_DECODE_BYTES,
    max_output_pixels: int | None = DEFAULT_MAX_OUTPUT_PIXELS,
    held: int = 0,
    icc: bool = False,
    options: t.Mapping[str, t.Any] | None = None,
    name: str | None = None,
) -> None:
    """Refuse to run ``processors`` on ``img`` and encode it as ``format`` over the budgets.

    Estimates, before anything is allocated, the peak memory of every step (from
    the processors' ``cost()``, see :class:`~flask_imagekit.processors.base.Cost`)
    and the size of every image made, and raises :class:`SourceError` when one is
    over ``max_bytes`` or ``max_output_pixels``. ``held``: bytes of other images
    kept alive meanwhile; ``icc``: the output is converted from an ICC profile;
    ``options``: the encoder's.
    """
    tally = Tally()
    transparency = "transparency" in img.info
    icc = icc or bool(img.info.get("icc_profile"))
    tally.walk(
        img.size,
        img.mode,
        processors,
        format,
        held=held,
        start_held=False,
        transparency=transparency,
        icc=icc,
        options=options,
    )
    tally.check(describe_image(img, img.size, name), max_bytes, max_output_pixels)


def describe_image(img: Image.Image, size: tuple[int, int], name: str | None) -> str:
    """How budget errors name the source ``name``: with its ``size``, format and mode."""
    kind = " ".join(filter(None, (img.format, img.mode)))
    return f"{describe(name)} ({size[0]}x{size[1]} {kind})"
