"""The memory of a decode shared by several specs, checked before anything is made.

Every image made for more than one spec (see :mod:`flask_imagekit.specs.sharing`)
is counted as alive throughout, as are the decoded images the steps start from,
and each step of each spec is checked with them against the budgets; so is the
memory of the encoders that run at once (see
:mod:`flask_imagekit.specs.encoding_pool`).
"""

from __future__ import annotations

import typing as t

from ..imaging.budgets import Tally, describe_image, encode_cost
from ..processors.base import chain_cost, image_bytes

if t.TYPE_CHECKING:
    from PIL import Image

    from .sharing import Limits, _Node

__all__ = ["check_shared"]


def check_shared(
    img: Image.Image,
    stored_size: tuple[int, int],
    roots: t.Sequence[_Node],
    nodes: t.Sequence[_Node],
    limits: Limits,
    name: str | None,
    encodes: list[tuple[int, int]],
) -> tuple[int, int]:
    """Refuse the steps after the decode that are over the budgets, with what is kept.

    Every image made for more than one spec is counted as alive throughout, as are
    the decoded images the roots start from. Returns the bytes of the images kept
    and of the decoded ones, and adds to ``encodes`` the memory each encoder takes
    and the bytes its output may keep until taken (counted as its image's).
    """
    starts: dict[int, int] = {}
    for root in roots:
        assert root.start is not None
        starts[id(root.start)] = image_bytes(root.start.size, root.start.mode)
    alive = sum(starts.values())
    made: dict[int, tuple[tuple[int, int], str, int]] = {}  # node -> size, mode, own bytes
    for root in roots:
        assert root.start is not None
        cost = chain_cost(root.processors, root.start.size, root.start.mode)
        own = image_bytes(cost.size, cost.mode) if root.processors else 0
        made[id(root)] = (cost.size, cost.mode, own)
    for node in nodes:
        if node.parent is not None:
            size, mode, _ = made[id(node.parent)]
            cost = chain_cost(node.processors, size, mode)
            made[id(node)] = (cost.size, cost.mode, image_bytes(cost.size, cost.mode))
    kept = sum(own for _, _, own in made.values())
    tally = Tally()
    transparency = "transparency" in img.info
    icc = bool(img.info.get("icc_profile"))
    for node in nodes:
        if node.parent is None:
            assert node.start is not None
            size, mode = node.start.size, node.start.mode
            held = alive - starts[id(node.start)] + kept - made[id(node)][2]
        else:
            size, mode, parent_own = made[id(node.parent)]
            assert node.parent.start is not None
            # The walk counts its input: the parent's image, or the start it returned.
            input_bytes = parent_own or starts[id(node.parent.start)]
            held = alive + kept - made[id(node)][2] - input_bytes
        for format, options in node.encodings or [(None, None)]:
            tally.walk(
                size,
                mode,
                node.processors,
                format,
                held=held,
                transparency=transparency,
                icc=icc,
                options=options,
            )
            if format is not None:
                out_size, out_mode, _ = made[id(node)]
                extra = encode_cost(
                    out_size, out_mode, format, transparency=transparency, icc=icc, options=options
                )
                encodes.append((extra, image_bytes(out_size, out_mode)))
    tally.check(describe_image(img, stored_size, name), limits.max_bytes, limits.max_output_pixels)
    return kept, alive
