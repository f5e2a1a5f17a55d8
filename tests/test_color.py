"""Colour management of outputs (DESIGN section 5).

Outputs are converted to sRGB and carry no ICC profile; ``keep_icc_profile = True``
keeps a profile LittleCMS can parse that is at most 64 KiB. A profile that cannot be
parsed is dropped and the pixels are kept as they are. The profiles used here are
either taken from the Pillow corpus or built below, in memory, byte by byte.
"""

from __future__ import annotations

import io
import struct
import typing as t

import pytest
from PIL import Image, ImageChops, ImageCms, ImageStat

from flask_imagekit import ImageSpec
from flask_imagekit.imaging import prepare_image, save_image
from flask_imagekit.processors import (
    Adjust,
    Crop,
    ResizeCanvas,
    ResizeToFill,
    ResizeToFit,
)
from flask_imagekit.specs.hashing import canonical, digest

from .conftest import CORPUS, encode, photo, psnr

SRGB = ImageCms.createProfile("sRGB")
PERCEPTUAL = ImageCms.Intent.PERCEPTUAL

# ICC profiles, built by hand -----------------------------------------------------------

D50 = (0.9642, 1.0, 0.8249)
#: Adobe RGB (1998) primaries, adapted to D50: a gamut wider than sRGB.
WIDE_PRIMARIES = (
    (0.60974, 0.31111, 0.01947),
    (0.20528, 0.62567, 0.06087),
    (0.14919, 0.06322, 0.74457),
)


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + bytes(4) + _s15(x) + _s15(y) + _s15(z)


def _gamma(value: float) -> bytes:
    return b"curv" + bytes(4) + struct.pack(">IH", 1, round(value * 256))


def _desc(text: str) -> bytes:
    ascii = text.encode() + b"\0"
    return b"desc" + bytes(4) + struct.pack(">I", len(ascii)) + ascii + bytes(8 + 3 + 67)


