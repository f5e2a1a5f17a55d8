"""A generated corpus of hostile and corrupt image files.

Every entry of :data:`CASES` is a :class:`Case`: how to build the bytes (with
Pillow, :mod:`zlib` and :mod:`struct` only, in memory, in a few milliseconds each
unless ``heavy``), the source name a user would upload it under, and what the
library must do with it:

* ``"image"``: the pixels are valid, so a correct output is expected;
* ``"error"``: an :class:`~flask_imagekit.exceptions.ImageKitError` is expected
  (refused formats, bombs over the pixel cap, empty or zero-sized images);
* ``"either"``: a correct output or an ``ImageKitError`` are both fine.

``first_rgb`` is the colour of the first frame of a multi-frame source: the
output must show it (a multi-frame source is processed from its first frame).
"""

from __future__ import annotations

import dataclasses
import io
import random
import struct
import typing as t
import zipfile
import zlib

from PIL import Image, ImageCms, features

__all__ = ["CASES", "Case", "by_id"]

Expect = t.Literal["image", "error", "either"]


@dataclasses.dataclass(frozen=True)
class Case:
    """One hostile input: its id, builder, source name and expected outcome."""

    id: str
    build: t.Callable[[], bytes]
    name: str
    expect: Expect = "either"
    first_rgb: tuple[int, int, int] | None = None
    heavy: bool = False
    note: str = ""


# Building blocks ---------------------------------------------------------------------


def picture(size: tuple[int, int] = (160, 120), mode: str = "RGB") -> Image.Image:
    """A small picture with gradients, so that crops and resizes show."""
    w, h = size
    a = Image.linear_gradient("L").resize((w, h))
    b = a.transpose(Image.Transpose.ROTATE_90).resize((w, h))
    img = Image.merge("RGB", (a, b, a.point(lambda v: 255 - v)))
    return img if mode == "RGB" else img.convert(mode)


def save(img: Image.Image, fmt: str, **options: t.Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def jpeg(**options: t.Any) -> bytes:
    return save(picture(), "JPEG", **options)


def png(**options: t.Any) -> bytes:
    return save(picture(), "PNG", **options)


def cut(data: bytes, fraction: float) -> bytes:
    return data[: max(1, int(len(data) * fraction))]


# PNG ---------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    if crc is None:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split a PNG into ``(type, data)`` chunks (CRCs dropped)."""
    chunks, pos = [], len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def png_join(chunks: t.Iterable[tuple[bytes, bytes]]) -> bytes:
    return PNG_SIGNATURE + b"".join(png_chunk(kind, body) for kind, body in chunks)


def ihdr(width: int, height: int, depth: int = 8, colour: int = 2, interlace: int = 0) -> bytes:
    return struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)


def png_raw(
    width: int,
    height: int,
    row: bytes,
    *,
    depth: int = 8,
    colour: int = 2,
    extra: t.Sequence[tuple[bytes, bytes]] = (),
) -> bytes:
    """A PNG of ``height`` identical filtered rows, compressed as a stream (cheap bombs)."""
    z = zlib.compressobj(9)
    parts = [z.compress(b"\x00" + row) for _ in range(height)]
    parts.append(z.flush())
    return png_join(
        [(b"IHDR", ihdr(width, height, depth, colour)), *extra, (b"IDAT", b"".join(parts))]
        + [(b"IEND", b"")]
    )


def png_with(extra: t.Sequence[tuple[bytes, bytes]], before_idat: bool = True) -> bytes:
    chunks = png_chunks(png())
    index = next(i for i, (kind, _) in enumerate(chunks) if kind == b"IDAT")
    if not before_idat:
        index = len(chunks) - 1
    return png_join(chunks[:index] + list(extra) + chunks[index:])


def png_bad_crc(kind: bytes) -> bytes:
    data = png()
    out, pos = bytearray(data[:8]), 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunk = bytearray(data[pos : pos + 12 + length])
        if chunk[4:8] == kind:
            chunk[-1] ^= 0xFF
        out += chunk
        pos += 12 + length
    return bytes(out)


