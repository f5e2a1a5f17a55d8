"""Tests for flask_imagekit.imaging (open_image, decode, prepare_image, save_image)
and the format helpers of flask_imagekit.utils.

Every image is built in memory or read from the read-only corpus as bytes, so no
file handle is left open (pytest turns ResourceWarnings into errors).
"""

from __future__ import annotations

import functools
import io
import random
import struct
import typing as t
import zipfile

import pilkit.processors as pilkit_processors
import pilkit.utils as pilkit_utils
import pytest
from PIL import (
    Image,
    ImageChops,
    ImageCms,
    ImageFile,
    ImageStat,
    JpegImagePlugin,
    PngImagePlugin,
    features,
)

from flask_imagekit import utils
from flask_imagekit.exceptions import ImageKitError, SourceError, UnknownExtension, UnknownFormat
from flask_imagekit.imaging import (
    DEFAULT_ALLOWED_FORMATS,
    DRAFT_MARGIN,
    decode,
    decode_many,
    exif_orientation,
    open_image,
    prepare_image,
    save_image,
)
from flask_imagekit.processors import (
    Adjust,
    Crop,
    GaussianBlur,
    ProcessorPipeline,
    Resize,
    ResizeCanvas,
    ResizeToCover,
    ResizeToFill,
    ResizeToFit,
    SmartResize,
    Thumbnail,
    plan_processors,
)

from .conftest import CORPUS, encode, photo, psnr

HAS_AVIF = features.check("avif")
needs_avif = pytest.mark.skipif(not HAS_AVIF, reason="this Pillow build has no AVIF codec")

T = Image.Transpose
#: The transpose that turns an upright picture into what is stored with orientation N
#: (the inverse of what a viewer applies to display it).
STORED_FROM_UPRIGHT: dict[int, Image.Transpose | None] = {
    1: None,
    2: T.FLIP_LEFT_RIGHT,
    3: T.ROTATE_180,
    4: T.FLIP_TOP_BOTTOM,
    5: T.TRANSPOSE,
    6: T.ROTATE_90,
    7: T.TRANSVERSE,
    8: T.ROTATE_270,
}
ALL_TRANSFORMS: list[Image.Transpose | None] = [None, *T]

#: Upright test picture: asymmetric (black box top left, yellow disc, gradients).
UPRIGHT = photo((800, 480))


# Helpers ---------------------------------------------------------------------------


