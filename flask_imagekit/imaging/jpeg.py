"""JPEG specifics: the scan limit of progressive files and their coefficient memory."""

from __future__ import annotations

import math
import os
import re
import typing as t

from PIL import Image

from ..exceptions import SourceError

__all__ = ["MAX_JPEG_SCANS", "check_jpeg", "is_progressive_jpeg", "jpeg_coefficient_bytes"]

#: Progressive JPEGs with more scans than this are refused: every scan walks the
#: whole image, and real encoders write 10 to about 40.
MAX_JPEG_SCANS = 100

# The scan counter reads this much at a time, so memory does not grow with the file.
_SCAN_CHUNK = 256 * 2**10
# Walking a segment costs about half a microsecond: a file of millions of empty
# segments must not cost seconds before libjpeg even starts.
_MAX_JPEG_SEGMENTS = 4096
# A marker that starts a segment, or EOI. After 0xFF, 0x00 is a stuffed data byte
# and 0xFF a fill byte; RSTn (in scan data), TEM and SOI have no segment.
_JPEG_SEGMENT_MARKER = re.compile(rb"\xff[^\x00\x01\xd0-\xd8\xff]")


def is_progressive_jpeg(img: Image.Image) -> bool:
    """Tell whether ``img`` is a progressive JPEG (or MPO)."""
    return img.format in ("JPEG", "MPO") and bool(img.info.get("progressive"))


def check_jpeg(img: Image.Image, fp: t.IO[bytes], what: str) -> None:
    """Refuse ``img``, opened from ``fp``, if it is a progressive JPEG too slow to decode.

    Raises :class:`SourceError` naming the source ``what`` when it has more than
    :data:`MAX_JPEG_SCANS` scans or a flood of marker segments. Other images pass.
    """
    if is_progressive_jpeg(img):
        _check_scans(fp, what)


def _check_scans(fp: t.IO[bytes], what: str) -> None:
    """Refuse progressive JPEGs with so many scans that decoding takes too long."""
    position = fp.tell()
    try:
        scans, segments = _count_jpeg_scans(fp, MAX_JPEG_SCANS)
    finally:
        fp.seek(position)
    if scans > MAX_JPEG_SCANS:
        msg = (
            f"{what} is a progressive JPEG of more than {MAX_JPEG_SCANS} scans (at most "
            f"{MAX_JPEG_SCANS} are decoded). Save it again as a baseline or ordinary "
            "progressive JPEG."
        )
        raise SourceError(msg)
    if segments > _MAX_JPEG_SEGMENTS:
        msg = (
            f"{what} is a progressive JPEG of more than {_MAX_JPEG_SEGMENTS:,} marker "
            "segments (real ones have a few dozen). Save it again as a baseline or "
            "ordinary progressive JPEG."
        )
        raise SourceError(msg)


def _count_jpeg_scans(fp: t.IO[bytes], limit: int) -> tuple[int, int]:
    """Count the scans (SOS markers) and segments of the JPEG in ``fp``, up to its EOI.

    Walks the file as libjpeg does: a segment is skipped by its length (markers
    inside an ICC profile or an EXIF thumbnail are not the file's), scan data and
    anything between segments are searched for the next marker. Reads in chunks,
    seeks over long segments and stops once the scans pass ``limit`` or the
    segments :data:`_MAX_JPEG_SEGMENTS`. Leaves ``fp`` anywhere.
    """
    fp.seek(0)
    buf = fp.read(_SCAN_CHUNK)
    pos = scans = segments = 0
    while True:
        match = _JPEG_SEGMENT_MARKER.search(buf, pos)
        if match is None or (match.end() + 2 > len(buf) and buf[match.end() - 1] != 0xD9):
            # Read on, keeping what may be the start of a marker split by the chunk.
            if match is not None:
                keep = buf[match.start() :]
            else:
                keep = b"\xff" if pos < len(buf) and buf.endswith(b"\xff") else b""
            chunk = fp.read(_SCAN_CHUNK)
            if not chunk:
                return scans, segments
            buf, pos = keep + chunk, 0
            continue
        code = buf[match.end() - 1]
        if code == 0xD9:  # EOI
            return scans, segments
        segments += 1
        if code == 0xDA:  # SOS
            scans += 1
        if scans > limit or segments > _MAX_JPEG_SEGMENTS:
            return scans, segments
        end = match.end() + int.from_bytes(buf[match.end() : match.end() + 2], "big")
        if end <= len(buf):
            pos = end
        else:
            fp.seek(end - len(buf), os.SEEK_CUR)
            buf, pos = b"", 0


def jpeg_coefficient_bytes(img: Image.Image) -> int:
    """The memory, in bytes, libjpeg keeps for the DCT coefficients of the JPEG ``img``.

    A progressive JPEG keeps all of them (2 bytes each) whatever the decoding scale.
    """
    width, height = img.size
    layers = getattr(img, "layer", None) or [("", 1, 1, 0)] * len(img.getbands())
    h_max = max(layer[1] for layer in layers) or 1
    v_max = max(layer[2] for layer in layers) or 1
    total = 0
    for _, h, v, _table in layers:
        blocks_x = math.ceil(math.ceil(width * h / h_max) / 8)
        blocks_y = math.ceil(math.ceil(height * v / v_max) / 8)
        total += blocks_x * blocks_y * 128
    return total