def png_patch_ihdr(**fields: int) -> bytes:
    chunks = png_chunks(png())
    width, height, depth, colour, comp, filt, inter = struct.unpack(">IIBBBBB", chunks[0][1])
    values = {
        "width": width,
        "height": height,
        "depth": depth,
        "colour": colour,
        "compression": comp,
        "filter": filt,
        "interlace": inter,
    }
    values.update(fields)
    chunks[0] = (b"IHDR", struct.pack(">IIBBBBB", *values.values()))
    return png_join(chunks)


def zlib_bomb(size: int) -> bytes:
    z = zlib.compressobj(9)
    block = bytes(1 << 20)
    return b"".join(z.compress(block) for _ in range(size >> 20)) + z.flush()


# JPEG --------------------------------------------------------------------------------


def segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def jpeg_insert(data: bytes, *segments: bytes) -> bytes:
    """Insert marker segments right after SOI."""
    return data[:2] + b"".join(segments) + data[2:]


def jpeg_patch_sof(data: bytes, **fields: int) -> bytes:
    """Rewrite fields of the first SOF segment (precision, height, width, components)."""
    pos = 2
    while pos < len(data):
        marker = data[pos + 1]
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in (0xC0, 0xC1, 0xC2):
            body = bytearray(data[pos + 4 : pos + 2 + length])
            precision, height, width, count = struct.unpack(">BHHB", body[:6])
            precision = fields.get("precision", precision)
            height = fields.get("height", height)
            width = fields.get("width", width)
            count = fields.get("components", count)
            body[:6] = struct.pack(">BHHB", precision, height, width, count)
            return data[: pos + 4] + bytes(body) + data[pos + 2 + length :]
        pos += 2 + length
    msg = "no SOF segment"
    raise ValueError(msg)