def corpus(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def opened(data: bytes, **kwargs: t.Any) -> Image.Image:
    return open_image(io.BytesIO(data), **kwargs)


def run(
    data: bytes, processors: t.Sequence[t.Any] = (), **kwargs: t.Any
) -> tuple[Image.Image, t.Sequence[t.Any]]:
    """open_image + decode + the remaining processors: the pipeline of a spec."""
    img, remaining = decode(opened(data, name=kwargs.get("name")), processors, **kwargs)
    for processor in remaining:
        img = processor.process(img)
    return img, remaining


def reference(img: Image.Image, processors: t.Sequence[t.Any]) -> Image.Image:
    for processor in processors:
        img = processor.process(img)
    return img


def transposed(img: Image.Image, method: Image.Transpose | None) -> Image.Image:
    return img if method is None else img.transpose(method)


def best_transform(img: Image.Image, upright: Image.Image) -> Image.Transpose | None:
    """The transpose of ``upright`` that ``img`` looks most like."""
    scores = []
    for method in ALL_TRANSFORMS:
        candidate = transposed(upright, method)
        if candidate.size == img.size:
            scores.append((psnr(img, candidate), method is None, method))
    return max(scores, key=lambda s: (s[0], s[1]))[2]


def save(
    img: Image.Image, fmt: str, options: dict[str, t.Any] | None = None, **kw: t.Any
) -> bytes:
    out = io.BytesIO()
    result = save_image(img, out, fmt, options, **kw)
    assert result is out
    assert out.tell() == 0, "save_image returns the file rewound"
    return out.getvalue()


def reopen(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def alpha(img: Image.Image) -> Image.Image:
    return img.convert("RGBA").getchannel("A")


def mean_rgb(img: Image.Image) -> list[float]:
    return list(ImageStat.Stat(img.convert("RGB")).mean)


@functools.lru_cache(maxsize=16)
def oriented_jpeg(orientation: int) -> bytes:
    """A JPEG that displays as ``UPRIGHT`` thanks to its EXIF orientation tag: the
    stored pixels are the inverse transform of the upright picture."""
    stored = transposed(UPRIGHT, STORED_FROM_UPRIGHT[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes())


@pytest.fixture
def draft_spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[t.Any, ...]]:
    """Record every JPEG ``draft()`` call: (image, requested size, Pillow's answer)."""
    calls: list[tuple[t.Any, ...]] = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self: t.Any, mode: t.Any, size: t.Any) -> t.Any:
        result = original(self, mode, size)
        calls.append((self, size, result))
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    return calls


@pytest.fixture
def load_spy(monkeypatch: pytest.MonkeyPatch) -> list[Image.Image]:
    """Record every pixel load of a file image."""
    calls: list[Image.Image] = []
    original = ImageFile.ImageFile.load

    def spy(self: t.Any) -> t.Any:
        calls.append(self)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return calls


# open_image: the allow-list --------------------------------------------------------


def test_default_allow_list() -> None:
    for fmt in ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"):
        assert fmt in DEFAULT_ALLOWED_FORMATS
    assert ("AVIF" in DEFAULT_ALLOWED_FORMATS) == HAS_AVIF
    for fmt in ("EPS", "PSD", "ICO", "PDF", "SVG", "MPO"):
        assert fmt not in DEFAULT_ALLOWED_FORMATS


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"])
def test_allowed_formats_open_lazily(fmt: str, load_spy: list[Image.Image]) -> None:
    data = encode(photo((40, 30)), fmt)
    img = opened(data)
    assert (img.format, img.size) == (fmt, (40, 30))
    assert load_spy == [], "open_image must read the header only"


def test_png_refused_when_formats_are_jpeg_only() -> None:
    data = encode(photo((20, 10)), "PNG")
    with pytest.raises(SourceError) as info:
        opened(data, formats=["JPEG"], name="photos/x.png")
    message = str(info.value)
    assert "photos/x.png" in message
    assert "JPEG" in message
    assert "IMAGEKIT_ALLOWED_SOURCE_FORMATS" in message


def test_formats_are_case_insensitive() -> None:
    data = encode(photo((20, 10)), "PNG")
    assert opened(data, formats=["png"]).format == "PNG"
    with pytest.raises(SourceError):
        opened(encode(photo((20, 10)), "JPEG"), formats=["png", "gif"])


def _svg_with_external_entity(tmp_path: t.Any) -> bytes:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    svg = (
        '<?xml version="1.0" standalone="no"?>\n'
        f'<!DOCTYPE svg [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
        '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        "<text>&xxe;</text></svg>\n"
    )
    path = tmp_path / "evil.svg"
    path.write_text(svg)
    return path.read_bytes()


REFUSED_KINDS: list[tuple[str, t.Callable[[t.Any], bytes], str]] = [
    ("eps", lambda tmp: corpus("zero_bb.eps"), "EPS"),
    ("psd", lambda tmp: corpus("hopper.psd"), "PSD"),
    ("svg-xxe", _svg_with_external_entity, "SVG"),
    (
        "svg-plain",
        lambda tmp: b'  \n<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>',
        "SVG",
    ),
    (
        "pdf",
        lambda tmp: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer<<>>\n",
        "PDF",
    ),
    ("ico", lambda tmp: corpus("hopper.ico"), "ICO"),
    ("ico-bomb", lambda tmp: corpus("decompression_bomb.ico"), "ICO"),
    (
        "postscript",
        lambda tmp: b"%!PS-Adobe-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",
        "PostScript",
    ),
]


@pytest.mark.parametrize(
    ("make", "kind"), [(m, k) for _, m, k in REFUSED_KINDS], ids=[i for i, _, _ in REFUSED_KINDS]
)
def test_refused_kinds_name_the_kind_and_what_to_do(
    make: t.Callable[[t.Any], bytes], kind: str, tmp_path: t.Any, load_spy: list[Image.Image]
) -> None:
    data = make(tmp_path)
    with pytest.raises(SourceError) as info:
        opened(data, name="uploads/file.bin")
    message = str(info.value)
    assert kind in message
    assert "uploads/file.bin" in message
    assert "Convert" in message
    assert "IMAGEKIT_ALLOWED_SOURCE_FORMATS" in message
    assert "TOP-SECRET-VALUE" not in message
    assert isinstance(info.value, ImageKitError)
    assert load_spy == []


@pytest.mark.parametrize(("name", "fmt"), [("hopper.psd", "PSD"), ("hopper.ico", "ICO")])
def test_refused_formats_open_when_explicitly_allowed(name: str, fmt: str) -> None:
    # The refusal comes from the allow-list, not from a decoder that cannot read them.
    img = opened(corpus(name), formats=[fmt])
    assert img.format == fmt
    assert img.size[0] > 0


# open_image: the pixel cap ---------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _huge_png(size: tuple[int, int], mode: str) -> bytes:
    # A bilevel/palette image compresses to a few KB, so this stays cheap.
    return encode(Image.new(mode, size), "PNG")


@pytest.mark.parametrize(
    ("size", "mode"),
    [((8000, 8000), "1"), ((10000, 10000), "1"), ((12000, 3000), "P")],
    ids=["8000x8000", "10000x10000", "12000x3000-P"],
)
def test_pixel_cap_refuses_from_the_header(
    size: tuple[int, int], mode: str, load_spy: list[Image.Image]
) -> None:
    data = _huge_png(size, mode)
    assert len(data) < 200_000
    with pytest.raises(SourceError) as info:
        opened(data, max_pixels=1_000_000, name="huge.png")
    assert load_spy == [], "the pixels must never be decoded"
    assert "huge.png" in str(info.value)


def test_pixel_cap_message_names_size_and_setting(load_spy: list[Image.Image]) -> None:
    data = _huge_png((8000, 8000), "1")
    with pytest.raises(SourceError) as info:
        opened(data, max_pixels=1_000_000)
    message = str(info.value)
    assert "8000x8000" in message
    assert "1,000,000" in message
    assert "IMAGEKIT_MAX_SOURCE_PIXELS" in message
    assert load_spy == []


def test_pixel_cap_boundary() -> None:
    data = encode(photo((100, 50)), "PNG")
    assert opened(data, max_pixels=5000).size == (100, 50)
    with pytest.raises(SourceError):
        opened(data, max_pixels=4999)
    assert opened(data, max_pixels=None).size == (100, 50)


def test_pixel_cap_applies_to_jpeg_headers_too(load_spy: list[Image.Image]) -> None:
    data = encode(photo((400, 300)), "JPEG")
    with pytest.raises(SourceError):
        opened(data, max_pixels=400 * 300 - 1)
    assert load_spy == []


# open_image / decode: broken input -------------------------------------------------


def test_empty_file() -> None:
    with pytest.raises(SourceError, match="empty") as info:
        opened(b"", name="photos/empty.jpg")
    assert "photos/empty.jpg" in str(info.value)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_bytes(seed: int) -> None:
    data = random.Random(seed).randbytes(4096)
    with pytest.raises(SourceError) as info:
        opened(data)
    assert "allowed format" in str(info.value)


def test_text_is_not_an_image() -> None:
    with pytest.raises(SourceError):
        opened(b"hello, world\n" * 10)


def _cut(data: bytes, fraction: float) -> bytes:
    return data[: int(len(data) * fraction)]


TRUNCATED: list[tuple[str, t.Callable[[], bytes]]] = [
    ("corpus-truncated_jpeg.jpg", lambda: corpus("truncated_jpeg.jpg")),
    ("corpus-truncated_image.png", lambda: corpus("truncated_image.png")),
    ("jpeg-half", lambda: _cut(encode(photo((300, 200)), "JPEG", quality=90), 0.5)),
    ("jpeg-90pct", lambda: _cut(encode(photo((300, 200)), "JPEG", quality=90), 0.9)),
    ("png-half", lambda: _cut(encode(photo((300, 200)), "PNG"), 0.5)),
    ("png-noise-half", lambda: _cut(encode(Image.effect_noise((200, 200), 60), "PNG"), 0.5)),
]


@pytest.mark.parametrize("make", [m for _, m in TRUNCATED], ids=[i for i, _ in TRUNCATED])
@pytest.mark.parametrize("with_processors", [False, True], ids=["plain", "resize"])
def test_truncated_sources_fail_at_decode(
    make: t.Callable[[], bytes], with_processors: bool
) -> None:
    img = opened(make(), name="cut.img")  # the header is intact
    processors = [ResizeToFill(50, 40)] if with_processors else []
    with pytest.raises(SourceError) as info:
        decode(img, processors, name="cut.img")
    message = str(info.value)
    assert "cut.img" in message
    assert "truncated" in message or "corrupt" in message


@pytest.mark.parametrize("name", ["broken_data_stream.png", "truncated_end_chunk.png"])
def test_png_decode_errors_are_not_swallowed(name: str) -> None:
    # Pillow itself refuses to load these (OSError); the library must say SourceError.
    with Image.open(io.BytesIO(corpus(name))) as img, pytest.raises(OSError, match="."):
        img.load()
    with pytest.raises(SourceError):
        decode(opened(corpus(name)))


def test_zero_width_gif() -> None:
    with pytest.raises(SourceError):
        decode(opened(corpus("zero_width.gif")))


def test_decompression_bomb_gif() -> None:
    with pytest.raises(SourceError) as info:
        opened(corpus("decompression_bomb.gif"), max_pixels=None)
    assert "pixels" in str(info.value)


def test_decompression_bomb_gif_with_cap() -> None:
    with pytest.raises(SourceError):
        opened(corpus("decompression_bomb.gif"), max_pixels=50_000_000)


def test_decompression_bomb_extents_gif_uses_the_small_first_frame_only() -> None:
    # The bomb is in frame 2; the first frame is a valid 100x100 image.
    try:
        img, _ = run(corpus("decompression_bomb_extents.gif"))
    except SourceError:
        return
    assert img.size == (100, 100)


@pytest.mark.parametrize(
    "name", sorted(p.name for p in CORPUS.iterdir() if not p.name.startswith("LICENSE"))
)
def test_corpus_gives_an_image_or_a_source_error(name: str) -> None:
    data = corpus(name)
    try:
        img, _ = run(data, [ResizeToFit(32, 32)], name=name)
    except SourceError as exc:
        message = str(exc)
    else:
        assert 1 <= img.width <= 32
        assert 1 <= img.height <= 32
        return
    assert name in message


def test_non_seekable_stream() -> None:
    data = encode(photo((60, 40)), "JPEG")

    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self._buf = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def readinto(self, b: t.Any) -> int:
            chunk = self._buf.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

    img, _ = decode(open_image(t.cast(t.IO[bytes], Pipe())))
    assert img.size == (60, 40)


def test_unreadable_file_object() -> None:
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return True

        def tell(self) -> int:
            msg = "device gone"
            raise OSError(msg)

    with pytest.raises(SourceError, match="device gone"):
        open_image(t.cast(t.IO[bytes], Broken()))


# decode: the fast path --------------------------------------------------------------


@pytest.fixture(scope="module")
def big_jpeg() -> bytes:
    return encode(photo((3000, 2000)), "JPEG", quality=95)


@pytest.fixture(scope="module")
def big_full(big_jpeg: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(big_jpeg))
    img.load()
    return img


FAST_CASES: list[tuple[str, list[t.Any]]] = [
    ("fill-c", [ResizeToFill(300, 200)]),
    ("fill-square-tl", [ResizeToFill(300, 300, anchor="tl")]),
    ("fill-portrait-br", [ResizeToFill(120, 300, anchor="br")]),
    ("fill-t", [ResizeToFill(300, 100, anchor="t")]),
    ("fill-r", [ResizeToFill(100, 200, anchor="r")]),
    ("fill-tuple", [ResizeToFill(200, 100, anchor=(0.2, 0.8))]),
    ("fit", [ResizeToFit(300, 300)]),
    ("fit-width", [ResizeToFit(width=250)]),
    ("fit-height", [ResizeToFit(height=150)]),
    ("fit-mat", [ResizeToFit(300, 300, mat_color=(255, 0, 0))]),
    ("fit-mat-tl", [ResizeToFit(300, 300, mat_color="#00ff00", anchor="tl")]),
    ("cover", [ResizeToCover(300, 300)]),
    ("resize", [Resize(300, 200)]),
    ("thumbnail-auto", [Thumbnail(200, 200)]),
    ("thumbnail-anchor", [Thumbnail(200, 100, anchor="t")]),
    ("thumbnail-crop", [Thumbnail(150, 150, crop=True)]),
    ("thumbnail-fit", [Thumbnail(width=200)]),
    ("smart-resize", [SmartResize(300, 300)]),
    ("fill+adjust", [ResizeToFill(300, 200), Adjust(contrast=1.2, color=0.8)]),
    ("fill+blur", [ResizeToFill(300, 200), GaussianBlur(1.5)]),
    (
        "pipeline-fit-canvas",
        [ProcessorPipeline([ResizeToFit(400, 400), ResizeCanvas(500, 500, color=(0, 0, 0))])],
    ),
    ("fit-then-fill", [ResizeToFit(600, 600), ResizeToFill(200, 200)]),
]


@pytest.mark.parametrize("processors", [p for _, p in FAST_CASES], ids=[i for i, _ in FAST_CASES])
def test_fast_path_matches_full_decode(
    processors: list[t.Any],
    big_jpeg: bytes,
    big_full: Image.Image,
    draft_spy: list[tuple[t.Any, ...]],
) -> None:
    img, remaining = run(big_jpeg, processors)
    expected = reference(big_full, processors)
    assert img.size == expected.size
    assert img.mode == expected.mode
    assert psnr(img, expected) >= 45
    # The reduced decode happened: one draft(), accepted by Pillow, at scale >= 2,
    # still at least DRAFT_MARGIN source pixels per output pixel.
    assert len(draft_spy) == 1
    drafted, _, answer = draft_spy[0]
    assert answer is not None
    assert drafted.size[0] <= 3000 // 2
    assert drafted.size[1] <= 2000 // 2
    # ... and the resized region kept >= DRAFT_MARGIN decoded pixels per output pixel.
    plan = plan_processors(processors, (3000, 2000))
    assert plan is not None
    left, top, right, bottom = plan.box
    kept_w = (right - left) * drafted.size[0] / 3000
    kept_h = (bottom - top) * drafted.size[1] / 2000
    assert kept_w >= DRAFT_MARGIN * plan.size[0] - 1
    assert kept_h >= DRAFT_MARGIN * plan.size[1] - 1
    # The first processor was done inside decode: it is not among the remaining ones.
    assert processors[0] not in remaining
    assert len(remaining) >= len(processors) - 1


PILKIT_CASES: list[tuple[str, tuple[t.Any, ...], dict[str, t.Any]]] = [
    ("ResizeToFill", (300, 200), {}),
    ("ResizeToFill", (300, 300), {"anchor": "tl"}),
    ("ResizeToFill", (120, 300), {"anchor": "br"}),
    ("ResizeToFit", (300, 300), {}),
    ("ResizeToFit", (300, 300), {"mat_color": (255, 0, 0)}),
    ("ResizeToCover", (300, 300), {}),
    ("Resize", (300, 200), {}),
    ("Thumbnail", (200, 100), {"anchor": "t"}),
    ("Thumbnail", (200, None), {}),
]


@pytest.mark.parametrize(
    ("name", "args", "kwargs"),
    PILKIT_CASES,
    ids=[f"{n}-{a}-{k}" for n, a, k in PILKIT_CASES],
)
def test_fast_path_matches_pilkit(
    name: str,
    args: tuple[t.Any, ...],
    kwargs: dict[str, t.Any],
    big_jpeg: bytes,
    big_full: Image.Image,
) -> None:
    import flask_imagekit.processors as ours

    img, _ = run(big_jpeg, [getattr(ours, name)(*args, **kwargs)])
    expected = getattr(pilkit_processors, name)(*args, **kwargs).process(big_full)
    assert img.size == expected.size
    assert img.mode == expected.mode
    assert psnr(img, expected) >= 45


def test_fast_path_returns_processors_that_finish_the_plan(big_jpeg: bytes) -> None:
    img, remaining = decode(opened(big_jpeg), [ResizeToFill(300, 200), Adjust(contrast=1.1)])
    # The resize is done; what remains must not resize again.
    assert img.size == (300, 200)
    assert [type(p).__name__ for p in remaining] == ["Convert", "Adjust"]


def test_no_draft_when_the_output_is_close_to_the_source(
    big_jpeg: bytes, big_full: Image.Image, draft_spy: list[tuple[t.Any, ...]]
) -> None:
    processors = [ResizeToFill(1500, 1000)]
    img, _ = run(big_jpeg, processors)
    assert draft_spy == []
    assert psnr(img, reference(big_full, processors)) >= 60


def test_no_fast_path_without_processors(big_jpeg: bytes, draft_spy: list[t.Any]) -> None:
    img, remaining = decode(opened(big_jpeg))
    assert img.size == (3000, 2000)
    assert list(remaining) == []
    assert draft_spy == []


def test_no_fast_path_when_first_processor_has_no_plan(
    big_jpeg: bytes, big_full: Image.Image, draft_spy: list[t.Any]
) -> None:
    processors = [Crop(600, 400, anchor="br"), ResizeToFill(100, 100)]
    img, remaining = decode(opened(big_jpeg), processors)
    assert img.size == (3000, 2000)
    assert list(remaining) == processors
    assert draft_spy == []
    img = reference(img, remaining)
    assert psnr(img, reference(big_full, processors)) == float("inf")


def test_no_fast_path_when_not_upscaling_a_small_source(draft_spy: list[t.Any]) -> None:
    data = encode(photo((200, 100)), "JPEG", quality=95)
    processors = [ResizeToFill(400, 300, upscale=False)]
    img, remaining = decode(opened(data), processors)
    assert list(remaining) == processors
    assert draft_spy == []
    assert img.size == (200, 100)


def test_plan_applies_to_png_without_draft(draft_spy: list[t.Any]) -> None:
    source = photo((1200, 800))
    data = encode(source, "PNG")
    processors = [ResizeToFill(150, 150, anchor="tl")]
    img, _ = run(data, processors)
    assert draft_spy == []
    assert psnr(img, reference(source, processors)) >= 60


def test_palette_source_takes_the_slow_path() -> None:
    source = photo((300, 200)).convert("P", palette=Image.Palette.ADAPTIVE)
    data = encode(source, "GIF")
    processors = [ResizeToFill(60, 40)]
    img, remaining = decode(opened(data), processors)
    assert img.size == (300, 200)
    assert list(remaining) == processors


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_fast_path_for_grey_and_cmyk_jpegs(mode: str, draft_spy: list[t.Any]) -> None:
    data = encode(photo((1600, 1200)).convert(mode), "JPEG", quality=95)
    with Image.open(io.BytesIO(data)) as full:
        full.load()
        processors = [ResizeToFill(160, 100, anchor="bl")]
        img, _ = run(data, processors)
        expected = reference(full, processors)
    assert img.size == (160, 100)
    assert draft_spy
    assert draft_spy[0][2] is not None
    assert psnr(img, expected) >= 45


def test_decode_many_shares_one_reduced_decode(
    big_jpeg: bytes, big_full: Image.Image, draft_spy: list[tuple[t.Any, ...]]
) -> None:
    lists = [
        [ResizeToFill(100, 50)],
        [ResizeToFit(400, 400)],
        [Thumbnail(200, 200, anchor="c"), Adjust(contrast=1.1)],
    ]
    decoded = decode_many(opened(big_jpeg), lists)
    assert len(decoded) == len(lists)
    assert len(draft_spy) == 1
    drafted = draft_spy[0][0]
    # The reduction suits the largest output (400 wide), with its margin.
    assert drafted.size[0] < 3000
    assert drafted.size[0] >= DRAFT_MARGIN * 400
    for processors, (img, remaining) in zip(lists, decoded, strict=True):
        img = reference(img, remaining)
        expected = reference(big_full, processors)
        assert img.size == expected.size
        assert psnr(img, expected) >= 45


def test_decode_many_with_a_planless_list_decodes_fully(
    big_jpeg: bytes, big_full: Image.Image, draft_spy: list[tuple[t.Any, ...]]
) -> None:
    lists = [[ResizeToFill(100, 50)], [Crop(200, 200, anchor="br")], []]
    decoded = decode_many(opened(big_jpeg), lists)
    assert draft_spy == []
    for processors, (img, remaining) in zip(lists, decoded, strict=True):
        assert psnr(reference(img, remaining), reference(big_full, processors)) >= 60


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_decode_many_turns_every_output_upright(orientation: int) -> None:
    lists = [[ResizeToFill(100, 60, anchor="tl")], [ResizeToFit(200, 200)], []]
    decoded = decode_many(opened(oriented_jpeg(orientation)), lists)
    for processors, (img, remaining) in zip(lists, decoded, strict=True):
        assert psnr(reference(img, remaining), reference(UPRIGHT, processors)) >= 35


# decode: EXIF orientation -----------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_tag_is_read(orientation: int) -> None:
    assert exif_orientation(opened(oriented_jpeg(orientation))) == orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_decode_turns_upright(orientation: int) -> None:
    img, _ = run(oriented_jpeg(orientation))
    assert img.size == UPRIGHT.size
    assert psnr(img, UPRIGHT) >= 35
    assert best_transform(img, UPRIGHT) is None


ORIENTED_PROCESSORS: list[tuple[str, list[t.Any]]] = [
    ("fill", [ResizeToFill(100, 60)]),
    ("fill-portrait-tl", [ResizeToFill(60, 100, anchor="tl")]),
    ("fill-tuple", [ResizeToFill(100, 40, anchor=(0.1, 0.9))]),
    ("fit", [ResizeToFit(100, 100)]),
    ("thumbnail-br", [Thumbnail(80, 80, anchor="br")]),
    ("fit-mat-r", [ResizeToFit(120, 120, mat_color=(0, 0, 255), anchor="r")]),
]


@pytest.mark.parametrize(
    "processors", [p for _, p in ORIENTED_PROCESSORS], ids=[i for i, _ in ORIENTED_PROCESSORS]
)
@pytest.mark.parametrize("orientation", range(1, 9))
def test_fast_path_turns_upright(
    orientation: int, processors: list[t.Any], draft_spy: list[tuple[t.Any, ...]]
) -> None:
    img, _ = run(oriented_jpeg(orientation), processors)
    expected = reference(UPRIGHT, processors)
    assert img.size == expected.size
    assert psnr(img, expected) >= 40
    assert draft_spy, "the fast path was not taken"
    assert draft_spy[0][2] is not None


class _Negate:
    """A processor without a plan: forces the slow path."""

    def process(self, img: Image.Image) -> Image.Image:
        return ImageChops.invert(img.convert("RGB"))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_slow_path_turns_upright(orientation: int, draft_spy: list[t.Any]) -> None:
    processors = [Crop(300, 200, anchor="tl"), _Negate()]
    img, remaining = run(oriented_jpeg(orientation), processors)
    assert list(remaining) == processors
    assert draft_spy == []
    expected = reference(UPRIGHT, processors)
    assert psnr(img, expected) >= 30
    wrong = reference(transposed(UPRIGHT, T.ROTATE_180), processors)
    assert psnr(img, wrong) < 20


@pytest.mark.parametrize("orientation", range(1, 9))
def test_auto_orient_false_keeps_stored_pixels(orientation: int) -> None:
    stored = transposed(UPRIGHT, STORED_FROM_UPRIGHT[orientation])
    img, _ = run(oriented_jpeg(orientation), auto_orient=False)
    assert img.size == stored.size
    assert psnr(img, stored) >= 35
    processors = [ResizeToFill(100, 60, anchor="tl")]
    img, _ = run(oriented_jpeg(orientation), processors, auto_orient=False)
    assert psnr(img, reference(stored, processors)) >= 40


@pytest.mark.parametrize("value", [0, 9, 255])
def test_invalid_orientation_values_are_ignored(value: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = value
    data = encode(UPRIGHT, "JPEG", quality=95, exif=exif.tobytes())
    img, _ = run(data)
    assert best_transform(img, UPRIGHT) is None


@pytest.mark.parametrize("orientation", [3, 6])
def test_decoded_image_no_longer_asks_to_be_rotated(orientation: int) -> None:
    img, _ = run(oriented_jpeg(orientation))
    assert exif_orientation(img) == 1


@pytest.fixture(scope="module")
def hopper() -> Image.Image:
    img = Image.open(io.BytesIO(corpus("hopper.jpg")))
    img.load()
    return img.convert("RGB")


@pytest.mark.parametrize("ext", ["jpg", "webp"])
@pytest.mark.parametrize("orientation", range(2, 9))
def test_corpus_orientations_display_like_hopper(
    orientation: int, ext: str, hopper: Image.Image
) -> None:
    data = corpus(f"hopper_orientation_{orientation}.{ext}")
    assert exif_orientation(opened(data)) == orientation
    img, _ = run(data)
    assert best_transform(img, hopper) is None
    assert psnr(img, hopper) >= 28
    processors = [ResizeToFill(64, 32, anchor="tl")]
    small, _ = run(data, processors)
    assert psnr(small, reference(hopper, processors)) >= 28
    raw, _ = run(data, auto_orient=False)
    assert best_transform(raw, hopper) is not None or orientation == 1


def test_xmp_orientation_png() -> None:
    data = corpus("xmp_tags_orientation.png")
    assert exif_orientation(opened(data)) == 3
    raw, _ = run(data, auto_orient=False)
    upright, _ = run(data)
    assert upright.size == raw.size
    assert psnr(upright, raw.transpose(T.ROTATE_180)) == float("inf")


# prepare_image / save_image ---------------------------------------------------------


def _rgba_sample() -> Image.Image:
    """64x48: left half fully transparent black, top right opaque blue,
    bottom right half-transparent red."""
    img = Image.new("RGBA", (64, 48), (0, 0, 0, 0))
    img.paste((0, 0, 255, 255), (32, 0, 64, 24))
    img.paste((255, 0, 0, 128), (32, 24, 64, 48))
    return img


def test_rgba_to_jpeg_is_flattened_on_white() -> None:
    out = reopen(save(_rgba_sample(), "JPEG"))
    assert out.mode == "RGB"
    r, g, b = out.getpixel((8, 24))
    assert min(r, g, b) >= 245, "a fully transparent pixel must become white"
    r, g, b = out.getpixel((48, 8))
    assert (b >= 230, r <= 25, g <= 25) == (True, True, True)
    r, g, b = out.getpixel((48, 40))  # red at 50% over white
    assert (r >= 240, 110 <= g <= 145, 110 <= b <= 145) == (True, True, True)


def test_prepare_image_flattens_for_jpeg_without_encoding() -> None:
    img, kwargs = prepare_image(_rgba_sample(), "jpeg")
    assert img.mode == "RGB"
    assert img.getpixel((0, 0)) == (255, 255, 255)
    assert kwargs.get("optimize") is True


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF", pytest.param("AVIF", marks=needs_avif)])
def test_rgba_keeps_alpha(fmt: str) -> None:
    out = reopen(save(_rgba_sample(), fmt))
    assert out.mode == "RGBA"
    a = alpha(out)
    assert a.getpixel((8, 24)) <= 5
    assert a.getpixel((48, 8)) >= 250
    assert 110 <= a.getpixel((48, 40)) <= 145


def test_rgba_to_gif_keeps_binary_transparency() -> None:
    out = reopen(save(_rgba_sample(), "GIF"))
    assert out.mode == "P"
    a = alpha(out)
    assert a.getpixel((8, 24)) == 0
    assert a.getpixel((48, 8)) == 255
    r, g, b, _ = out.convert("RGBA").getpixel((48, 8))
    assert (b >= 230, r <= 25) == (True, True)


@pytest.mark.parametrize("name", ["transparent.gif", "p_trns_single.png", "tRNS_null_1x1.png"])
@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_transparency_is_kept(name: str, fmt: str) -> None:
    source = reopen(corpus(name))
    assert source.mode == "P"
    assert "transparency" in source.info
    out = reopen(save(source, fmt))
    assert out.mode == "P"
    assert ImageChops.difference(alpha(out), alpha(source)).getbbox() is None
    visible = ImageChops.multiply(source.convert("RGB"), alpha(source).convert("RGB"))
    visible_out = ImageChops.multiply(out.convert("RGB"), alpha(out).convert("RGB"))
    assert psnr(visible, visible_out) >= 40


@pytest.mark.parametrize("fmt", ["WEBP", "TIFF", pytest.param("AVIF", marks=needs_avif)])
def test_palette_transparency_becomes_alpha(fmt: str) -> None:
    source = reopen(corpus("transparent.gif"))
    out = reopen(save(source, fmt))
    assert out.mode == "RGBA"
    diff = ImageChops.difference(alpha(out), alpha(source))
    assert max(diff.getextrema()) <= 8  # type: ignore[type-var]


def _palette_with_alpha_table() -> Image.Image:
    """A PNG8 with a tRNS table (per-entry alpha), as image optimisers write them."""
    img = Image.new("P", (8, 8), 0)
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0])
    img.paste(1, (4, 0, 8, 8))
    img.paste(2, (0, 4, 4, 8))
    img.info["transparency"] = b"\x00\xff\x80"
    return reopen(encode(img, "PNG"))


