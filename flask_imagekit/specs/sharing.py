"""Specs of one source generated together: one decode, and each image made once.

:func:`share_decode` decodes a source once for several specs and gives each a
:class:`Share`, from which it takes the image it encodes. Specs that make the
same pixels share them: the same ``auto_orient`` and processors give one image,
whatever the formats it is encoded to. A responsive candidate's processors are
its spec's (the *stem*) then a downscale to its width (the *tail*, see
:meth:`ImageSpec.processing <flask_imagekit.specs.ImageSpec.processing>`): the
stem runs once for every candidate of the spec, and each width is computed once
from the stem's output, for every format of that width.

Images are made when the first spec needs them and dropped when the last spec
that needs them is done; specs decoded together are about to be generated, so
the first to generate makes them all and encodes every output at once (see
:mod:`flask_imagekit.specs.encoding_pool`). Before anything is made, the memory
of every step with the images kept for the other specs is checked against
``IMAGEKIT_MAX_DECODE_BYTES`` (as :func:`decode_many
<flask_imagekit.imaging.decode_many>` checks the decode), and so is the memory of
the encoders that run at once.
"""

from __future__ import annotations

import threading
import typing as t

from PIL import Image

from ..exceptions import GenerationError, ImageKitError, ImproperlyConfigured
from ..imaging import check_pipeline, decode_many, exif_orientation, load_pixels
from ..imaging.preview import blur_preview
from ..processors.base import image_bytes, processor_cost
from ..processors.orientation import upright_size
from .encoding_pool import Batch, Encode, fitting_threads
from .hashing import canonical
from .sharedbudget import check_shared

if t.TYPE_CHECKING:
    import io

    from . import ImageSpec

__all__ = ["Limits", "Share", "share_decode"]


class Limits(t.NamedTuple):
    """The budgets of a generation (see :mod:`flask_imagekit.imaging.budgets`)."""

    max_bytes: int | None
    max_output_pixels: int | None


class _Family:
    """The images made from one stem: they share the spec's output size and a preview."""

    def __init__(self, base_size: tuple[int, int] | None = None) -> None:
        self.nodes: list[_Node] = []
        self.base_size = base_size
        #: The source's size as the spec sees it (upright), once decoded.
        self.source_size: tuple[int, int] | None = None
        self.preview: str | None = None
        self.previewed = False


class _Node:
    """An image made once, from the decode (a root) or from another node's image."""

    def __init__(
        self,
        family: _Family,
        processors: t.Sequence[t.Any],
        parent: _Node | None = None,
        *,
        is_stem: bool = False,
    ) -> None:
        self.family = family
        self.processors = list(processors)
        self.parent = parent
        self.is_stem = is_stem
        #: The image the processors start from (roots only, until they have run).
        self.start: Image.Image | None = None
        self.image: Image.Image | None = None
        self.error: BaseException | None = None
        #: The specs and nodes that have yet to take the image.
        self.users = 0
        #: (format, options) of each spec that encodes the image.
        self.encodings: list[tuple[str | None, t.Mapping[str, t.Any] | None]] = []
        family.nodes.append(self)
        #: Whether this node still holds a claim on its parent's image.
        self.claims_parent = parent is not None
        if parent is not None:
            parent.users += 1

    def get(self, spec: ImageSpec, group: _Group) -> Image.Image:
        if self.image is not None:
            return self.image
        if self.error is not None:
            raise self.error
        parent = self.parent
        try:
            img = parent.get(spec, group) if parent is not None else self.start
            assert img is not None
            self.image = _run(img, self.processors, spec, group)
            if self.is_stem:
                self.family.base_size = self.image.size
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self.start = None
            self.let_go_of_parent()
        return self.image

    def let_go_of_parent(self) -> None:
        if self.claims_parent and self.parent is not None:
            self.claims_parent = False
            self.parent.release()

    def release(self) -> None:
        self.users -= 1
        if self.users <= 0:
            self.image = self.start = None
            # Never made (its specs were let go): the parent's image is not needed for it.
            self.let_go_of_parent()


class _Group:
    """What the shares of one decode have in common."""

    def __init__(
        self, name: str | None, original_format: str | None, icc: bytes | None, limits: Limits
    ) -> None:
        self.name = name
        self.original_format = original_format
        self.icc_profile = icc
        self.limits = limits
        self.lock = threading.RLock()
        self.nodes: list[_Node] = []
        #: Bytes of the images kept for other specs while one is made (estimated).
        self.held = 0
        #: The outputs of the specs, encoded at once when the first generates.
        self.batch: Batch | None = None