def jpeg_scan_bomb(side: int = 7071, scans: int = 800, components: int = 1) -> bytes:
    """A progressive JPEG made of ``scans`` tiny AC scans per component, and nothing else.

    Each scan is a handful of EOB-run symbols (about 60 bytes) that make libjpeg
    visit every block of a ``side`` x ``side`` image, so decoding time grows with
    ``scans`` x pixels while the file stays small. Whatever the scans, libjpeg
    keeps the coefficients of the whole image for a progressive JPEG: 2 bytes per
    pixel and component, even when Pillow asks for a reduced-scale decode.
    """
    blocks = ((side + 7) // 8) ** 2
    bits = ("0" + "1" * 14) * -(-blocks // 32767)  # EOB14 runs of 32767 blocks
    bits += "1" * (-len(bits) % 8)
    data = bytearray()
    for i in range(0, len(bits), 8):
        data.append(int(bits[i : i + 8], 2))
        if data[-1] == 0xFF:
            data.append(0)
    dqt = segment(0xDB, b"\x00" + b"\x01" * 64)
    layout = b"".join(bytes((c, 0x11, 0)) for c in range(1, components + 1))
    sof = segment(0xC2, struct.pack(">BHHB", 8, side, side, components) + layout)
    dht = segment(0xC4, b"\x10" + bytes([1] + [0] * 15) + b"\xe0")
    sos = [segment(0xDA, bytes((1, c, 0, 1, 63, 0))) for c in range(1, components + 1)]
    body = b"".join(scan + bytes(data) for scan in sos)
    return b"\xff\xd8" + dqt + sof + dht + body * scans + b"\xff\xd9"


# EXIF --------------------------------------------------------------------------------

SHORT, LONG, ASCII, RATIONAL = 3, 4, 2, 5


def ifd_entry(tag: int, kind: int, count: int, value: bytes | int) -> bytes:
    if isinstance(value, int):
        value = struct.pack("<H", value) + b"\0\0" if kind == SHORT else struct.pack("<I", value)
    return struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0")[:4]


def tiff_exif(
    entries: t.Sequence[bytes], *, first_ifd: int = 8, next_ifd: int = 0, count: int | None = None
) -> bytes:
    n = len(entries) if count is None else count
    return (
        b"II*\x00"
        + struct.pack("<I", first_ifd)
        + struct.pack("<H", n)
        + b"".join(entries)
        + struct.pack("<I", next_ifd)
    )


def jpeg_exif(tiff: bytes) -> bytes:
    return jpeg_insert(jpeg(), segment(0xE1, b"Exif\x00\x00" + tiff))


def orientation(value: int, kind: int = SHORT, count: int = 1) -> bytes:
    return jpeg_exif(tiff_exif([ifd_entry(0x0112, kind, count, value)]))


# GIF ---------------------------------------------------------------------------------


def gif_split(data: bytes) -> tuple[bytes, list[bytes]]:
    """Split a GIF into its head (header, screen, global palette) and raw blocks."""
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    head, blocks = data[:pos], []
    while pos < len(data) and data[pos] != 0x3B:
        start = pos
        if data[pos] == 0x21:
            pos += 2
        else:
            local = data[pos + 9]
            pos += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0) + 1
        while data[pos]:
            pos += data[pos] + 1
        pos += 1
        blocks.append(data[start:pos])
    return head, blocks


EMPTY_LZW = b"\x02\x01\x2c\x00"  # min code size 2, then CLEAR, EOI


def gif_image(x: int, y: int, w: int, h: int, lzw: bytes = EMPTY_LZW) -> bytes:
    return b"\x2c" + struct.pack("<HHHHB", x, y, w, h, 0) + lzw


def gif_screen(head: bytes, width: int, height: int) -> bytes:
    return head[:6] + struct.pack("<HH", width, height) + head[10:]


def small_gif() -> tuple[bytes, list[bytes]]:
    return gif_split(save(picture((100, 100)).convert("P"), "GIF"))


def gif_frame_extents_bomb() -> bytes:
    head, blocks = small_gif()
    images = [b for b in blocks if b[0] == 0x2C]
    return head + images[0] + gif_image(0, 0, 65535, 65535) + b";"


def gif_first_frame_beyond_screen(side: int) -> bytes:
    head, _ = small_gif()
    return gif_screen(head, 10, 10) + gif_image(0, 0, side, side) + b";"


def gif_many_large_frames(frames: int = 300, side: int = 2000) -> bytes:
    frame = Image.new("P", (side, side), 1)
    frame.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    head, blocks = gif_split(save(frame, "GIF"))
    image = next(b for b in blocks if b[0] == 0x2C)
    control = b"\x21\xf9\x04\x08\x01\x00\x00\x00"  # restore background, delay 1
    return head + (control + image) * frames + b";"


# Other formats -----------------------------------------------------------------------


def psd(width: int = 16, height: int = 12) -> bytes:
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)
    planes = b"".join(bytes([v]) * (width * height) for v in (200, 40, 40))
    return header + struct.pack(">III", 0, 0, 0) + b"\x00\x00" + planes


def bmp_patch(offset: int, fmt: str, value: int, data: bytes | None = None) -> bytes:
    raw = bytearray(data or save(picture((40, 30)), "BMP"))
    struct.pack_into(fmt, raw, offset, value)
    return bytes(raw)


def multi_frame(fmt: str, **options: t.Any) -> bytes:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    frames = [Image.new("RGB", (64, 48), colour) for colour in colours]
    return save(frames[0], fmt, save_all=True, append_images=frames[1:], **options)


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def cmyk_jpeg(icc: bytes | None) -> bytes:
    img = picture().convert("CMYK")
    return save(img, "JPEG", icc_profile=icc) if icc else save(img, "JPEG")


def float_tiff() -> bytes:
    img = Image.new("F", (40, 30), 0.5)
    img.putpixel((0, 0), float("nan"))
    img.putpixel((1, 0), float("inf"))
    img.putpixel((2, 0), float("-inf"))
    img.putpixel((3, 0), 1e30)
    return save(img, "TIFF")


def int32_tiff() -> bytes:
    img = Image.new("I", (40, 30), 70000)
    img.putpixel((0, 0), -(2**31))
    img.putpixel((1, 0), 2**31 - 1)
    return save(img, "TIFF")


def gray16(mode: str = "I;16", fmt: str = "PNG") -> bytes:
    ramp = Image.linear_gradient("L").resize((64, 48)).convert("I").point(lambda v: v * 257)
    return save(ramp.convert(mode) if mode != "I" else ramp, fmt)


def palette_png(transparency: t.Any) -> bytes:
    img = picture().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return save(img, "PNG", transparency=transparency)