def test_palette_alpha_table_to_png_is_kept() -> None:
    source = _palette_with_alpha_table()
    assert isinstance(source.info["transparency"], bytes)
    out = reopen(save(source, "PNG"))
    assert ImageChops.difference(alpha(out), alpha(source)).getbbox() is None


def test_palette_alpha_table_to_gif() -> None:
    source = _palette_with_alpha_table()
    out = reopen(save(source, "GIF"))
    a = alpha(out)
    assert a.getpixel((0, 0)) == 0  # alpha 0 entry
    assert a.getpixel((6, 2)) == 255  # opaque entry


def _la_sample() -> Image.Image:
    grey = Image.linear_gradient("L").resize((64, 48))
    a = Image.new("L", (64, 48), 255)
    a.paste(0, (0, 0, 32, 48))
    return Image.merge("LA", (grey, a))


@pytest.mark.parametrize("source", ["synthetic", "uncompressed_la.png"])
def test_la_sources(source: str) -> None:
    img = _la_sample() if source == "synthetic" else reopen(corpus("uncompressed_la.png"))
    png = reopen(save(img, "PNG"))
    assert png.mode == "LA"
    assert ImageChops.difference(alpha(png), alpha(img)).getbbox() is None
    webp = reopen(save(img, "WEBP"))
    assert webp.mode == "RGBA"
    assert max(ImageChops.difference(alpha(webp), alpha(img)).getextrema()) <= 8  # type: ignore[type-var]
    jpeg = reopen(save(img, "JPEG"))
    assert jpeg.mode in ("RGB", "L")
    if source == "synthetic":
        assert min(jpeg.convert("RGB").getpixel((8, 24))) >= 245  # transparent -> white


