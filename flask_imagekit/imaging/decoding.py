"""Decoding: the pixels upright, on the fast path when the processors allow it.

When the first processor of a list says what size it resizes to, a JPEG is
decoded at a reduced scale (keeping a margin over the output) and the crop
happens inside the resize. Before anything is allocated, the whole generation
is checked against the budgets (see :mod:`~flask_imagekit.imaging.budgets`).
"""

from __future__ import annotations

import typing as t

from PIL import Image

from ..exceptions import SourceError
from ..processors.base import ResizePlan, image_bytes, resize_cost
from ..processors.orientation import exif_orientation, orient, upright_size
from ..processors.resampling import scale_box
from .budgets import Tally, describe_image
from .colour import cmyk_to_rgb
from .jpeg import is_progressive_jpeg, jpeg_coefficient_bytes
from .limits import DEFAULT_MAX_DECODE_BYTES, DEFAULT_MAX_OUTPUT_PIXELS
from .opening import load_pixels
from .planning import Box, draft_request, plan_lists
from .resampling import resize, resize_bands

__all__ = ["decode", "decode_many"]

# Peak memory of decoding, in bytes per pixel, where it is more than the image:
# Pillow decodes WebP and AVIF whole, in several copies.
_DECODE_PEAK = {"WEBP": 16.0, "AVIF": 10.0}

# Where an image keeps its orientation, besides the EXIF block.
_ORIENTATION_INFO_KEYS = ("exif", "xmp", "XML:com.adobe.xmp")


def decode(
    img: Image.Image,
    processors: t.Sequence[t.Any] = (),
    *,
    auto_orient: bool = True,
    name: str | None = None,
    format: str | None = None,
    options: t.Mapping[str, t.Any] | None = None,
    max_bytes: int | None = DEFAULT_MAX_DECODE_BYTES,
    max_output_pixels: int | None = DEFAULT_MAX_OUTPUT_PIXELS,
) -> tuple[Image.Image, t.Sequence[t.Any]]:
    """Load ``img`` upright and return it with the processors still to run.

    When the first processor can be expressed as one resize of a region of its
    input (see :class:`~flask_imagekit.processors.base.ResizePlan`), that resize
    is done here, on a JPEG decoded at reduced scale, and only the processors
    that finish the plan are returned. Otherwise the whole image is decoded and
    ``processors`` are returned unchanged. The processors, and encoding as
    ``format`` with ``options`` when given, are checked against the budgets
    first (see :func:`decode_many`).
    """
    return decode_many(
        img,
        [processors],
        auto_orient=auto_orient,
        name=name,
        formats=[format],
        options=[options],
        max_bytes=max_bytes,
        max_output_pixels=max_output_pixels,
    )[0]