def p_out_of_range() -> bytes:
    img = Image.new("P", (40, 30), 200)  # indexes past a two-colour palette
    img.putpalette([255, 0, 0, 0, 255, 0])
    return save(img, "PNG")


def zip_payload() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("evil.html", "<html><script>alert(1)</script></html>")
    return buf.getvalue()


HTML = b"<html><body><script>alert(document.cookie)</script></body></html>"
PHP = b"<?php system($_GET['c']); ?>"
XMP = (
    b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
    b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF>'
    b'</x:xmpmeta><?xpacket end="w"?>'
)


def gps_exif() -> bytes:
    exif = Image.Exif()
    exif[0x010E] = PHP.decode()  # ImageDescription
    exif[0x0112] = 1
    exif.get_ifd(0x8825)[2] = (48.0, 51.0, 24.0)  # GPSLatitude
    return exif.tobytes()


SVG_XXE = (
    b'<?xml version="1.0"?>\n<!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
    b"<text>&xxe;</text></svg>"
)

EPS = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n"
    b"(/etc/passwd) (r) file\nnewpath 0 0 moveto 100 100 lineto stroke\nshowpage\n%%EOF\n"
)


# The cases ---------------------------------------------------------------------------

RED, GREEN = (255, 0, 0), (0, 255, 0)