def _i16_gradient(
    low: int = 0, high: int = 65535, size: tuple[int, int] = (256, 16)
) -> Image.Image:
    w, h = size
    row = b"".join(struct.pack("<H", low + (high - low) * x // (w - 1)) for x in range(w))
    return Image.frombytes("I;16", size, row * h)


def _levels(img: Image.Image, y: int = 8) -> list[int]:
    return [int(img.getpixel((x, y))) for x in range(img.width)]  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "BMP", "TIFF", "GIF"])
def test_16bit_grey_scaled_not_clipped(fmt: str) -> None:
    img = _i16_gradient()
    prepared, _ = prepare_image(img, fmt)
    assert prepared.mode in ("L", "RGB", "P")
    out = reopen(save(img, fmt)).convert("L")
    levels = _levels(out)
    assert abs(levels[128] - 128) <= 4, "mid-grey must stay mid-grey"
    assert levels[0] <= 4
    assert levels[-1] >= 251
    # Lossy encoders merge some neighbours, but an 8-bit clip or a bad shift would
    # leave a handful of levels.
    assert len(set(levels)) >= (40 if fmt == "GIF" else 96), "no banding"


def test_16bit_grey_prepared_for_jpeg_is_a_smooth_ramp() -> None:
    prepared, _ = prepare_image(_i16_gradient(), "JPEG")
    assert prepared.mode == "L"
    levels = _levels(prepared)
    assert len(set(levels)) == 256
    assert all(abs(v - x) <= 1 for x, v in enumerate(levels))