class Share:
    """One spec's part of a shared decode: the image it encodes, made once."""

    def __init__(self, node: _Node, group: _Group) -> None:
        self._node = node
        self._group = group
        self._released = self._discarded = False
        self._encoded: tuple[io.BytesIO | None, BaseException | None] | None = None

    @property
    def original_format(self) -> str | None:
        """The format of the source as decoded."""
        return self._group.original_format

    @property
    def icc_profile(self) -> bytes | None:
        """The source's ICC profile (processors that build new images leave it behind)."""
        return self._group.icc_profile

    def image(self, spec: ImageSpec) -> Image.Image:
        """The processed image of ``spec``: made now, or by a spec that needed it before.

        Raises what making it raised (:class:`GenerationError` for a failing
        processor), for every spec that needs it.
        """
        made = self._node.image
        if made is not None:  # kept until this share is released: no need to wait
            return made
        with self._group.lock:
            return self._node.get(spec, self._group)

    def base_size(self) -> tuple[int, int] | None:
        """The size of the spec's own output, before a candidate's downscale."""
        return self._node.family.base_size

    def source_size(self) -> tuple[int, int] | None:
        """The size of the decoded source, upright as the spec sees it."""
        return self._node.family.source_size

    def preview(self, img: Image.Image) -> str | None:
        """The blur preview of this image's family, made once from the smallest at hand.

        ``img``: the image this spec just encoded, among those at hand. Specs
        encoded at once wait until every image is made, so that the smallest is.
        """
        family = self._node.family
        if self._group.batch is not None:
            self._group.batch.wait_until_made()
        with self._group.lock:
            if not family.previewed:
                at_hand = [node.image for node in family.nodes if node.image is not None]
                smallest = min([img, *at_hand], key=lambda each: each.width * each.height)
                family.preview = blur_preview(smallest)
                family.previewed = True
            return family.preview

    def encoded(self, spec: ImageSpec) -> io.BytesIO | None:
        """The output of ``spec`` if it was encoded with the others; None: encode it now.

        The first spec of the decode to ask encodes every output (see
        :mod:`~flask_imagekit.specs.encoding_pool`). Raises what encoding
        ``spec``'s output raised.
        """
        batch = self._group.batch
        if batch is None:
            return None
        batch.run_once()
        found, self._encoded = self._encoded, None
        if found is None:
            return None
        output, error = found
        if error is not None:
            raise error
        return output

    def keep_encoded(self, output: io.BytesIO | None, error: BaseException | None) -> None:
        """Keep the output of the spec (or the error), encoded ahead, until it is taken."""
        if not self._discarded:
            self._encoded = (output, error)

    def scales_nothing(self) -> bool:
        """Whether the image is a downscale that left the spec's output as it was.

        A candidate as wide as its spec's output or wider: ``picture()`` and the
        CLI let those go, so they are not encoded ahead.
        """
        node = self._node
        img = node.image
        return not node.is_stem and img is not None and img.size == node.family.base_size

    @property
    def released(self) -> bool:
        """Whether the spec is done with its image."""
        return self._released

    def release(self) -> None:
        """The spec is done with its image: drop what no other spec needs (once)."""
        with self._group.lock:
            if not self._released:
                self._released = True
                self._node.release()

    def discard(self) -> None:
        """The spec will not generate: drop its image and any output encoded ahead."""
        self._discarded = True
        self._encoded = None
        self.release()

    def alive(self) -> int:
        """How many images of the decode are still kept."""
        with self._group.lock:
            return sum(
                node.image is not None or node.start is not None for node in self._group.nodes
            )


def share_decode(
    img: Image.Image,
    specs: t.Sequence[ImageSpec],
    limits: Limits,
    name: str | None,
    encode: Encode | None = None,
) -> list[Share]:
    """Decode ``img`` (opened, not loaded) once for ``specs`` and return each spec's share.

    With ``encode`` (how a spec encodes its output from its share), the first
    spec to generate encodes the outputs of all (see :meth:`Share.encoded`).
    Raises :class:`~flask_imagekit.exceptions.SourceError` when the source cannot
    be decoded, or when the decode or the steps that follow, with the images kept
    for the other specs, are over the budgets.
    """
    original_format = img.format
    stored_size = img.size
    # auto_orient is per spec; the specs of one source almost always agree.
    by_orientation: dict[bool, list[int]] = {}
    for index, spec in enumerate(specs):
        by_orientation.setdefault(bool(spec.auto_orient), []).append(index)
    if len(by_orientation) > 1:
        load_pixels(img, name)
    group = _Group(name, original_format, img.info.get("icc_profile"), limits)
    shares: list[Share | None] = [None] * len(specs)
    # (memory beyond its image, output kept) of each encode, and the bytes alive meanwhile.
    encodes: list[tuple[int, int]] = []
    most_held = alive = 0
    for number, (auto_orient, indexes) in enumerate(by_orientation.items()):
        members = [specs[index] for index in indexes]
        # With several orientations, the source and each one's decode stay alive.
        held = image_bytes(img.size, img.mode) * (1 + number) if len(by_orientation) > 1 else 0
        decoded = img if len(by_orientation) == 1 else img.copy()
        taking, roots = _plan(members, group)
        nodes = list({id(node): node for root in roots for node in root.family.nodes}.values())
        results = decode_many(
            decoded,
            [root.processors for root in roots],
            auto_orient=auto_orient,
            name=name,
            formats=[root.encodings[0][0] if root.encodings else None for root in roots],
            options=[root.encodings[0][1] if root.encodings else None for root in roots],
            max_bytes=limits.max_bytes,
            max_output_pixels=limits.max_output_pixels,
            held=held,
        )
        orientation = exif_orientation(decoded) if auto_orient else 1
        for root, (start, remaining) in zip(roots, results, strict=True):
            root.start, root.processors = start, list(remaining)
            root.family.source_size = upright_size(stored_size, orientation)
            if root.family.base_size is None and not root.is_stem:
                # A candidate of a spec without processors: the spec's output is the source.
                root.family.base_size = root.family.source_size
        if len(nodes) > 1 or any(node.users > 1 for node in nodes):
            kept, starts = check_shared(decoded, stored_size, roots, nodes, limits, name, encodes)
            group.held = max(group.held, held + kept)
            most_held, alive = max(most_held, held), alive + starts + kept
        group.nodes.extend(nodes)
        for node, spec_index in zip(taking, indexes, strict=True):
            shares[spec_index] = Share(node, group)
    found = [share for share in shares if share is not None]
    if encode is not None and encodes:
        cap = fitting_threads(most_held + alive, encodes, limits.max_bytes)
        group.batch = Batch(list(zip(found, specs, strict=True)), encode, cap)
    return found