def _cases() -> list[Case]:
    c = Case
    cases = [
        # Nothing or noise.
        c("empty", lambda: b"", "empty.jpg", "error"),
        c("one-byte", lambda: b"\xff", "x.jpg", "error"),
        c("random-4k", lambda: random.Random(8).randbytes(4096), "noise.jpg", "error"),
        c("random-64k", lambda: random.Random(9).randbytes(65536), "noise.png", "error"),
        c("text", lambda: b"just some text\n" * 20, "notes.jpg", "error"),
        c("html", lambda: HTML, "page.png", "error"),
        c("png-signature-only", lambda: PNG_SIGNATURE, "x.png", "error"),
        c("jpeg-soi-only", lambda: b"\xff\xd8\xff", "x.jpg", "error"),
        c("gif-header-only", lambda: b"GIF89a", "x.gif", "error"),
        c("webp-header-only", lambda: b"RIFF\x1a\x00\x00\x00WEBPVP8 ", "x.webp", "error"),
        c("bmp-header-only", lambda: b"BM" + bytes(12), "x.bmp", "error"),
        c("tiff-header-only", lambda: b"II*\x00\x08\x00\x00\x00", "x.tif", "error"),
        # Truncated files.
        c("jpeg-cut-in-header", lambda: jpeg()[:120], "cut.jpg", "error"),
        c("jpeg-cut-half", lambda: cut(jpeg(quality=95), 0.5), "cut.jpg", "error"),
        c("jpeg-cut-90", lambda: cut(jpeg(quality=95), 0.9), "cut.jpg", "error"),
        c("jpeg-no-eoi", lambda: jpeg()[:-2], "cut.jpg"),
        c("jpeg-progressive-cut", lambda: cut(jpeg(progressive=True), 0.6), "cut.jpg", "error"),
        c("png-cut-in-ihdr", lambda: png()[:20], "cut.png", "error"),
        c("png-cut-half", lambda: cut(png(), 0.5), "cut.png", "error"),
        c("png-no-iend", lambda: png()[:-12], "cut.png"),
        c("webp-lossy-cut", lambda: cut(save(picture(), "WEBP"), 0.5), "cut.webp", "error"),
        c(
            "webp-lossless-cut",
            lambda: cut(save(picture(), "WEBP", lossless=True), 0.6),
            "cut.webp",
            "error",
        ),
        c("gif-cut-half", lambda: cut(save(picture(), "GIF"), 0.5), "cut.gif", "error"),
        c("bmp-cut-half", lambda: cut(save(picture(), "BMP"), 0.5), "cut.bmp", "error"),
        c("tiff-cut-half", lambda: cut(save(picture(), "TIFF"), 0.5), "cut.tif", "error"),
        c("avif-cut-half", lambda: cut(save(picture(), "AVIF"), 0.5), "cut.avif", "error"),
        # Broken PNG chunks.
        c("png-bad-crc-ihdr", lambda: png_bad_crc(b"IHDR"), "crc.png", "error"),
        c("png-bad-crc-idat", lambda: png_bad_crc(b"IDAT"), "crc.png"),
        c("png-ihdr-depth-7", lambda: png_patch_ihdr(depth=7), "ihdr.png", "error"),
        c("png-ihdr-colour-5", lambda: png_patch_ihdr(colour=5), "ihdr.png", "error"),
        c("png-ihdr-interlace-9", lambda: png_patch_ihdr(interlace=9), "ihdr.png"),
        c("png-ihdr-compression-1", lambda: png_patch_ihdr(compression=1), "ihdr.png"),
        c("png-ihdr-width-doubled", lambda: png_patch_ihdr(width=320), "ihdr.png", "error"),
        c("png-no-idat", lambda: png_join([(b"IHDR", ihdr(10, 10)), (b"IEND", b"")]), "x.png"),
        c(
            "png-idat-garbage",
            lambda: png_join(
                [
                    (b"IHDR", ihdr(10, 10)),
                    (b"IDAT", random.Random(3).randbytes(300)),
                    (b"IEND", b""),
                ]
            ),
            "x.png",
            "error",
        ),
        c(
            "png-many-tiny-idat",
            lambda: png_join(
                [(b"IHDR", ihdr(64, 64))]
                + [(b"IDAT", bytes([b])) for b in zlib.compress(bytes(64 * 193))]
                + [(b"IEND", b"")]
            ),
            "x.png",
        ),
        c("png-ztxt-bomb", lambda: png_with([(b"zTXt", b"k\0\0" + zlib_bomb(64 << 20))]), "z.png"),
        c("png-iccp-bomb", lambda: png_with([(b"iCCP", b"p\0\0" + zlib_bomb(64 << 20))]), "i.png"),
        c(
            "png-many-text-chunks",
            lambda: png_with([(b"tEXt", b"k\0" + b"v" * 50)] * 5000),
            "t.png",
            "image",
        ),
        c(
            "png-text-after-idat",
            lambda: png_with([(b"tEXt", b"Comment\0" + HTML)], before_idat=False),
            "t.png",
            "image",
        ),
        c("png-plte-too-long", lambda: png_with([(b"PLTE", bytes(999))]), "p.png"),
        c("png-palette-index-out-of-range", p_out_of_range, "p.png"),
        c("png-eXIf-garbage", lambda: png_with([(b"eXIf", b"MM\0*garbage")]), "e.png", "image"),
        # Wrong extension for the content.
        c("png-named-jpg", png, "photo.jpg", "image"),
        c("jpeg-named-png", jpeg, "photo.png", "image"),
        c("gif-named-webp", lambda: save(picture(), "GIF"), "photo.webp", "image"),
        c("webp-named-gif", lambda: save(picture(), "WEBP"), "photo.gif", "image"),
        c("jpeg-named-txt", jpeg, "readme.txt", "image"),
        c("jpeg-no-extension", jpeg, "photo", "image"),
        c("jpeg-named-php", jpeg, "shell.jpg.php", "image"),
        c("bmp-named-jpeg", lambda: save(picture(), "BMP"), "photo.JPEG", "image"),
        # Formats refused by default.
        c("eps-text", lambda: EPS, "x.eps", "error"),
        c("eps-named-jpg", lambda: EPS, "x.jpg", "error"),
        c("eps-dos-binary", lambda: b"\xc5\xd0\xd3\xc6" + bytes(26) + EPS, "x.eps", "error"),
        c("svg-xxe", lambda: SVG_XXE, "x.svg", "error"),
        c("svg-xxe-named-png", lambda: b"  \n" + SVG_XXE, "x.png", "error"),
        c("svg-plain", lambda: SVG_XXE.split(b"\n", 2)[2], "x.svg", "error"),
        c("psd", psd, "x.psd", "error"),
        c("pdf", lambda: save(picture(), "PDF"), "x.pdf", "error"),
        c("ico", lambda: save(picture((32, 32)), "ICO"), "favicon.ico", "error"),
        c("ico-named-png", lambda: save(picture((32, 32)), "ICO"), "x.png", "error"),
        c("jpeg2000", lambda: save(picture(), "JPEG2000"), "x.jp2", "error"),
        c("tga", lambda: save(picture(), "TGA"), "x.tga", "error"),
        c("pcx", lambda: save(picture(), "PCX"), "x.pcx", "error"),
        c("qoi", lambda: save(picture(), "QOI"), "x.qoi", "error"),
        c("xbm", lambda: save(picture().convert("1"), "XBM"), "x.jpg", "error"),
        c("zip", zip_payload, "x.jpg", "error"),
        # Decompression bombs and huge headers.
        c(
            "png-bomb-20000x20000-1bit",
            lambda: png_raw(20000, 20000, bytes(2500), depth=1, colour=0),
            "bomb.png",
            "error",
            heavy=True,
        ),
        c(
            "png-ihdr-65535x65535",
            lambda: png_join([(b"IHDR", ihdr(65535, 65535)), (b"IEND", b"")]),
            "bomb.png",
            "error",
        ),
        c("png-ihdr-2e31x1", lambda: png_patch_ihdr(width=2**31 - 1, height=1), "b.png", "error"),
        c(
            "jpeg-sof-65500x65500",
            lambda: jpeg_patch_sof(jpeg(), width=65500, height=65500),
            "bomb.jpg",
            "error",
        ),
        c(
            "gif-screen-65535x65535",
            lambda: gif_screen(small_gif()[0], 65535, 65535) + gif_image(0, 0, 1, 1) + b";",
            "bomb.gif",
            "error",
        ),
        c("gif-frame-extents-bomb", gif_frame_extents_bomb, "bomb.gif", heavy=True),
        c(
            "gif-first-frame-60000-beyond-screen",
            lambda: gif_first_frame_beyond_screen(60000),
            "bomb.gif",
            "error",
        ),
        c(
            "gif-first-frame-7000-beyond-screen",
            lambda: gif_first_frame_beyond_screen(7000),
            "bomb.gif",
            heavy=True,
        ),
        c(
            "gif-300-frames-2000x2000",
            gif_many_large_frames,
            "frames.gif",
            "image",
            first_rgb=(0, 0, 255),
            heavy=True,
        ),
        c(
            "bmp-header-40000x40000",
            lambda: bmp_patch(22, "<i", 40000, bmp_patch(18, "<i", 40000)),
            "bomb.bmp",
            "error",
        ),
        c("webp-vp8l-16383x16383", lambda: _webp_dims(16383, 16383), "bomb.webp", "error"),
        c("jpeg-scan-bomb-small", lambda: jpeg_scan_bomb(1024, 50), "scans.jpg"),
        # Zero-sized images.
        c("png-zero-width", lambda: png_patch_ihdr(width=0), "zero.png", "error"),
        c("png-zero-height", lambda: png_patch_ihdr(height=0), "zero.png", "error"),
        c(
            "gif-zero-screen-zero-frame",
            lambda: gif_screen(small_gif()[0], 0, 0) + gif_image(0, 0, 0, 0) + b";",
            "zero.gif",
            "error",
        ),
        c("bmp-zero-width", lambda: bmp_patch(18, "<i", 0), "zero.bmp", "error"),
        c("jpeg-zero-height", lambda: jpeg_patch_sof(jpeg(), height=0), "zero.jpg", "error"),
        c("jpeg-precision-12", lambda: jpeg_patch_sof(jpeg(), precision=12), "p.jpg", "error"),
        c("jpeg-zero-components", lambda: jpeg_patch_sof(jpeg(), components=0), "c.jpg", "error"),
        # Malformed EXIF; "either" where Pillow warns, as its warnings fail under -W error.
        c("exif-orientation-9", lambda: orientation(9), "o.jpg", "image"),
        c("exif-orientation-0", lambda: orientation(0), "o.jpg", "image"),
        c("exif-orientation-65535", lambda: orientation(65535), "o.jpg", "image"),
        c("exif-orientation-long-6", lambda: orientation(6, LONG), "o.jpg", "image"),
        c("exif-orientation-ascii", lambda: orientation(0x0036, ASCII, 2), "o.jpg", "image"),
        c("exif-orientation-rational", lambda: orientation(0xFFFF, RATIONAL), "o.jpg", "either"),
        c("exif-orientation-array", lambda: orientation(6, SHORT, 300), "o.jpg", "either"),
        c(
            "exif-ifd-count-65535",
            lambda: jpeg_exif(tiff_exif([ifd_entry(0x0112, SHORT, 1, 6)], count=65535)),
            "o.jpg",
            "either",
        ),
        c(
            "exif-ifd-offset-past-end",
            lambda: jpeg_exif(tiff_exif([], first_ifd=0xFFFFFF00)),
            "o.jpg",
            "either",
        ),
        c(
            "exif-ifd-loop",
            lambda: jpeg_exif(
                tiff_exif(
                    [ifd_entry(0x8769, LONG, 1, 8), ifd_entry(0x8825, LONG, 1, 8)], next_ifd=8
                )
            ),
            "o.jpg",
            "image",
        ),
        c(
            "exif-huge-count",
            lambda: jpeg_exif(tiff_exif([ifd_entry(0x010E, ASCII, 0x7FFFFFFF, 26)])),
            "o.jpg",
            "either",
        ),
        c("exif-header-only", lambda: jpeg_insert(jpeg(), segment(0xE1, b"Exif\0\0")), "o.jpg"),
        c(
            "exif-bigtiff-magic",
            lambda: jpeg_insert(jpeg(), segment(0xE1, b"Exif\0\0II+\0\x08\0\0\0")),
            "o.jpg",
            "image",
        ),
        c(
            "webp-exif-garbage",
            lambda: save(picture(), "WEBP", exif=b"Exif\0\0MM\0*\xff\xff\xff\xff"),
            "e.webp",
            "image",
        ),
        # Colour modes.
        c("cmyk-jpeg", lambda: cmyk_jpeg(None), "cmyk.jpg", "image"),
        c("cmyk-jpeg-srgb-icc", lambda: cmyk_jpeg(srgb_icc()), "cmyk.jpg", "image"),
        c("cmyk-jpeg-garbage-icc", lambda: cmyk_jpeg(b"garbage" * 50), "cmyk.jpg", "image"),
        c(
            "cmyk-tiff-srgb-icc",
            lambda: save(picture().convert("CMYK"), "TIFF", icc_profile=srgb_icc()),
            "cmyk.tif",
            "image",
        ),
        c("rgb-jpeg-garbage-icc", lambda: jpeg(icc_profile=b"\0" * 200), "icc.jpg", "image"),
        c("gray16-png", gray16, "g16.png", "image"),
        c("gray16-tiff-big-endian", lambda: gray16("I;16B", "TIFF"), "g16.tif", "image"),
        c("int32-tiff", int32_tiff, "i32.tif", "image"),
        c("float-tiff-nan-inf", float_tiff, "f.tif", "image"),
        c("la-png", lambda: save(picture(mode="LA"), "PNG"), "la.png", "image"),
        c("rgba-png", lambda: save(picture(mode="RGBA"), "PNG"), "rgba.png", "image"),
        c("1bit-png", lambda: save(picture(mode="1"), "PNG"), "1.png", "image"),
        c("1bit-bmp", lambda: save(picture(mode="1"), "BMP"), "1.bmp", "image"),
        c("p-png-transparency-index", lambda: palette_png(0), "p.png", "image"),
        c("p-png-transparency-table", lambda: palette_png(bytes(range(0, 256, 16))), "p.png"),
        c(
            "p-gif-transparency",
            lambda: save(picture().convert("P"), "GIF", transparency=0),
            "p.gif",
            "image",
        ),
        c("l-png-trns", lambda: save(picture(mode="L"), "PNG", transparency=128), "l.png"),
        c("rgb-png-trns", lambda: save(picture(), "PNG", transparency=(0, 0, 255)), "t.png"),
        c("ycbcr-tiff", lambda: save(picture().convert("YCbCr"), "TIFF"), "y.tif", "image"),
        c("lab-tiff", lambda: save(picture().convert("LAB"), "TIFF"), "lab.tif", "image"),
        # Payloads that must not reach the output.
        c("polyglot-jpeg-zip", lambda: jpeg() + zip_payload(), "poly.jpg", "image"),
        c("polyglot-jpeg-html", lambda: jpeg() + HTML, "poly.jpg", "image"),
        c("polyglot-png-zip", lambda: png() + zip_payload(), "poly.png", "image"),
        c("polyglot-gif-html", lambda: save(picture(), "GIF") + HTML, "poly.gif", "image"),
        c("jpeg-comment-html", lambda: jpeg(comment=HTML), "c.jpg", "image"),
        c("jpeg-exif-gps-php", lambda: jpeg(exif=gps_exif()), "gps.jpg", "image"),
        c("jpeg-xmp", lambda: jpeg(xmp=XMP), "xmp.jpg", "image"),
        c(
            "jpeg-app13-iptc",
            lambda: jpeg_insert(jpeg(), segment(0xED, b"Photoshop 3.0\0" + PHP)),
            "iptc.jpg",
            "image",
        ),
        c(
            "png-itxt-xmp",
            lambda: png_with([(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + XMP)]),
            "xmp.png",
            "image",
        ),
        c("webp-exif-xmp", lambda: save(picture(), "WEBP", exif=gps_exif(), xmp=XMP), "x.webp"),
        # Multi-frame sources: the first frame is used.
        c("gif-animated", lambda: multi_frame("GIF"), "a.gif", "image", RED),
        c("apng-animated", lambda: multi_frame("PNG"), "a.png", "image", RED),
        c("webp-animated", lambda: multi_frame("WEBP", lossless=True), "a.webp", "image", RED),
        c("tiff-multipage", lambda: multi_frame("TIFF"), "a.tif", "image", RED),
        c("mpo-two-frames", lambda: multi_frame("MPO"), "a.jpg", "image", RED),
        c("avif-animated", lambda: multi_frame("AVIF"), "a.avif", "image", RED),
        c(
            "apng-default-image-not-animated",
            lambda: save(
                Image.new("RGB", (64, 48), GREEN),
                "PNG",
                save_all=True,
                append_images=[Image.new("RGB", (64, 48), RED)],
                default_image=True,
            ),
            "d.png",
            "image",
            GREEN,
        ),
    ]
    if not features.check("avif"):
        cases = [case for case in cases if "avif" not in case.id]
    return cases