def test_16bit_grey_png_stays_16bit() -> None:
    img = _i16_gradient()
    out = reopen(save(img, "PNG"))
    assert out.mode.startswith("I")
    assert _levels(out) == _levels(img)


def test_16bit_big_endian_tiff_to_png_not_clipped() -> None:
    data = encode(_i16_gradient().convert("I").convert("I;16B"), "TIFF")
    source = reopen(data)
    assert source.mode == "I;16B"
    out = reopen(save(source, "PNG"))
    levels = [v // 257 if out.mode.startswith("I") else v for v in _levels(out.convert("I"))]
    assert abs(levels[128] - 128) <= 4


def test_dark_16bit_grey_stays_dark() -> None:
    dark = reopen(save(_i16_gradient(0, 255), "JPEG")).convert("L")
    darkish = reopen(save(_i16_gradient(0, 256), "JPEG")).convert("L")
    assert max(_levels(dark)) <= 4  # 255/65535 of full scale is black
    assert abs(max(_levels(dark)) - max(_levels(darkish))) <= 4


@pytest.mark.parametrize("name", ["mode_16bit.png", "tiff_16bit_RGB.tiff", "16bit.cropped.tif"])
def test_corpus_16bit_sources_to_jpeg(name: str) -> None:
    source = reopen(corpus(name))
    out = reopen(save(source, "JPEG"))
    assert out.size == source.size
    expected = source
    if source.mode.startswith("I"):
        expected = source.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    assert all(abs(a - b) <= 6 for a, b in zip(mean_rgb(out), mean_rgb(expected), strict=True))


@pytest.mark.parametrize("name", ["pil_sample_cmyk.jpg", "tiff_strip_cmyk_jpeg.tif"])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_cmyk_converted_without_inversion(name: str, fmt: str) -> None:
    source = reopen(corpus(name))
    assert source.mode == "CMYK"
    out = reopen(save(source, fmt))
    assert out.mode == "RGB"
    expected = mean_rgb(source.convert("RGB"))
    inverted = mean_rgb(ImageChops.invert(source.convert("RGB")))
    got = mean_rgb(out)
    assert all(abs(a - b) <= 4 for a, b in zip(got, expected, strict=True)), (got, expected)
    assert sum(abs(a - b) for a, b in zip(got, inverted, strict=True)) > 100


def test_cmyk_fast_path_end_to_end() -> None:
    source = photo((1200, 800))
    data = encode(source.convert("CMYK"), "JPEG", quality=95)
    img, _ = run(data, [ResizeToFit(300, 300)])
    out = reopen(save(img, "JPEG"))
    assert out.mode == "RGB"
    assert psnr(out, ResizeToFit(300, 300).process(source)) >= 30


SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.mark.parametrize("name", ["icc_profile.png", "hopper.iccprofile.tif"])
@pytest.mark.parametrize(
    "fmt", ["JPEG", "PNG", "WEBP", "TIFF", pytest.param("AVIF", marks=needs_avif)]
)
def test_icc_profile_is_kept_when_asked(name: str, fmt: str) -> None:
    # By default outputs are converted to sRGB and carry no profile (tests/test_color.py).
    source = reopen(corpus(name))
    icc = source.info["icc_profile"]
    out = reopen(save(source, fmt, keep_icc_profile=True))
    assert out.info.get("icc_profile") == icc


@pytest.mark.parametrize("autoconvert", [True, False])
def test_icc_profile_survives_the_fast_path(autoconvert: bool) -> None:
    data = encode(photo((1600, 1200)), "JPEG", quality=90, icc_profile=SRGB_ICC)
    img, _ = run(data, [ResizeToFit(200, 200)])
    out = reopen(save(img, "JPEG", autoconvert=autoconvert, keep_icc_profile=True))
    assert out.info.get("icc_profile") == SRGB_ICC


def _has_metadata(data: bytes, out: Image.Image) -> list[str]:
    found = []
    if b"Exif\x00\x00" in data:
        found.append("exif segment")
    if b"ns.adobe.com/xap" in data or b"xmpmeta" in data:
        found.append("xmp packet")
    for key in ("exif", "xmp", "XML:com.adobe.xmp", "photoshop", "comment"):
        if key in out.info:
            found.append(f"info[{key!r}]")
    exif = out.getexif()
    if 0x8825 in exif:
        found.append("GPS IFD")
    if 0x0112 in exif:
        found.append("orientation")
    if 0x010F in exif or 0x0110 in exif:
        found.append("camera make/model")
    return found


METADATA_SOURCES = ["exif_gps.jpg", "xmp_tags_orientation.png", "pil_sample_cmyk.jpg"]


@pytest.mark.parametrize("name", METADATA_SOURCES)
@pytest.mark.parametrize(
    "fmt", ["JPEG", "PNG", "WEBP", "TIFF", "GIF", pytest.param("AVIF", marks=needs_avif)]
)
def test_exif_xmp_gps_dropped(name: str, fmt: str) -> None:
    source = reopen(corpus(name))
    assert "exif" in source.info or "xmp" in source.info
    data = save(source, fmt)
    assert _has_metadata(data, reopen(data)) == []


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_exif_dropped_after_decode(fmt: str) -> None:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"
    exif[0x0112] = 6
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (48.0, 51.0, 29.0)
    source = encode(photo((640, 480)), "JPEG", exif=exif.tobytes(), comment=b"hidden-comment")
    img, _ = run(source, [ResizeToFill(80, 60)])
    data = save(img, fmt)
    assert _has_metadata(data, reopen(data)) == []
    assert b"SecretCam" not in data
    assert b"hidden-comment" not in data


def test_options_may_ask_for_exif() -> None:
    exif = Image.Exif()
    exif[0x010F] = "KeptCam"
    data = save(photo((40, 30)), "JPEG", {"exif": exif.tobytes()})
    assert reopen(data).getexif().get(0x010F) == "KeptCam"


@pytest.mark.parametrize(
    ("src_fmt", "save_kwargs"),
    [("JPEG", {"comment": b"secret-comment"}), ("GIF", {"comment": b"secret-comment"})],
)
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP"])
def test_comments_dropped(src_fmt: str, save_kwargs: dict[str, t.Any], fmt: str) -> None:
    source = reopen(encode(photo((40, 30)), src_fmt, **save_kwargs))
    assert source.info.get("comment") == b"secret-comment"
    data = save(source, fmt)
    assert b"secret-comment" not in data
    assert "comment" not in reopen(data).info


def test_png_text_chunks_dropped() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret-text-chunk")
    info.add_text("Author", "Jane Secret")
    source = reopen(encode(photo((40, 30)), "PNG", pnginfo=info))
    assert source.info.get("Comment") == "secret-text-chunk"
    data = save(source, "PNG")
    assert b"secret-text-chunk" not in data
    assert b"Jane Secret" not in data


def test_source_info_is_restored_after_save() -> None:
    source = reopen(corpus("exif_gps.jpg"))
    before = dict(source.info)
    save(source, "JPEG")
    assert source.info == before


def _polyglot() -> bytes:
    payload = io.BytesIO()
    with zipfile.ZipFile(payload, "w") as zf:
        zf.writestr("index.html", "<html><script>alert('polyglot')</script></html>")
    html = b"<html><body><script>alert('appended')</script></body></html>"
    return encode(photo((120, 80)), "JPEG", quality=90) + payload.getvalue() + html


@pytest.mark.parametrize("processors", [[], [ResizeToFit(60, 60)]], ids=["plain", "resized"])
def test_polyglot_payload_is_not_carried_over(processors: list[t.Any]) -> None:
    source = _polyglot()
    assert b"PK\x03\x04" in source
    img, _ = run(source, processors)
    data = save(img, "JPEG")
    assert data.startswith(b"\xff\xd8")
    assert data.endswith(b"\xff\xd9")
    assert b"PK\x03\x04" not in data
    assert b"<script" not in data
    assert b"alert(" not in data
    assert b"<script" not in save(img, "PNG")


def test_autoconvert_false_passes_the_image_as_is() -> None:
    data = save(_rgba_sample(), "PNG", autoconvert=False)
    assert reopen(data).mode == "RGBA"
    with pytest.raises(OSError, match="RGBA"):
        save(_rgba_sample(), "JPEG", autoconvert=False)


def test_options_win_over_encoder_defaults() -> None:
    img = photo((200, 150))
    low = save(img, "JPEG", {"quality": 10})
    high = save(img, "JPEG", {"quality": 95})
    assert len(low) < len(high)
    assert psnr(reopen(high), img) > psnr(reopen(low), img)


MODES = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "HSV", "I", "F"]


