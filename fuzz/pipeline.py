"""Run one input through flask_imagekit as a user would, and judge the outcome.

Two entry points are exercised:

* :meth:`Env.generate`: an ``ImageSpec`` bound to ``SourceFile(name, file=BytesIO(data))``,
  generated with ``ImageCacheFile(spec).generate()`` in an app context whose media
  root is a temporary directory. The specs come in several shapes (:data:`SHAPES`:
  resize first, adjust first, no processors) and output formats (:data:`FORMATS`),
  named ``"<shape>-<format>"`` in :data:`SPECS` (``"jpeg"`` and ``"png"`` are
  ``"fill-jpeg"`` and ``"fill-png"``);
* :func:`run_low_level`: ``open_image`` -> ``decode`` -> the remaining processors ->
  ``save_image``, the functions the spec is made of.

The oracle (:class:`Outcome.problems`): every input must give either a correct
output (it opens, has the right size and format, carries no trailing payload and
no EXIF/XMP/comments, is a single frame) or an ``ImageKitError``, within
:data:`MAX_SECONDS` and :data:`MAX_MEGABYTES` of peak memory growth; after a
failure no file is left in the media root (neither under the final name nor as
a temporary file) and the backend's state is neither EXISTS nor GENERATING.
Anything else is an *escape*.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import resource
import shutil
import struct
import tempfile
import threading
import time
import traceback
import typing as t
from pathlib import Path

from flask import Flask
from PIL import Image, features

from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.cachefiles import ImageCacheFile
from flask_imagekit.exceptions import ImageKitError
from flask_imagekit.imaging import decode, open_image, save_image
from flask_imagekit.processors import (
    Adjust,
    ResizeToFill,
    ResizeToFit,
    SmartResize,
    Thumbnail,
    Transpose,
)
from flask_imagekit.sources import SourceFile

__all__ = [
    "MAX_MEGABYTES",
    "MAX_SECONDS",
    "FORMATS",
    "SHAPES",
    "SPECS",
    "Env",
    "Outcome",
    "PeakMemory",
    "check_output",
    "run_low_level",
]

#: An input may take this long (seconds) from ``generate()`` call to return.
MAX_SECONDS = 2.0
#: ... and grow the peak resident memory of the process by this much (MB).
MAX_MEGABYTES = 256.0
#: The output size of the specs used here.
SIZE = (100, 100)
#: The default pixel cap, passed to ``open_image`` in the low-level path.
MAX_PIXELS = 50_000_000


class JpegThumb(ImageSpec):
    processors = [ResizeToFill(*SIZE)]
    format = "JPEG"


class PngThumb(ImageSpec):
    processors = [ResizeToFill(*SIZE)]
    format = "PNG"


#: Spec shapes: processors and the output size they give (None: the source's).
SHAPES: dict[str, tuple[list[t.Any], tuple[int, int] | None]] = {
    # The fast path: the first processor resizes (a reduced decode, one resize).
    "fill": ([ResizeToFill(*SIZE)], SIZE),
    # A full-size step first: the whole pipeline must stay within the budgets.
    "adjust": ([Adjust(contrast=1.2, color=0.8), ResizeToFill(*SIZE)], SIZE),
    # No processors: only the decode, the mode conversions and the encoder.
    "plain": ([], None),
}
#: Output formats of the specs (AVIF when this Pillow can write it).
FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF") + (
    ("AVIF",) if features.check("avif") else ()
)


def _spec(shape: str, fmt: str) -> type[ImageSpec]:
    if (shape, fmt) == ("fill", "JPEG"):
        return JpegThumb
    if (shape, fmt) == ("fill", "PNG"):
        return PngThumb
    name = f"{shape.capitalize()}{fmt.capitalize()}"
    return type(name, (ImageSpec,), {"processors": list(SHAPES[shape][0]), "format": fmt})


SPECS: dict[str, type[ImageSpec]] = {
    f"{shape}-{fmt.lower()}": _spec(shape, fmt) for shape in SHAPES for fmt in FORMATS
}
SPECS.update(jpeg=JpegThumb, png=PngThumb)


def spec_size(spec: str) -> tuple[int, int] | None:
    """The output size of the spec named ``spec`` (None: the source's)."""
    shape = spec.partition("-")[0] if "-" in spec else "fill"
    return SHAPES[shape][1]


# Metadata that must not reach an output, as bytes (also catches trailing payloads).
FORBIDDEN_BYTES = (
    b"Exif\x00\x00",
    b"http://ns.adobe.com/xap",
    b"<x:xmpmeta",
    b"Photoshop 3.0",
    b"PK\x03\x04",
    b"<html",
    b"<script",
    b"<?php",
)
FORBIDDEN_INFO = ("exif", "xmp", "XML:com.adobe.xmp", "comment", "photoshop", "Comment")
PNG_CHUNKS_ALLOWED = frozenset({b"IHDR", b"PLTE", b"tRNS", b"iCCP", b"sRGB", b"IDAT", b"IEND"})
JPEG_MARKERS_ALLOWED = frozenset(
    {0xE0, 0xE2, 0xEE, 0xDB, 0xC4, 0xDD, 0xDA} | set(range(0xC0, 0xC4))
)


# Memory ------------------------------------------------------------------------------


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the peak RSS (VmHWM) of this process; False where Linux does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


class PeakMemory:
    """Peak resident memory growth of this process over a ``with`` block, in MB.

    On Linux the peak is reset first (``/proc/self/clear_refs``), and a sampling
    thread reads the resident size every couple of milliseconds meanwhile: the
    kernel raises the recorded peak (``VmHWM``) only at some points, so a block
    freed before the ``with`` ends may not reach it. The larger of the two counts.
    Elsewhere, or where the reset is refused, it falls back to the growth of
    ``ru_maxrss``, which is exact only in a fresh process (``exact`` is then False).
    """

    #: Seconds between two samples of the resident size.
    INTERVAL = 0.002

    def __init__(self) -> None:
        self.megabytes: float = 0.0
        self.exact = False
        self._before_kb = 0
        self._sampled_kb = 0
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        self.exact = _reset_peak()
        rss = _status_kb("VmRSS") if self.exact else None
        if rss is None:
            self.exact = False
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self._before_kb = self._sampled_kb = rss
        if self.exact:
            self._stop.clear()
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()
        return self

    def _sample(self) -> None:
        page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
        try:
            with open("/proc/self/statm", "rb", buffering=0) as statm:
                while not self._stop.wait(self.INTERVAL):
                    statm.seek(0)
                    resident_kb = int(statm.read().split()[1]) * page_kb
                    self._sampled_kb = max(self._sampled_kb, resident_kb)
        except (OSError, ValueError, IndexError):
            return

    def __exit__(self, *exc: object) -> None:
        if self._sampler is not None:
            self._stop.set()
            self._sampler.join()
            self._sampler = None
        peak = _status_kb("VmHWM") if self.exact else None
        if peak is None:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = max(peak, self._sampled_kb)
        self.megabytes = max(0, peak - self._before_kb) / 1024


# Outcomes ----------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    """What happened to one input, and what was wrong with it (``problems``)."""

    output: bytes | None = None
    error: BaseException | None = None
    seconds: float = 0.0
    megabytes: float | None = None
    problems: list[str] = dataclasses.field(default_factory=list)
    cachefile_name: str | None = None
    #: False when ``megabytes`` is only a lower bound (no peak reset on this system).
    memory_exact: bool = False

    @property
    def escaped(self) -> bool:
        return bool(self.problems)

    @property
    def kind(self) -> str:
        if self.problems:
            return "escape"
        return "image" if self.output is not None else "error"

    def describe(self) -> str:
        what = (
            f"{type(self.error).__name__}: {str(self.error)[:200]}"
            if self.error is not None
            else f"image ({len(self.output or b'')} bytes)"
        )
        memory = "?" if self.megabytes is None else f"{self.megabytes:.0f} MB"
        text = f"{what} in {self.seconds:.2f} s, {memory}"
        if self.problems:
            text += "; PROBLEMS: " + "; ".join(self.problems)
        return text

    def to_json(self) -> dict[str, t.Any]:
        return {
            "kind": self.kind,
            "error": None if self.error is None else type(self.error).__name__,
            "message": None if self.error is None else str(self.error)[:500],
            "seconds": self.seconds,
            "megabytes": self.megabytes,
            "memory_exact": self.memory_exact,
            "problems": self.problems,
            "output_size": None if self.output is None else len(self.output),
        }

    def judge_limits(self, max_seconds: float = MAX_SECONDS) -> None:
        if self.seconds > max_seconds:
            self.problems.append(f"too slow: {self.seconds:.2f} s > {max_seconds} s")
        if self.megabytes is not None and self.megabytes > MAX_MEGABYTES:
            self.problems.append(
                f"memory blow-up: peak grew by {self.megabytes:.0f} MB > {MAX_MEGABYTES:.0f} MB"
            )

    def judge_error(self) -> None:
        error = self.error
        if error is None:
            return
        if isinstance(error, MemoryError):
            self.problems.append("memory blow-up: MemoryError")
        elif not isinstance(error, ImageKitError):
            frames = traceback.extract_tb(error.__traceback__)
            at = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
            self.problems.append(f"escape: {type(error).__name__}: {str(error)[:200]}{at}")


# The oracle for outputs ----------------------------------------------------------------


def _png_chunk_types(data: bytes) -> list[bytes]:
    kinds, pos = [], 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kinds.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return kinds


def _jpeg_markers(data: bytes) -> list[int]:
    markers, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        markers.append(marker)
        if marker == 0xDA:
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length
    return markers


def check_output(
    data: bytes,
    fmt: str,
    size: tuple[int, int] | None = SIZE,
    max_size: tuple[int, int] | None = None,
) -> list[str]:
    """Problems with an output image: unreadable, wrong size/format, payload, metadata."""
    problems: list[str] = []
    fmt = fmt.upper()
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as img:
            img.load()
            got_size, info = img.size, dict(img.info)
            frames = getattr(img, "n_frames", 1)
            exif = img.getexif()
    except Exception as exc:
        return [f"output is not a readable {fmt}: {type(exc).__name__}: {exc}"]
    if size is not None and got_size != size:
        problems.append(f"output is {got_size[0]}x{got_size[1]}, not {size[0]}x{size[1]}")
    if max_size is not None and (got_size[0] > max_size[0] or got_size[1] > max_size[1]):
        problems.append(f"output is {got_size}, larger than {max_size}")
    if frames != 1:
        problems.append(f"output has {frames} frames")
    leaked = [key for key in FORBIDDEN_INFO if key in info]
    if leaked or len(exif):
        problems.append(f"output carries metadata: {leaked or dict(exif)}")
    found = [marker for marker in FORBIDDEN_BYTES if marker in data]
    if found:
        problems.append(f"output contains {found}")
    if fmt == "JPEG":
        if not data.endswith(b"\xff\xd9"):
            problems.append("JPEG output has bytes after EOI")
        extra = [hex(m) for m in _jpeg_markers(data) if m not in JPEG_MARKERS_ALLOWED]
        if extra:
            problems.append(f"JPEG output has segments {extra}")
    elif fmt == "PNG":
        if not data.endswith(b"IEND\xaeB`\x82"):
            problems.append("PNG output has bytes after IEND")
        extra_chunks = [k.decode("latin-1") for k in _png_chunk_types(data)]
        extra_chunks = [k for k in extra_chunks if k.encode("latin-1") not in PNG_CHUNKS_ALLOWED]
        if extra_chunks:
            problems.append(f"PNG output has chunks {extra_chunks}")
    return problems


def centre_rgb(data: bytes) -> tuple[int, int, int]:
    with Image.open(io.BytesIO(data)) as img:
        rgb = img.convert("RGB")
        return t.cast(tuple[int, int, int], rgb.getpixel((rgb.width // 2, rgb.height // 2)))


# The high-level entry point ----------------------------------------------------------------


def files_under(root: Path) -> list[str]:
    return sorted(
        str(Path(dirpath, name).relative_to(root))
        for dirpath, _, names in os.walk(root)
        for name in names
    )


class Env:
    """A Flask app with ImageKit, its media root in a directory of its own.

    Use as a context manager (it pushes an app context), or pass ``app`` and
    ``media_root`` from pytest fixtures with an app context already pushed.
    """

    def __init__(self, app: Flask | None = None, media_root: Path | None = None) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if app is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="imagekit-fuzz-")
            media_root = Path(self._tmp.name) / "media"
            media_root.mkdir()
            app = Flask("imagekit_fuzz", instance_path=str(Path(self._tmp.name) / "instance"))
            app.config.update(TESTING=True, IMAGEKIT_MEDIA_ROOT=str(media_root))
            ImageKit(app)
        assert media_root is not None
        self.app = app
        self.media_root = media_root
        self.count = 0
        self._ctx: t.Any = None

    def __enter__(self) -> Env:
        self._ctx = self.app.app_context()
        self._ctx.push()
        return self

    def __exit__(self, *exc: object) -> None:
        self._ctx.pop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def reset(self) -> None:
        """Forget every file and state, for the next input."""
        for child in self.media_root.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
        with contextlib.suppress(Exception):
            from flask_imagekit.extension import current_state

            current_state().state_cache.clear()

    def generate(
        self,
        data: bytes,
        name: str = "photo.jpg",
        spec: str | type[ImageSpec] = "jpeg",
        *,
        measure: bool = True,
        size: tuple[int, int] | None = SIZE,
    ) -> Outcome:
        """Generate the cache file of ``spec`` for a source ``name`` holding ``data``.

        ``spec``: a spec class or a name of :data:`SPECS`, whose output size it
        then checks instead of ``size``.
        """
        if isinstance(spec, str):
            size = spec_size(spec)
        spec_class = SPECS[spec] if isinstance(spec, str) else spec
        fmt = t.cast(str, spec_class.format)
        outcome = Outcome()
        source = SourceFile(name, file=io.BytesIO(data))
        file = ImageCacheFile(spec_class(source=source))
        try:
            final = outcome.cachefile_name = file.name
        except ImageKitError as exc:
            outcome.error = exc
            return outcome
        before = files_under(self.media_root)
        meter = PeakMemory()
        start = time.perf_counter()
        try:
            with meter:
                file.generate()
        except Exception as exc:
            outcome.error = exc
        outcome.seconds = time.perf_counter() - start
        if measure:
            outcome.megabytes, outcome.memory_exact = meter.megabytes, meter.exact
        outcome.judge_limits()
        target = self.media_root / final
        if outcome.error is None:
            try:
                outcome.output = target.read_bytes()
            except OSError as exc:
                outcome.problems.append(f"generate() returned but {final!r} is missing: {exc}")
            else:
                outcome.problems += check_output(outcome.output, fmt, size)
            extra = [f for f in files_under(self.media_root) if f not in before and f != final]
            if extra:
                outcome.problems.append(f"files other than {final!r} were written: {extra}")
        else:
            outcome.judge_error()
            if target.exists():
                outcome.problems.append(f"a file was left under the final name {final!r}")
            left = [f for f in files_under(self.media_root) if f not in before]
            if left:
                outcome.problems.append(f"files left in the media root: {left}")
            outcome.problems += state_problems(file)
        return outcome


def state_problems(file: ImageCacheFile) -> list[str]:
    """What a failed generation left in the backend's state cache."""
    backend = file.cachefile_backend
    cache = file.app_state.state_cache
    problems = []
    state = cache.get(backend.get_key(file))
    if isinstance(state, str) and state.startswith("E"):
        problems.append(f"state left as EXISTS ({state!r})")
    if cache.get(backend.get_lock_key(file)) is not None:
        problems.append("the GENERATING lock was left behind")
    return problems


# The low-level entry points --------------------------------------------------------------

PROCESSOR_CHOICES: list[tuple[str, list[t.Any], tuple[int, int] | None, tuple[int, int]]] = [
    # id, processors, exact output size (or None), bound on the output size
    ("fill", [ResizeToFill(100, 100)], (100, 100), (100, 100)),
    ("fit", [ResizeToFit(64, 64)], None, (64, 64)),
    ("thumb", [Thumbnail(48, 48)], None, (48, 48)),
    ("smart", [SmartResize(40, 30)], (40, 30), (40, 30)),
    ("fill-transpose", [ResizeToFill(60, 30), Transpose()], None, (60, 60)),
    ("fit-adjust", [ResizeToFit(50, 50), Adjust(contrast=1.5, color=0.2)], None, (50, 50)),
]
OUTPUT_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")


def run_low_level(
    data: bytes,
    processors: t.Sequence[t.Any] = (ResizeToFill(100, 100),),
    fmt: str = "JPEG",
    *,
    size: tuple[int, int] | None = SIZE,
    max_size: tuple[int, int] | None = None,
    measure: bool = True,
) -> Outcome:
    """``open_image`` -> ``decode`` -> remaining processors -> ``save_image``."""
    outcome = Outcome()
    meter = PeakMemory()
    start = time.perf_counter()
    stage = "open_image/decode"
    try:
        with meter:
            img = open_image(io.BytesIO(data), max_pixels=MAX_PIXELS, name="fuzz")
            img, remaining = decode(img, list(processors), name="fuzz", format=fmt)
            stage = "processors"
            for processor in remaining:
                img = processor.process(img)
            stage = "save_image"
            out = io.BytesIO()
            save_image(img, out, fmt)
            outcome.output = out.getvalue()
    except Exception as exc:
        outcome.error = exc
    outcome.seconds = time.perf_counter() - start
    if measure:
        outcome.megabytes, outcome.memory_exact = meter.megabytes, meter.exact
    outcome.judge_limits()
    if outcome.error is not None:
        # Processors and save_image may raise what Pillow raises (ImageSpec wraps it);
        # for a decoded image they should not fail at all, so both count.
        if not isinstance(outcome.error, ImageKitError):
            outcome.judge_error()
            outcome.problems[-1:] = [f"{outcome.problems[-1]} (in {stage})"]
    elif outcome.output is not None:
        outcome.problems += check_output(outcome.output, fmt, size, max_size)
    return outcome


# Triage: escapes of a known bug class -----------------------------------------------------

#: Library bugs found by this harness and not fixed yet, by id (see tests/corpus/README.md).
KNOWN_BUGS = {
    "progressive-jpeg": (
        "progressive JPEGs: libjpeg keeps the whole image's coefficients (2 bytes per pixel "
        "and component, whatever the draft scale) and runs every scan over every block, so "
        "a small file under the pixel cap takes > 256 MB or many seconds"
    ),
    "large-under-cap": (
        "sources under IMAGEKIT_MAX_SOURCE_PIXELS whose full decode (WebP, AVIF, RGBA/LA/P "
        "PNG and GIF, ...) costs more than 256 MB or 2 s: the cap counts pixels, not bytes"
    ),
}
#: Above this many pixels, a full decode at 16 bytes per pixel passes MAX_MEGABYTES.
LARGE_PIXELS = int(MAX_MEGABYTES * (1 << 20) / 16)


def triage(data: bytes, outcome: Outcome) -> str | None:
    """The id of the known bug an escape belongs to, or None for a new kind of escape.

    Only limit problems (time, memory) of sources the bug describes are known;
    any other problem (an exception, a wrong output, a file left behind) is new.
    """
    limits = ("too slow", "memory blow-up")
    if not outcome.problems or not all(p.startswith(limits) for p in outcome.problems):
        return None
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                fmt, size, info = img.format, img.size, dict(img.info)
    except Exception:
        return None
    if fmt in ("JPEG", "MPO") and info.get("progressive"):
        return "progressive-jpeg"
    if size[0] * size[1] >= LARGE_PIXELS:
        return "large-under-cap"
    return None