def _webp_dims(width: int, height: int) -> bytes:
    """A lossless WebP header declaring ``width`` x ``height`` with no pixel data."""
    bits = (width - 1) | ((height - 1) << 14)
    body = b"\x2f" + struct.pack("<I", bits) + b"\x00" * 8
    chunk = b"VP8L" + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


CASES: list[Case] = _cases()


def by_id(case_id: str) -> Case:
    return next(case for case in CASES if case.id == case_id)


# Inputs that cost too much under the default pixel cap (kept in tests/corpus/) ----------


def under_cap_bombs(side: int = 7071) -> dict[str, bytes]:
    """Small files of ``side`` x ``side`` (just under the 50 Mpx cap) that cost a lot to decode.

    Building them takes a few seconds and a few hundred MB (Pillow encodes the
    full image); they are kept as files in ``tests/corpus/``.
    """
    out: dict[str, bytes] = {}
    rgba_row = bytes(4 * side)
    out["escape-memory-rgba-png-7071.png"] = png_raw(side, side, rgba_row, colour=6)
    out["escape-memory-la-png-7071.png"] = png_raw(side, side, bytes(2 * side), colour=4)
    grey = Image.new("RGB", (side, side), (90, 90, 90))
    out["escape-memory-webp-7071.webp"] = save(grey, "WEBP", quality=10, method=0)
    if features.check("avif"):
        out["escape-memory-avif-7071.avif"] = save(grey, "AVIF", quality=10, speed=10)
    del grey
    out["escape-memory-progressive-jpeg-7071.jpg"] = jpeg_scan_bomb(side, 1, components=3)
    out["escape-memory-progressive-cmyk-jpeg-7071.jpg"] = jpeg_scan_bomb(side, 1, components=4)
    out["escape-time-jpeg-scan-bomb-7071.jpg"] = jpeg_scan_bomb(side, 800)
    return out