def _in_mode(mode: str) -> Image.Image:
    base = photo((48, 32))
    if mode in ("LA", "PA", "RGBA"):
        rgba = base.convert("RGBA")
        rgba.putalpha(Image.linear_gradient("L").resize((48, 32)))
        return rgba.convert(mode)
    if mode in ("I", "F"):
        return base.convert("L").convert(mode)
    return base.convert(mode)


def _on_white(img: Image.Image) -> Image.Image:
    """Lightness of ``img`` as displayed on a white page."""
    rgba = img.convert("L" if img.mode in ("I", "F") else img.mode).convert("RGBA")
    page = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    page.alpha_composite(rgba)
    return page.convert("L")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", pytest.param("AVIF", marks=needs_avif)]
)
def test_every_mode_encodes_in_every_format(mode: str, fmt: str) -> None:
    img = _in_mode(mode)
    out = reopen(save(img, fmt))
    assert out.format == fmt
    assert out.size == img.size
    # The picture survives (not blank, not inverted, alpha respected).
    threshold = 14 if fmt == "GIF" or mode == "1" else 20
    assert psnr(_on_white(out), _on_white(img)) >= threshold


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_lab_tiff_source(fmt: str) -> None:
    rgb = photo((48, 32))
    srgb, lab_profile = ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB")
    lab = ImageCms.profileToProfile(rgb, srgb, lab_profile, outputMode="LAB")
    source = reopen(encode(lab, "TIFF"))
    assert source.mode == "LAB"
    out = reopen(save(source, fmt))
    assert out.mode == "RGB"
    assert psnr(out, rgb) >= 22