def _plan(specs: t.Sequence[ImageSpec], group: _Group) -> tuple[list[_Node], list[_Node]]:
    """The node each spec takes its image from (in order), and the roots to decode for."""
    stems: dict[t.Any, tuple[list[t.Any], list[int], dict[t.Any, list[int]]]] = {}
    tails: list[tuple[t.Any, ...]] = []
    for index, spec in enumerate(specs):
        stem, tail = spec.processing()
        tails.append(tuple(tail))
        key = _key(stem, index, len(specs))
        entry = stems.setdefault(key, (stem, [], {}))
        if tail:
            entry[2].setdefault(_key(tail, index, len(specs)), []).append(index)
        else:
            entry[1].append(index)
    nodes: list[_Node | None] = [None] * len(specs)
    roots: list[_Node] = []

    def use(node: _Node, indexes: list[int]) -> None:
        for index in indexes:
            nodes[index] = node
            node.users += 1
            node.encodings.append((_format(specs[index], group), specs[index].options))

    for stem, direct, by_tail in stems.values():
        family = _Family()
        if not stem and not direct:
            # Nothing but downscales of the source: each is its own root, so the
            # decode is reduced as far as the widest allows.
            for indexes in by_tail.values():
                root = _Node(family, tails[indexes[0]])
                use(root, indexes)
                roots.append(root)
            continue
        root = _Node(family, stem, is_stem=True)
        roots.append(root)
        use(root, direct)
        for indexes in by_tail.values():
            use(_Node(family, tails[indexes[0]], root), indexes)
    return [node for node in nodes if node is not None], roots


def _key(processors: t.Sequence[t.Any], index: int, count: int) -> t.Any:
    if count == 1:
        return 0
    try:
        return canonical(list(processors))
    except ImproperlyConfigured:
        return ("unshared", index)


def _format(spec: ImageSpec, group: _Group) -> str | None:
    try:
        return spec.output_format(group.original_format)
    except ImageKitError:
        return None  # the spec reports its format when it generates


def _run(
    img: Image.Image, processors: t.Sequence[t.Any], spec: ImageSpec, group: _Group
) -> Image.Image:
    """Run ``processors`` on ``img`` for ``spec``; a failure names the processor and spec."""
    start = img
    for index, processor in enumerate(processors):
        guessed = processor_cost(processor, img.size, img.mode).guessed
        try:
            img = processor.process(img)
        except ImageKitError:
            raise
        except Exception as exc:
            msg = (
                f"The processor {processor!r} of {type(spec).__name__} failed on "
                f"{group.name!r}: {exc}. Fix the processor or the spec's parameters."
            )
            raise GenerationError(msg) from exc
        if not isinstance(img, Image.Image):
            msg = (
                f"The processor {processor!r} of {type(spec).__name__} returned {img!r} "
                "instead of an image; process() must return the processed image."
            )
            raise GenerationError(msg)
        if guessed:
            # Its result could not be foreseen: check what follows now that it is known.
            check_pipeline(
                img,
                processors[index + 1 :],
                _format(spec, group),
                max_bytes=group.limits.max_bytes,
                max_output_pixels=group.limits.max_output_pixels,
                held=group.held + (0 if img is start else image_bytes(start.size, start.mode)),
                icc=bool(group.icc_profile),
                options=spec.options,
                name=group.name,
            )
    return img
