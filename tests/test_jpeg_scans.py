"""The scan limit of progressive JPEGs (``open_image`` refuses scan bombs).

The scans are counted by walking the marker segments of the file in chunks, up to
its end of image: the file is never read whole, data inside metadata segments is
not taken for markers, and counting stops once the limit is passed.
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from PIL import Image

import flask_imagekit.imaging.jpeg as imaging
from flask_imagekit.exceptions import SourceError
from flask_imagekit.imaging import MAX_JPEG_SCANS, open_image
from fuzz import hostile

from .conftest import encode, photo

CORPUS = Path(__file__).resolve().parent / "corpus"


def count(data: bytes) -> int:
    return imaging._count_jpeg_scans(io.BytesIO(data), MAX_JPEG_SCANS)[0]


def opens(data: bytes) -> bool:
    try:
        open_image(io.BytesIO(data)).close()
    except SourceError as exc:
        if "scans" not in str(exc) and "segments" not in str(exc):
            raise
        return False
    return True


def progressive(mode: str = "RGB", size: tuple[int, int] = (300, 200), **kw: object) -> bytes:
    return encode(photo(size, mode), "JPEG", progressive=True, **kw)


# Counting --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "scans"), [("RGB", 10), ("L", 6), ("CMYK", 18)], ids=["rgb", "grey", "cmyk"]
)
@pytest.mark.parametrize("options", [{}, {"subsampling": 0, "quality": 95}, {"optimize": True}])
def test_scans_of_real_progressive_jpegs(
    mode: str, scans: int, options: dict[str, object]
) -> None:
    # libjpeg's standard progression: 10 scans for YCbCr, 6 for grey, 18 for CMYK.
    data = progressive(mode, **options)
    assert data.count(b"\xff\xda") == scans
    assert count(data) == scans
    assert opens(data)


def test_baseline_jpeg_has_one_scan() -> None:
    assert count(encode(photo((64, 48)), "JPEG")) == 1


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64, 4096])
def test_markers_split_across_chunks(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    data = hostile.jpeg_insert(
        progressive("RGB", (120, 80)),
        hostile.segment(0xE1, b"\xff\xda\xff\xd9" * 50),
        hostile.segment(0xFE, b"\xff" * 33),
    )
    monkeypatch.setattr(imaging, "_SCAN_CHUNK", chunk)
    assert count(data) == 10
    bomb = hostile.jpeg_scan_bomb(64, MAX_JPEG_SCANS + 1)
    assert count(bomb) == MAX_JPEG_SCANS + 1


def test_counting_stops_past_the_limit() -> None:
    assert count(hostile.jpeg_scan_bomb(64, 800)) == MAX_JPEG_SCANS + 1


def test_scan_markers_inside_metadata_are_not_scans() -> None:
    # An ICC profile, a comment or an EXIF blob may hold the bytes FF DA by chance.
    data = hostile.jpeg_insert(
        progressive(), hostile.segment(0xFE, b"\xff\xda" * (2 * MAX_JPEG_SCANS))
    )
    assert opens(data)
    assert count(data) == 10


def test_end_of_image_inside_metadata_does_not_stop_the_count() -> None:
    # An EXIF thumbnail is a whole JPEG, end-of-image marker included.
    thumbnail = encode(photo((16, 16)), "JPEG")
    bomb = hostile.jpeg_insert(
        hostile.jpeg_scan_bomb(64, 3 * MAX_JPEG_SCANS),
        hostile.segment(0xE1, b"Exif\x00\x00" + thumbnail),
    )
    assert count(bomb) == MAX_JPEG_SCANS + 1
    assert not opens(bomb)


def test_fill_bytes_and_restart_markers() -> None:
    data = progressive("RGB", (160, 120), restart_marker_blocks=1)
    assert data.count(b"\xff\xd0") > 0
    assert count(data) == 10
    # 0xFF fill bytes may precede any marker.
    padded = data.replace(b"\xff\xda", b"\xff\xff\xff\xda")
    assert count(padded) == 10


@pytest.mark.parametrize(
    ("scans", "allowed"), [(MAX_JPEG_SCANS, True), (MAX_JPEG_SCANS + 1, False)]
)
def test_limit(scans: int, allowed: bool) -> None:
    assert opens(hostile.jpeg_scan_bomb(64, scans)) is allowed


@pytest.mark.parametrize("where", ["between-scans", "before-first-scan"])
def test_floods_of_empty_segments_are_refused_quickly(where: str) -> None:
    data = progressive("RGB", (64, 48))
    at = data.index(b"\xff\xda", data.index(b"\xff\xda") + 2 if where == "between-scans" else 0)
    flood = hostile.segment(0xFE, b"") * (4 * 2**20)
    bomb = data[:at] + flood + data[at:]
    started = time.perf_counter()
    with pytest.raises(SourceError, match="more than 4,096 marker segments"):
        imaging._check_scans(io.BytesIO(bomb), "bomb.jpg")
    assert time.perf_counter() - started < 1.0
    assert imaging._count_jpeg_scans(io.BytesIO(data), MAX_JPEG_SCANS)[1] < 64


def test_scan_bomb_of_the_corpus_is_refused() -> None:
    data = (CORPUS / "escape-time-jpeg-scan-bomb-7071.jpg").read_bytes()
    with pytest.raises(SourceError, match=rf"more than {MAX_JPEG_SCANS} scans.*baseline"):
        open_image(io.BytesIO(data), name="bomb.jpg")


def test_truncated_and_odd_files_are_left_to_the_decoder() -> None:
    data = progressive()
    assert count(data[: len(data) // 2]) <= 10
    assert count(data[:3]) == 0
    assert count(b"") == 0
    assert count(data[:-2]) == 10  # no end-of-image marker


# Memory ----------------------------------------------------------------------------------

TRAILING_ZEROS = 256 * 2**20

_MEASURE = textwrap.dedent(
    """
    import resource, sys
    from PIL import Image
    from flask_imagekit.imaging import open_image

    with open(sys.argv[1], "rb") as fp:
        Image.open(fp).close()  # plugins loaded before the baseline
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open(sys.argv[1], "rb") as fp:
        open_image(fp).close()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((after - before) * 1024)  # ru_maxrss is in KiB on Linux
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss units and sparse files")
@pytest.mark.parametrize("where", ["after-eoi", "before-eoi"])
def test_counting_does_not_read_the_file_into_memory(tmp_path: Path, where: str) -> None:
    image = Image.new("RGB", (64, 64), (200, 30, 30))
    data = encode(image, "JPEG", progressive=True)
    path = tmp_path / "zeros.jpg"
    with path.open("wb") as fp:
        if where == "after-eoi":
            fp.write(data)
        else:  # inside the last scan's data: read to the end, then no EOI
            fp.write(data[:-2])
        fp.truncate(len(data) + TRAILING_ZEROS)  # sparse: no disk space used
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    growth = int(result.stdout.split()[-1])
    assert growth < 16 * 2**20, f"peak RSS grew by {growth / 2**20:.0f} MiB"