# utils: formats and extensions (pilkit's results) -----------------------------------


FORMATS = ["JPEG", "jpeg", "PNG", "png", "GIF", "WEBP", "BMP", "TIFF", "ICO", "PPM", "AVIF"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_format_to_extension_matches_pilkit(fmt: str) -> None:
    assert utils.format_to_extension(fmt) == pilkit_utils.format_to_extension(fmt)


def test_format_to_extension_common_values() -> None:
    assert utils.format_to_extension("JPEG") == ".jpg"
    assert utils.format_to_extension("PNG") == ".png"
    assert utils.format_to_extension("GIF") == ".gif"
    assert utils.format_to_extension("WEBP") == ".webp"


@pytest.mark.parametrize("fmt", ["NOPE", "", None, "JPG"])
def test_unknown_format(fmt: str | None) -> None:
    with pytest.raises(UnknownFormat) as info:
        utils.format_to_extension(fmt)
    assert isinstance(info.value, ImageKitError)
    with pytest.raises(pilkit_utils.UnknownFormat):
        pilkit_utils.format_to_extension(fmt)


EXTENSIONS = [".jpg", ".jpeg", ".JPG", ".JPEG", ".jpe", ".jfif", ".png", ".PNG", ".gif",
              ".webp", ".tif", ".tiff", ".bmp", ".avif"]  # fmt: skip


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_extension_to_format_matches_pilkit(ext: str) -> None:
    assert utils.extension_to_format(ext) == pilkit_utils.extension_to_format(ext)


@pytest.mark.parametrize("ext", [".xyz", "", "jpg", ".jpg.bak", ".svg"])
def test_unknown_extension(ext: str) -> None:
    with pytest.raises(UnknownExtension) as info:
        utils.extension_to_format(ext)
    assert isinstance(info.value, ImageKitError)
    with pytest.raises(pilkit_utils.UnknownExtension):
        pilkit_utils.extension_to_format(ext)


SUGGEST_CASES = [
    ("a.JPG", "JPEG", ".JPG"),
    ("a.jpeg", "JPEG", ".jpeg"),
    ("a.JPEG", "JPEG", ".JPEG"),
    ("a.jpe", "JPEG", ".jpe"),
    ("a.jfif", "JPEG", ".jfif"),
    ("photos/bulldog.jpg", "JPEG", ".jpg"),
    ("a.jpg", "PNG", ".png"),
    ("a.png", "JPEG", ".jpg"),
    ("a.PNG", "png", ".PNG"),
    ("a", "JPEG", ".jpg"),
    ("a.xyz", "PNG", ".png"),
    ("a.tif", "TIFF", ".tif"),
    ("a.tiff", "TIFF", ".tiff"),
    ("a.gif", "GIF", ".gif"),
    ("a.webp", "WEBP", ".webp"),
    ("a.gif", "WEBP", ".webp"),
    ("a.jpg", "NOPE", ".jpg"),
    ("a.png", None, ".png"),
    ("dir.d/a", "PNG", ".png"),
    ("dir.jpg/a", "PNG", ".png"),
]


@pytest.mark.parametrize(("name", "fmt", "expected"), SUGGEST_CASES)
def test_suggest_extension_matches_pilkit(name: str, fmt: str | None, expected: str) -> None:
    assert utils.suggest_extension(name, fmt) == expected
    assert pilkit_utils.suggest_extension(name, fmt) == expected


def test_utils_reexports_image_io() -> None:
    assert utils.open_image is open_image
    assert utils.save_image is save_image
    assert utils.prepare_image is prepare_image