def _profile(
    device: bytes, space: bytes, pcs: bytes, tags: list[tuple[bytes, bytes]], pad: int = 0
) -> bytes:
    """An ICC v2.1 profile; ``pad`` appends a private tag of that many bytes."""
    if pad:
        tags = [*tags, (b"zzzz", b"zzzz" + bytes(4) + bytes(pad))]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        body += bytes(-len(body) % 4)
        table += struct.pack(">4sII", signature, offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = struct.pack(">I4sI4s4s4s", size, b"none", 0x02100000, device, space, pcs)
    header += bytes(12) + b"acsp" + bytes(28) + _s15(D50[0]) + _s15(D50[1]) + _s15(D50[2])
    header += bytes(128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + data


def wide_rgb_profile(pad: int = 0) -> bytes:
    """A matrix/TRC RGB profile with wide primaries and a gamma of 2.2."""
    tags = [(b"desc", _desc("Wide RGB")), (b"wtpt", _xyz(*D50))]
    tags += [
        (tag, _xyz(*xyz))
        for tag, xyz in zip((b"rXYZ", b"gXYZ", b"bXYZ"), WIDE_PRIMARIES, strict=True)
    ]
    tags += [(tag, _gamma(2.2)) for tag in (b"rTRC", b"gTRC", b"bTRC")]
    return _profile(b"mntr", b"RGB ", b"XYZ ", tags, pad)


def grey_profile(gamma: float = 1.8) -> bytes:
    """A grey profile whose tone curve is a plain gamma."""
    tags = [(b"desc", _desc(f"Grey {gamma}")), (b"wtpt", _xyz(*D50)), (b"kTRC", _gamma(gamma))]
    return _profile(b"mntr", b"GRAY", b"XYZ ", tags)


def _srgb_to_lab(rgb: tuple[float, float, float]) -> tuple[float, float, float]:
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    x = 0.4360747 * r + 0.3850649 * g + 0.1430804 * b
    y = 0.2225045 * r + 0.7168786 * g + 0.0606169 * b
    z = 0.0139322 * r + 0.0971045 * g + 0.7141733 * b

    def f(v: float) -> float:
        return v ** (1 / 3) if v > (6 / 29) ** 3 else v / (3 * (6 / 29) ** 2) + 4 / 29

    fx, fy, fz = f(x / D50[0]), f(y / D50[1]), f(z / D50[2])
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def cmyk_profile() -> bytes:
    """A CMYK -> Lab profile (lut16): inks with dot gain, so not Pillow's naive formula."""
    clut = b""
    for c in (0, 1):
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    rgb = tuple((1 - ink) * (1 - k) for ink in (c, m, y))
                    lab = _srgb_to_lab((rgb[0], rgb[1], rgb[2]))
                    clut += struct.pack(
                        ">3H",
                        round(lab[0] / 100 * 0xFF00),
                        round((lab[1] + 128) * 256),
                        round((lab[2] + 128) * 256),
                    )
    dot_gain = b"".join(struct.pack(">H", round(65535 * (i / 255) ** 0.6)) for i in range(256))
    identity = struct.pack(">2H", 0, 0xFFFF)
    matrix = b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    lut = b"mft2" + bytes(4) + struct.pack(">4B", 4, 3, 2, 0) + matrix
    lut += struct.pack(">2H", 256, 2) + dot_gain * 4 + clut + identity * 3
    tags = [(b"desc", _desc("CMYK with dot gain")), (b"wtpt", _xyz(*D50)), (b"A2B0", lut)]
    return _profile(b"prtr", b"CMYK", b"Lab ", tags)


#: ColorMatch RGB (gamma 1.8, wide primaries) embedded in a real photo.
COLORMATCH_PNG = (CORPUS / "xmp_tags_orientation.png").read_bytes()
COLORMATCH_ICC: bytes = Image.open(io.BytesIO(COLORMATCH_PNG)).info["icc_profile"]
JUNK_ICC = b"not an ICC profile " * 20


# Helpers -------------------------------------------------------------------------------


def reopen(data: bytes | io.BytesIO) -> Image.Image:
    raw = data.getvalue() if isinstance(data, io.BytesIO) else data
    img = Image.open(io.BytesIO(raw))
    img.load()
    return img


def to_srgb(img: Image.Image, icc: bytes, mode: str | None = None) -> Image.Image:
    """The reference conversion: LittleCMS, perceptual intent."""
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    out = ImageCms.profileToProfile(img, profile, SRGB, PERCEPTUAL, outputMode=mode)
    assert out is not None
    return out


#: Lossy outputs are compared with a reference: encode them at a high quality.
LOSSY = {"JPEG": {"quality": 95, "subsampling": 0}, "WEBP": {"quality": 95}}


def save(img: Image.Image, fmt: str, **kw: t.Any) -> Image.Image:
    kw.setdefault("options", LOSSY.get(fmt))
    return reopen(save_image(img, io.BytesIO(), fmt, **kw).read())


def max_diff(a: Image.Image, b: Image.Image) -> int:
    extrema = ImageChops.difference(a, b).getextrema()
    if isinstance(extrema[0], tuple):
        return max(t.cast(tuple[int, int], band)[1] for band in extrema)
    return t.cast(int, extrema[1])


def mean_rgb(img: Image.Image) -> list[float]:
    return list(ImageStat.Stat(img.convert("RGB")).mean)


def spec(**attrs: t.Any) -> type[ImageSpec]:
    attrs.setdefault("processors", [ResizeToFit(200, 200)])
    attrs.setdefault("format", "PNG")
    attrs.setdefault("options", LOSSY.get(attrs["format"]))
    return type("ColorSpec", (ImageSpec,), attrs)


def generate(spec_class: type[ImageSpec], data: bytes) -> tuple[Image.Image, int]:
    out = spec_class(source=io.BytesIO(data)).generate().getvalue()
    return reopen(out), len(out)


def wide_photo(size: tuple[int, int] = (800, 600), fmt: str = "JPEG") -> tuple[bytes, Image.Image]:
    """A photo with saturated colours, encoded with the wide-gamut profile."""
    img = photo(size)
    return encode(img, fmt, quality=95, icc_profile=wide_rgb_profile()), img


# Conversion to sRGB --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "JPEG", "TIFF"])
def test_real_profile_is_converted_to_srgb_and_dropped(fmt: str) -> None:
    source = reopen(COLORMATCH_PNG)
    expected = to_srgb(source, COLORMATCH_ICC)
    assert psnr(source, expected) < 30  # the conversion is visible
    out = save(source, fmt, options={"lossless": True} if fmt == "WEBP" else None)
    assert "icc_profile" not in out.info
    if fmt == "JPEG":
        assert psnr(out, expected.convert("RGB")) >= 34
    else:
        assert max_diff(out.convert("RGBA"), expected) <= 1


@pytest.mark.parametrize(
    "processors",
    [
        [ResizeToFill(200, 150)],
        [Crop(700, 500), ResizeToFit(200, 200)],
        [ResizeToFit(200, 200), Adjust(contrast=1.0)],
        [ResizeToFit(200, 200), ResizeCanvas(220, 170, color=(255, 255, 255))],
    ],
    ids=["fast-path", "crop", "adjust", "canvas"],
)
def test_spec_outputs_are_srgb_whatever_the_processors(processors: list[t.Any]) -> None:
    # Processors that build a new image drop img.info, and the profile with it.
    data, original = wide_photo()
    out, _ = generate(spec(processors=processors), data)
    assert "icc_profile" not in out.info
    decoded = reopen(data)
    expected = list(processors)
    reference = to_srgb(decoded, wide_rgb_profile())
    for processor in expected:
        reference = processor.process(reference)
    unconverted = decoded
    for processor in expected:
        unconverted = processor.process(unconverted)
    assert psnr(out, reference) >= 38
    assert psnr(out, unconverted) < psnr(out, reference) - 8


def test_conversion_runs_on_the_small_image(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[tuple[int, int]] = []
    apply = ImageCms.ImageCmsTransform.apply

    def spy(self: ImageCms.ImageCmsTransform, im: Image.Image, *args: t.Any) -> Image.Image:
        sizes.append(im.size)
        return apply(self, im, *args)

    monkeypatch.setattr(ImageCms.ImageCmsTransform, "apply", spy)
    data, _ = wide_photo((3000, 2000))
    out, _ = generate(spec(processors=[ResizeToFit(300, 200)], format="JPEG"), data)
    assert out.size == (300, 200)
    assert sizes
    assert all(w * h <= 300 * 200 for w, h in sizes), sizes


@pytest.mark.parametrize("autoconvert", [True, False])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_save_image_converts_with_and_without_autoconvert(fmt: str, autoconvert: bool) -> None:
    data, _ = wide_photo((200, 150), fmt="PNG")
    source = reopen(data)
    out = save(source, fmt, autoconvert=autoconvert)
    assert "icc_profile" not in out.info
    expected = to_srgb(source, wide_rgb_profile())
    assert psnr(out, expected) >= (34 if fmt == "JPEG" else 50)


def test_prepare_image_returns_no_profile() -> None:
    data, _ = wide_photo((64, 48), fmt="PNG")
    img, save_kwargs = prepare_image(reopen(data), "PNG")
    assert "icc_profile" not in save_kwargs
    assert max_diff(img, to_srgb(reopen(data), wide_rgb_profile())) <= 1


# Grey, palette, CMYK and 16-bit sources --------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_grey_source_with_a_grey_profile(fmt: str) -> None:
    ramp = Image.linear_gradient("L").resize((256, 64))
    source = reopen(encode(ramp, "PNG", icc_profile=grey_profile(1.8)))
    out = save(source, fmt)
    assert "icc_profile" not in out.info
    expected = to_srgb(source, grey_profile(1.8), "RGB").convert("L")
    assert psnr(out.convert("L"), expected) >= 35
    # Gamma 1.8 data shown as sRGB is lighter in the middle.
    assert ImageStat.Stat(expected).mean[0] > ImageStat.Stat(source).mean[0] + 8


def test_grey_alpha_source_keeps_its_alpha() -> None:
    grey = Image.linear_gradient("L").resize((64, 64))
    alpha = grey.transpose(Image.Transpose.ROTATE_90)
    source = reopen(encode(Image.merge("LA", (grey, alpha)), "PNG", icc_profile=grey_profile()))
    out = save(source, "PNG")
    assert out.mode == "LA"
    assert "icc_profile" not in out.info
    assert out.getchannel("A") == alpha
    expected = to_srgb(grey, grey_profile(), "RGB").convert("L")
    assert max_diff(out.getchannel("L"), expected) <= 1


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_16bit_grey_source_is_converted_without_banding(fmt: str) -> None:
    ramp = Image.new("I;16", (1024, 8))
    ramp.putdata([x * 64 for x in range(1024)] * 8)
    source = reopen(encode(ramp, "PNG", icc_profile=grey_profile(1.8)))
    assert source.mode == "I;16"
    out = save(source, fmt)
    assert "icc_profile" not in out.info

    def srgb(v: float) -> float:
        return 12.92 * v if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055

    row = [out.getpixel((x, 0)) for x in range(1024)]
    top = 65535 if fmt == "PNG" else 255
    expected = [top * srgb((x * 64 / 65535) ** 1.8) for x in range(1024)]
    assert max(abs(t.cast(float, a) - b) for a, b in zip(row, expected, strict=True)) <= (
        top / 255 * 2
    )
    if fmt == "PNG":
        assert out.mode == "I;16"
        assert len(set(row)) > 900  # 16-bit steps, not 256 bands


def test_palette_source_keeps_its_palette_and_transparency() -> None:
    rgb = photo((64, 48))
    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    source = reopen(encode(pal, "PNG", icc_profile=wide_rgb_profile(), transparency=0))
    out = save(source, "PNG")
    assert out.mode == "P"
    assert "icc_profile" not in out.info
    assert out.info.get("transparency") == 0
    expected = to_srgb(source.convert("RGB"), wide_rgb_profile())
    assert max_diff(out.convert("RGB"), expected) <= 1


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize(
    "processors",
    [
        pytest.param([ResizeToFit(80, 80)], id="resize"),
        # Crop builds a new image: the source is converted to sRGB before it runs.
        pytest.param([Crop(100, 100), ResizeToFit(80, 80)], id="crop"),
    ],
)
def test_cmyk_source_with_a_profile(fmt: str, processors: list[t.Any]) -> None:
    cmyk = photo((160, 120)).convert("CMYK")
    data = encode(cmyk, "JPEG", quality=95, icc_profile=cmyk_profile())
    out, _ = generate(spec(processors=processors, format=fmt), data)
    assert out.mode in ("RGB", "RGBA")
    assert "icc_profile" not in out.info
    reference = to_srgb(reopen(data), cmyk_profile(), "RGB")
    naive = reopen(data).convert("RGB")
    for processor in processors:
        reference = processor.process(reference)
        naive = processor.process(naive)
    inverted = ImageChops.invert(reference)
    assert psnr(out, reference) >= (32 if fmt == "WEBP" else 33)  # lossy WebP loses a little
    assert psnr(out, naive) < psnr(out, reference) - 6
    assert sum(abs(a - b) for a, b in zip(mean_rgb(out), mean_rgb(inverted), strict=True)) > 100


def _tiff_cmyk16(pixels: list[tuple[int, int, int, int]], width: int, icc: bytes) -> bytes:
    """An uncompressed 16-bit CMYK TIFF (Pillow writes only 8-bit CMYK)."""
    height = len(pixels) // width
    data = b"".join(struct.pack("<4H", *pixel) for pixel in pixels)
    entries = [
        (256, 3, 1, width),
        (257, 3, 1, height),
        (258, 3, 4, 0),  # BitsPerSample: 4 x 16, stored at the offset below
        (259, 3, 1, 1),
        (262, 3, 1, 5),
        (273, 4, 1, 0),  # StripOffsets
        (277, 3, 1, 4),
        (278, 3, 1, height),
        (279, 4, 1, len(data)),
        (284, 3, 1, 1),
        (34675, 7, len(icc), 0),
    ]
    ifd_size = 2 + 12 * len(entries) + 4
    bits_at = 8 + ifd_size
    icc_at = bits_at + 8
    data_at = icc_at + len(icc) + len(icc) % 2
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        if tag == 258:
            value = bits_at
        elif tag == 273:
            value = data_at
        elif tag == 34675:
            value = icc_at
        packed = struct.pack("<HI", value, 0)[:4] if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    ifd += struct.pack("<I", 0)
    body = struct.pack("<4H", 16, 16, 16, 16) + icc + bytes(len(icc) % 2)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + body + data


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_16bit_cmyk_source_with_a_profile(fmt: str) -> None:
    cmyk = photo((64, 48)).convert("CMYK")
    pixels = [
        tuple(v * 257 for v in t.cast(tuple[int, ...], cmyk.getpixel((x, y))))
        for y in range(48)
        for x in range(64)
    ]
    data = _tiff_cmyk16(t.cast(list[tuple[int, int, int, int]], pixels), 64, cmyk_profile())
    source = reopen(data)
    assert source.mode == "CMYK"
    assert source.info.get("icc_profile") == cmyk_profile()
    out, _ = generate(spec(processors=[], format=fmt), data)
    assert out.mode == "RGB"
    assert "icc_profile" not in out.info
    reference = to_srgb(source, cmyk_profile(), "RGB")
    assert psnr(out, reference) >= (33 if fmt == "JPEG" else 50)
    assert psnr(out, source.convert("RGB")) < psnr(out, reference) - 6


def test_transparent_colour_of_an_rgb_png_follows_the_conversion() -> None:
    source = photo((64, 48))
    source.paste((10, 200, 30), (0, 0, 16, 16))
    data = encode(source, "PNG", icc_profile=wide_rgb_profile(), transparency=(10, 200, 30))
    out = save(reopen(data), "PNG")
    assert "icc_profile" not in out.info
    key = to_srgb(Image.new("RGB", (1, 1), (10, 200, 30)), wide_rgb_profile()).getpixel((0, 0))
    assert out.info.get("transparency") == key
    assert out.convert("RGBA").getchannel("A").getextrema() == (0, 255)
    assert out.convert("RGBA").getpixel((8, 8)) == (*t.cast(tuple[int, ...], key), 0)


def test_gif_palette_is_converted() -> None:
    source = reopen(COLORMATCH_PNG)
    out = save(source, "GIF")
    expected = to_srgb(source, COLORMATCH_ICC)
    assert psnr(out, expected) > psnr(out, source) + 3


def test_profile_of_another_colour_space_is_dropped() -> None:
    # A grey profile on RGB pixels says nothing about them: keep the pixels.
    source = photo((64, 48))
    data = encode(source, "PNG", icc_profile=grey_profile())
    out = save(reopen(data), "PNG")
    assert "icc_profile" not in out.info
    assert max_diff(out, source) == 0


# Hostile and unparseable profiles ------------------------------------------------------


HUGE = 16 * 10**6


@pytest.mark.parametrize("keep", [False, True])
@pytest.mark.parametrize("kind", ["junk", "valid-looking"])
def test_huge_profile_gives_a_small_output_without_it(kind: str, keep: bool) -> None:
    icc = bytes(HUGE) if kind == "junk" else wide_rgb_profile(pad=HUGE)
    source = photo((64, 64))
    data = encode(source, "JPEG", quality=95, icc_profile=icc)
    assert len(data) > HUGE
    out, size = generate(
        spec(processors=[ResizeToFill(32, 32)], format="JPEG", keep_icc_profile=keep), data
    )
    assert size < 16 * 2**10
    assert "icc_profile" not in out.info
    decoded = ResizeToFill(32, 32).process(reopen(data))
    if kind == "junk":  # unparseable: the pixels are taken as sRGB
        assert psnr(out, decoded) >= 38
    else:
        assert psnr(out, to_srgb(decoded, wide_rgb_profile())) >= 38


@pytest.mark.parametrize("keep", [False, True])
def test_unparseable_profile_is_dropped_and_pixels_kept(keep: bool) -> None:
    source = photo((64, 48))
    data = encode(source, "PNG", icc_profile=JUNK_ICC)
    assert reopen(data).info["icc_profile"] == JUNK_ICC
    out, _ = generate(spec(processors=[], keep_icc_profile=keep), data)
    assert "icc_profile" not in out.info
    assert max_diff(out, source) == 0


# keep_icc_profile ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("icc", [wide_rgb_profile(), COLORMATCH_ICC], ids=["wide", "colormatch"])
def test_keep_icc_profile_keeps_a_small_parseable_profile(fmt: str, icc: bytes) -> None:
    source = photo((200, 150))
    data = encode(source, "PNG", icc_profile=icc)
    out, _ = generate(spec(processors=[], format=fmt, keep_icc_profile=True), data)
    assert out.info.get("icc_profile") == icc
    # The pixels stay in the profile's colour space.
    assert psnr(out, source) >= (30 if fmt != "PNG" else 99)
    assert psnr(out, source) > psnr(out, to_srgb(source, icc)) + 6


def sized_profile(size: int) -> bytes:
    """The wide-gamut profile, padded to exactly ``size`` bytes (a multiple of 4)."""
    icc = wide_rgb_profile(pad=size - len(wide_rgb_profile()) - 12 - 8)
    assert len(icc) == size
    return icc


@pytest.mark.parametrize(
    ("size", "kept"), [(64 * 2**10, True), (64 * 2**10 + 4, False)], ids=["64KiB", "over"]
)
def test_keep_icc_profile_limit_is_64_kib(size: int, kept: bool) -> None:
    icc = sized_profile(size)
    source = photo((64, 48))
    data = encode(source, "PNG", icc_profile=icc)
    out, _ = generate(spec(processors=[], keep_icc_profile=True), data)
    if kept:
        assert out.info.get("icc_profile") == icc
        assert max_diff(out, source) == 0
    else:
        assert "icc_profile" not in out.info
        assert max_diff(out, to_srgb(source, icc)) <= 1


def test_keep_icc_profile_converts_cmyk_to_srgb() -> None:
    # A CMYK profile cannot describe an RGB output: the pixels are converted.
    data = encode(photo((64, 48)).convert("CMYK"), "JPEG", quality=95, icc_profile=cmyk_profile())
    out, _ = generate(spec(processors=[], format="JPEG", keep_icc_profile=True), data)
    assert out.mode == "RGB"
    assert "icc_profile" not in out.info
    assert psnr(out, to_srgb(reopen(data), cmyk_profile(), "RGB")) >= 33


def test_no_metadata_but_the_kept_profile() -> None:
    source = photo((64, 48))
    exif = Image.Exif()
    exif[0x010F] = "Camera"
    exif[0x0112] = 1
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"></x:xmpmeta>'
    data = encode(
        source, "JPEG", exif=exif, xmp=xmp, comment=b"secret", icc_profile=wide_rgb_profile()
    )
    for keep in (False, True):
        raw = (
            spec(processors=[], format="JPEG", keep_icc_profile=keep)(source=io.BytesIO(data))
            .generate()
            .getvalue()
        )
        out = reopen(raw)
        assert b"Exif\x00\x00" not in raw
        assert b"xmpmeta" not in raw
        assert b"secret" not in raw
        assert "comment" not in out.info
        assert ("icc_profile" in out.info) is keep


# The spec hash ---------------------------------------------------------------------------


def test_keep_icc_profile_false_leaves_cache_names_unchanged() -> None:
    processors = [ResizeToFit(200, 200)]
    plain = spec(processors=processors)(source="a.jpg")
    explicit = spec(processors=processors, keep_icc_profile=False)(source="a.jpg")
    before = digest("a.jpg", canonical([processors, "PNG", {}, True, True]))
    assert plain.get_hash() == explicit.get_hash() == before


def test_keep_icc_profile_true_changes_the_hash() -> None:
    plain = spec()(source="a.jpg")
    keep = spec(keep_icc_profile=True)(source="a.jpg")
    assert keep.get_hash() != plain.get_hash()


def test_keep_icc_profile_instance_override_changes_the_hash() -> None:
    spec_class = spec()
    base = spec_class(source="a.jpg").get_hash()
    override = spec_class(source="a.jpg")
    override.keep_icc_profile = True
    assert override.get_hash() != base