def decode_many(
    img: Image.Image,
    processor_lists: t.Sequence[t.Sequence[t.Any]],
    *,
    auto_orient: bool = True,
    name: str | None = None,
    formats: t.Sequence[str | None] | None = None,
    options: t.Sequence[t.Mapping[str, t.Any] | None] | None = None,
    max_bytes: int | None = DEFAULT_MAX_DECODE_BYTES,
    max_output_pixels: int | None = DEFAULT_MAX_OUTPUT_PIXELS,
    held: int = 0,
) -> list[tuple[Image.Image, t.Sequence[t.Any]]]:
    """Decode ``img`` once for several processor lists (one per spec of a source).

    The JPEG reduction is the largest that every list's plan allows, so the
    smaller outputs are derived from the same reduced decode.

    Before the pixels are decoded (JPEG) or anything else is allocated (other
    formats, whose decoding :func:`~flask_imagekit.imaging.open_image` estimated),
    the whole generation of every list is checked against the budgets, as
    :func:`~flask_imagekit.imaging.check_pipeline` does: each step's memory (with
    ``held`` bytes of other images alive) against ``max_bytes``, each image made
    against ``max_output_pixels``. ``formats`` and ``options``: the output format
    (None when it is not encoded) and encoder options of each list. Raises
    :class:`SourceError` when a list is over a budget.
    """
    budgets = max_bytes is not None or max_output_pixels is not None
    outputs = (
        formats or [None] * len(processor_lists),
        options or [None] * len(processor_lists),
    )
    jpeg = img.format in ("JPEG", "MPO")
    if not jpeg:
        if budgets:
            # The orientation is known once decoded: refuse first what is over a
            # budget either way (upright already, or to be turned a quarter).
            errors: list[SourceError] = []
            for guess in (1, 6) if auto_orient else (1,):
                plans, boxes = plan_lists(img, processor_lists, guess)
                tally = _decode_tally(img, processor_lists, plans, boxes, guess, *outputs, 0, held)
                try:
                    tally.check(describe_image(img, img.size, name), max_bytes, max_output_pixels)
                except SourceError as exc:
                    errors.append(exc)
            if len(errors) == (2 if auto_orient else 1):
                raise errors[0]
        # Reading EXIF from other formats may decode pixels: surface errors here.
        load_pixels(img, name)
    orientation = exif_orientation(img) if auto_orient else 1
    stored_size = img.size
    # libjpeg keeps every coefficient of a progressive JPEG, whatever the scale.
    coefficients = jpeg_coefficient_bytes(img) if is_progressive_jpeg(img) else 0
    plans, boxes = plan_lists(img, processor_lists, orientation)
    request = draft_request(stored_size, plans, boxes, orientation) if jpeg else None
    drafted = img.draft(img.mode, request) if request is not None else None
    if drafted is not None:
        # Where the stored image ends in the reduced one: the exact scale, which
        # img.size (rounded up to whole pixels) is not.
        scaled = drafted[1][2:]
        boxes = [None if box is None else scale_box(box, stored_size, scaled) for box in boxes]
    if budgets:
        tally = _decode_tally(
            img, processor_lists, plans, boxes, orientation, *outputs, coefficients, held
        )
        tally.check(describe_image(img, stored_size, name), max_bytes, max_output_pixels)
    load_pixels(img, name)
    results: list[tuple[Image.Image, t.Sequence[t.Any]]] = []
    upright_full: Image.Image | None = None
    for processors, plan, box in zip(processor_lists, plans, boxes, strict=True):
        if plan is None or box is None:
            if upright_full is None:
                upright_full = orient(img, orientation)
            results.append((upright_full, processors))
            continue
        out = upright_size(plan.size, orientation)
        if out == img.size and box == (0, 0, *img.size):
            resized = img
        else:
            resized = resize(img, out, box)
        results.append((orient(resized, orientation), plan.after))
    icc = img.info.get("icc_profile") if img.mode == "CMYK" else None
    if icc:
        # Processors would turn CMYK into RGB(A) with Pillow's naive formula: convert
        # with the source's profile first, on the (already reduced) image.
        results = [
            (
                cmyk_to_rgb(image, icc) if processors and image.mode == "CMYK" else image,
                processors,
            )
            for image, processors in results
        ]
    if auto_orient:
        # Upright now: a Transpose() processor must not rotate the image again.
        for image, _ in results:
            for key in _ORIENTATION_INFO_KEYS:
                image.info.pop(key, None)
    return results


def _decode_tally(
    img: Image.Image,
    processor_lists: t.Sequence[t.Sequence[t.Any]],
    plans: t.Sequence[ResizePlan | None],
    boxes: t.Sequence[Box | None],
    orientation: int,
    formats: t.Sequence[str | None],
    options: t.Sequence[t.Mapping[str, t.Any] | None],
    coefficients: int,
    held: int,
) -> Tally:
    """Tally :func:`decode_many` (``img`` drafted, not loaded yet) and each list's steps.

    ``boxes``: the region each plan resizes, in ``img`` as drafted.
    """
    tally = Tally()
    transparency = "transparency" in img.info
    icc = bool(img.info.get("icc_profile"))
    decoded = image_bytes(img.size, img.mode)
    decoding = decoded + coefficients
    if img.format in _DECODE_PEAK:
        decoding = max(decoding, int(img.width * img.height * _DECODE_PEAK[img.format]))
        # The decoder's copies are freed, but the process does not get all of that
        # memory back for the next steps (measured: about two thirds of it stays;
        # all of it is counted).
        held += decoding - decoded
    tally.add(held + decoded + coefficients, (0, 0), f"decoding at {img.width}x{img.height}")
    alive = held + decoded
    starts: list[tuple[tuple[int, int], str, int]] = []  # size, mode, bytes
    full: int | None = None
    for plan, box in zip(plans, boxes, strict=True):
        if plan is None or box is None:
            if full is None:
                full = image_bytes(img.size, img.mode)
                if orientation != 1:
                    tally.add(alive + full, (0, 0), "turning the image upright")
                    alive += full
            upright = upright_size(img.size, orientation)
            starts.append((upright, img.mode, 0))
            continue
        out = upright_size(plan.size, orientation)
        cost = resize_cost(img.size, img.mode, box, out, bands=resize_bands(out))
        at = f"resizing the {img.width}x{img.height} image to {out[0]}x{out[1]}"
        tally.add(alive + cost.extra, cost.largest, at)
        made = image_bytes(out, img.mode)
        if orientation != 1:
            tally.add(alive + 2 * made, (0, 0), at)
        alive += made
        starts.append((plan.size, img.mode, made))
    distinct = sum(made for _, _, made in starts) + (full or 0)
    for (size, mode, made), processors, plan, format, encoder_options in zip(
        starts, processor_lists, plans, formats, options, strict=True
    ):
        own = made if plan is not None else (full or 0)
        remaining = plan.after if plan is not None else processors
        tally.walk(
            size,
            mode,
            remaining,
            format,
            held=held + distinct - own,
            transparency=transparency,
            icc=icc,
            options=encoder_options,
        )
    return tally
