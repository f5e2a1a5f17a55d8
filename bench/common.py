"""Shared pieces of the benchmark suite: corpus, timing, quality, tables, results.

The corpus is generated here (photo-like JPEGs and PNGs: smooth gradients, hard
shapes, thin lines and per-channel grain, so they compress like camera files at
about 2.3 bits per pixel at quality 90) and cached under ``bench/.corpus/``,
which is git-ignored; delete it to regenerate. Results go to ``bench/results/``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import gc
import io
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import typing as t
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import PIL
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageStat, features

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / "bench"
#: Bump when the corpus generator changes, so stale files are not reused.
CORPUS_VERSION = 1
CORPUS_DIR = BENCH_DIR / ".corpus" / f"v{CORPUS_VERSION}"
RESULTS_DIR = BENCH_DIR / "results"

#: Sizes of the corpus images, (width, height) as stored.
SIZE_2MP = (1632, 1224)
SIZE_12MP = (4000, 3000)
SIZE_24MP = (6000, 4000)
SIZE_4MP_PNG = (2448, 1632)
#: 8660 x 5773 = 49,994,180 pixels: just under IMAGEKIT_MAX_SOURCE_PIXELS (50,000,000).
SIZE_50MP = (8660, 5773)

#: JPEG quality of the corpus (camera-like).
SOURCE_QUALITY = 90

_EXIF_ORIENTATION = 0x0112
_EXIF_MAKE = 0x010F
_EXIF_MODEL = 0x0110


# Corpus --------------------------------------------------------------------------------


def _gradients(w: int, h: int) -> Image.Image:
    """Three crossing gradients, one per channel: the base of the drawn photos."""
    base = Image.linear_gradient("L").resize((w, h))
    return Image.merge(
        "RGB",
        (base, base.transpose(Image.Transpose.ROTATE_90).resize((w, h)), ImageChops.invert(base)),
    )


def photo_like(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """An RGB photo-like image: gradients, hard-edged shapes, thin lines and grain.

    The grain is independent per channel at half resolution, so the image does
    not compress much better than a real photograph.
    """
    w, h = size
    img = _gradients(w, h)
    draw = ImageDraw.Draw(img)
    for i in range(14):
        x, y = (seed * 97 + i * 631) % w, (seed * 53 + i * 389) % h
        r = max(w, h) // (5 + i)
        fill = ((i * 40 + seed * 17) % 256, (i * 90) % 256, (128 + seed * 31) % 256)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
    line_width = max(1, min(w, h) // 1500)
    for i in range(40):
        x0 = (seed * 211 + i * 977) % w
        y0 = (seed * 113 + i * 541) % h
        x1 = (x0 + (i * 313) % (w // 2)) % w
        y1 = (y0 + (i * 197) % (h // 2)) % h
        shade = (i * 53) % 256
        draw.line((x0, y0, x1, y1), fill=(shade, 255 - shade, (shade * 3) % 256), width=line_width)
    coarse = Image.effect_noise((max(1, w // 4), max(1, h // 4)), 40).resize(
        (w, h), Image.Resampling.BICUBIC
    )
    channels = []
    for _ in range(3):
        fine = Image.effect_noise((max(1, w // 2), max(1, h // 2)), 96).resize(
            (w, h), Image.Resampling.BILINEAR
        )
        channels.append(Image.blend(coarse, fine, 0.5))
    return Image.blend(img, Image.merge("RGB", channels), 0.4)


def smooth_photo_like(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """A smoother image (the first ``bench/fastpath.py`` corpus): about 1.3 bits/pixel.

    Low-entropy JPEGs decode faster, so the reduced-scale decode gains more on them.
    """
    w, h = size
    img = _gradients(w, h)
    draw = ImageDraw.Draw(img)
    for i in range(12):
        x, y = (seed * 97 + i * 631) % w, (seed * 53 + i * 389) % h
        r = max(w, h) // (6 + i)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=((i * 40) % 256, (i * 90) % 256, 128))
    noise = Image.effect_noise((w // 4, h // 4), 40).resize((w, h), Image.Resampling.BICUBIC)
    img = Image.blend(img, Image.merge("RGB", (noise, noise, noise)), 0.25)
    return img.filter(ImageFilter.SMOOTH)


def with_alpha(img: Image.Image) -> Image.Image:
    """``img`` with a soft-edged alpha channel (opaque centre, transparent corners)."""
    w, h = img.size
    mask = Image.radial_gradient("L").resize((w, h), Image.Resampling.BILINEAR)
    alpha = ImageChops.invert(mask).point(lambda v: min(255, v * 2))
    rgba = img.convert("RGBA")
    rgba.putalpha(alpha)
    return rgba


def jpeg_bytes(img: Image.Image, orientation: int = 1, quality: int = SOURCE_QUALITY) -> bytes:
    """Encode ``img`` as a camera-like JPEG with EXIF (Make, Model, Orientation)."""
    exif = Image.Exif()
    exif[_EXIF_MAKE] = "flask_imagekit bench"
    exif[_EXIF_MODEL] = "photo_like"
    exif[_EXIF_ORIENTATION] = orientation
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, exif=exif.tobytes())
    return buf.getvalue()


def png_bytes(img: Image.Image, compress_level: int = 6) -> bytes:
    """Encode ``img`` as PNG."""
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=compress_level)
    return buf.getvalue()


def cached_file(name: str, make: Callable[[], bytes]) -> Path:
    """``CORPUS_DIR/name``, made with ``make()`` (written atomically) if missing."""
    path = CORPUS_DIR / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        data = make()
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        took = time.perf_counter() - started
        log(f"  corpus: made {name} ({len(data) / 1e6:.1f} MB, {took:.1f}s)")
    return path


def upright_as_orientation_6(img: Image.Image) -> Image.Image:
    """The stored pixels of a file that shows ``img`` upright with EXIF orientation 6."""
    return img.transpose(Image.Transpose.ROTATE_90)


#: The single-generation corpus: name -> (file name, factory).
SINGLE_CORPUS: dict[str, tuple[str, Callable[[], bytes]]] = {
    "jpeg_2mp": ("jpeg_2mp.jpg", lambda: jpeg_bytes(photo_like(SIZE_2MP, 1))),
    "jpeg_12mp": ("jpeg_12mp.jpg", lambda: jpeg_bytes(photo_like(SIZE_12MP, 2))),
    "jpeg_24mp": ("jpeg_24mp.jpg", lambda: jpeg_bytes(photo_like(SIZE_24MP, 3))),
    # Upright 3000x4000 portrait, stored 4000x3000 with orientation 6 (as cameras do).
    "jpeg_12mp_o6": (
        "jpeg_12mp_o6.jpg",
        lambda: jpeg_bytes(
            upright_as_orientation_6(photo_like((SIZE_12MP[1], SIZE_12MP[0]), 4)), orientation=6
        ),
    ),
    "jpeg_12mp_smooth": (
        "jpeg_12mp_smooth.jpg",
        lambda: jpeg_bytes(smooth_photo_like(SIZE_12MP, 0)),
    ),
    "png_4mp_rgba": (
        "png_4mp_rgba.png",
        lambda: png_bytes(with_alpha(photo_like(SIZE_4MP_PNG, 5))),
    ),
}

#: The memory corpus: 50 MP JPEG and PNG.
MEMORY_CORPUS: dict[str, tuple[str, Callable[[], bytes]]] = {
    "jpeg_50mp": ("jpeg_50mp.jpg", lambda: jpeg_bytes(photo_like(SIZE_50MP, 6))),
    "png_50mp": ("png_50mp.png", lambda: png_bytes(photo_like(SIZE_50MP, 7), compress_level=1)),
}


def corpus(entries: Mapping[str, tuple[str, Callable[[], bytes]]]) -> dict[str, Path]:
    """Paths of the named corpus files, made first if missing."""
    return {key: cached_file(name, make) for key, (name, make) in entries.items()}


#: Batch sources: crops of a few large base images, so each file differs.
_BATCH_BASES = 8
_BATCH_BASE_SIZE = (SIZE_12MP[0] + 200, SIZE_12MP[1] + 150)


def batch_source_name(index: int) -> str:
    """File name of batch source ``index`` (every 10th has EXIF orientation 6)."""
    return f"src_{index:04d}.jpg"


def batch_corpus(count: int) -> Path:
    """A directory holding (at least) ``count`` 12 MP JPEG sources; made if missing.

    Sources ``i % 10 == 5`` are stored rotated with EXIF orientation 6.
    """
    directory = CORPUS_DIR / "batch"
    directory.mkdir(parents=True, exist_ok=True)
    missing = [i for i in range(count) if not (directory / batch_source_name(i)).exists()]
    if not missing:
        return directory
    log(f"  corpus: making {len(missing)} batch sources (12 MP JPEG), cached for later runs")
    started = time.perf_counter()
    by_base: dict[int, list[int]] = {}
    for index in missing:
        by_base.setdefault(index % _BATCH_BASES, []).append(index)
    for base_index, indexes in sorted(by_base.items()):
        base = photo_like(_BATCH_BASE_SIZE, 10 + base_index)
        for index in indexes:
            dx, dy = (index * 37) % 200, (index * 53) % 150
            img = base.crop((dx, dy, dx + SIZE_12MP[0], dy + SIZE_12MP[1]))
            if index % 2:
                img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            orientation = 1
            if index % 10 == 5:
                img = upright_as_orientation_6(img.resize((SIZE_12MP[1], SIZE_12MP[0])))
                orientation = 6
            path = directory / batch_source_name(index)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(jpeg_bytes(img, orientation=orientation))
            os.replace(tmp, path)
    log(f"  corpus: batch sources ready ({time.perf_counter() - started:.0f}s)")
    return directory


# Timing --------------------------------------------------------------------------------


def alternate(
    contenders: Mapping[str, Callable[[], object]],
    runs: int,
    *,
    warmup: int = 1,
    collect: bool = True,
) -> dict[str, list[float]]:
    """Time each contender ``runs`` times, alternating; return the wall times (s).

    The order rotates every run, so drift (thermal, page cache, other load)
    spreads evenly over the contenders. ``warmup`` untimed rounds come first.
    """
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for run in range(runs):
        shift = run % len(names)
        for name in names[shift:] + names[:shift]:
            if collect:
                gc.collect()
            started = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - started)
    return times


def summarize(times: Sequence[float]) -> dict[str, float]:
    """Median, min, max and relative spread (IQR / median) of ``times``."""
    ordered = sorted(times)
    median = statistics.median(ordered)
    if len(ordered) >= 4:
        q1, _, q3 = statistics.quantiles(ordered, n=4)
        spread = (q3 - q1) / median if median else 0.0
    else:
        spread = (ordered[-1] - ordered[0]) / median if median else 0.0
    return {
        "median": median,
        "min": ordered[0],
        "max": ordered[-1],
        "iqr_rel": spread,
        "runs": float(len(ordered)),
    }


# Quality --------------------------------------------------------------------------------


def flatten_white(img: Image.Image) -> Image.Image:
    """RGB version of ``img``, alpha composited on white (as the JPEG outputs are)."""
    if img.mode in ("RGBA", "LA", "PA", "RGBa") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        base.alpha_composite(rgba)
        return base.convert("RGB")
    return img.convert("RGB")


def psnr(a: Image.Image, b: Image.Image) -> float | None:
    """PSNR in dB of ``a`` against ``b`` (RGB, alpha flattened on white).

    None when the sizes differ (the two are not the same crop).
    """
    if a.size != b.size:
        return None
    diff = ImageChops.difference(flatten_white(a), flatten_white(b))
    mse = sum(v * v for v in ImageStat.Stat(diff).rms) / 3
    return math.inf if mse == 0 else 20 * math.log10(255 / math.sqrt(mse))


def decode_bytes(data: bytes) -> Image.Image:
    """Fully decode encoded image bytes."""
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


# The pilkit way -----------------------------------------------------------------------------


def pilkit_processors(kind: str, size: tuple[int, int]) -> list[t.Any]:
    """What a django-imagekit spec would list: ``Transpose(AUTO)`` then the resize."""
    from pilkit import processors  # type: ignore[import-untyped]

    resize = processors.ResizeToFill if kind == "fill" else processors.ResizeToFit
    return [processors.Transpose(processors.Transpose.AUTO), resize(*size)]


def pilkit_image(fp: t.IO[bytes], processors: Sequence[t.Any]) -> Image.Image:
    """Full decode and pilkit processors: django-imagekit's pixels, before encoding."""
    from pilkit.processors import ProcessorPipeline  # type: ignore[import-untyped]

    img = Image.open(fp)
    img.load()
    return t.cast(Image.Image, ProcessorPipeline(processors).process(img))


def pilkit_generate(fp: t.IO[bytes], processors: Sequence[t.Any], fmt: str) -> bytes:
    """What django-imagekit does per spec: full decode, pilkit processors, pilkit save."""
    from pilkit.utils import save_image  # type: ignore[import-untyped]

    img = pilkit_image(fp, processors)
    out = io.BytesIO()
    save_image(img, out, fmt)
    return out.getvalue()


# pyvips -------------------------------------------------------------------------------------


def load_pyvips() -> t.Any | None:
    """The pyvips module with its operation cache off, or None if not installed."""
    try:
        import pyvips  # type: ignore[import-untyped]
    except (ImportError, OSError):
        return None
    # The operation cache would return the previous run's result.
    pyvips.cache_set_max(0)
    pyvips.cache_set_max_mem(0)
    return pyvips


#: Encoder options matching Pillow's defaults as flask_imagekit and pilkit use them.
VIPS_SAVE_OPTIONS: dict[str, dict[str, t.Any]] = {
    "JPEG": {"Q": 75, "optimize_coding": True, "keep": 8},  # keep=ICC only
    "WEBP": {"Q": 80, "effort": 4, "keep": 8},
    "PNG": {"keep": 8},
}
VIPS_SUFFIX = {"JPEG": ".jpg", "WEBP": ".webp", "PNG": ".png"}


def vips_thumbnail(pyvips: t.Any, source: bytes | str, kind: str, size: tuple[int, int]) -> t.Any:
    """pyvips ``thumbnail`` (shrink-on-load, auto-rotate) as a fill or a fit."""
    options: dict[str, t.Any] = {"height": size[1]}
    if kind == "fill":
        options["crop"] = "centre"
    if isinstance(source, bytes):
        return pyvips.Image.thumbnail_buffer(source, size[0], **options)
    return pyvips.Image.thumbnail(source, size[0], **options)


def vips_encode(pyvips: t.Any, image: t.Any, fmt: str) -> bytes:
    """Encode a pyvips image like flask_imagekit does (alpha on white for JPEG)."""
    if fmt == "JPEG" and image.hasalpha():
        image = image.flatten(background=[255, 255, 255])
    return t.cast(bytes, image.write_to_buffer(VIPS_SUFFIX[fmt], **VIPS_SAVE_OPTIONS[fmt]))


def vips_to_pil(image: t.Any) -> Image.Image:
    """A uchar pyvips image as a Pillow image."""
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[image.bands]
    return Image.frombytes(mode, (image.width, image.height), image.write_to_memory())


# Targets and reporting --------------------------------------------------------------------


@dataclasses.dataclass
class Target:
    """A target of the issue and whether the measured value meets it."""

    name: str
    value: float | None
    limit: float
    unit: str
    higher_is_better: bool
    note: str = ""

    @property
    def met(self) -> bool | None:
        """True or False, or None when nothing was measured."""
        if self.value is None:
            return None
        return self.value >= self.limit if self.higher_is_better else self.value <= self.limit

    @property
    def margin(self) -> str:
        """How far above or below the limit the value is, in words."""
        if self.value is None:
            return "not measured"
        if self.limit == 0:
            diff = self.value - self.limit
            return f"{diff:+g} {self.unit}"
        ratio = self.value / self.limit
        if self.higher_is_better:
            return f"{ratio:.2f}x the target" if ratio >= 1 else f"{(1 - ratio) * 100:.0f}% short"
        return f"{ratio:.2f}x the limit" if ratio <= 1 else f"{(ratio - 1) * 100:.0f}% over"

    def as_dict(self) -> dict[str, t.Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "value": self.value,
            "limit": self.limit,
            "unit": self.unit,
            "higher_is_better": self.higher_is_better,
            "met": self.met,
            "margin": self.margin,
            "note": self.note,
        }


def target_table(targets: Sequence[Target]) -> str:
    """A table of targets: value, limit, met or missed and by how much."""
    rows = []
    for target in targets:
        status = {True: "MET", False: "MISSED", None: "n/a"}[target.met]
        value = "-" if target.value is None else f"{target.value:.2f}"
        sign = ">=" if target.higher_is_better else "<="
        rows.append(
            [
                target.name,
                f"{value} {target.unit}",
                f"{sign} {target.limit:g}",
                status,
                target.margin,
                target.note,
            ]
        )
    return table(["target", "measured", "limit", "status", "margin", "note"], rows, align="lrrlll")


def table(headers: Sequence[str], rows: Sequence[Sequence[t.Any]], align: str = "") -> str:
    """A plain-text table; ``align`` holds 'l' or 'r' per column (default: first left)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    align = align or "l" + "r" * (len(headers) - 1)

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) if a == "l" else cell.rjust(width)
            for cell, width, a in zip(row, widths, align, strict=True)
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def fmt_ms(seconds: float) -> str:
    """Seconds as milliseconds, one decimal."""
    return f"{seconds * 1000:.1f}"


def fmt_db(value: float | None) -> str:
    """A PSNR for a table."""
    if value is None:
        return "n/a"
    return "inf" if math.isinf(value) else f"{value:.1f}"


def cpu_busy(seconds: float = 1.0) -> float:
    """Fraction of the machine's CPU time that was busy over ``seconds`` (from /proc/stat).

    Taken before a benchmark that should run on an idle machine: other work on
    the same cores (other test runs, fuzzers) slows the parallel contenders most.
    """

    def sample() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as fp:
            fields = [int(v) for v in fp.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return float("nan")
    total = total1 - total0
    return 1.0 - (idle1 - idle0) / total if total else 0.0


def check_idle(label: str) -> float:
    """Sample the machine's CPU use; warn when other work is running; return the fraction."""
    busy = cpu_busy()
    if busy > 0.15:
        log(
            f"WARNING: {label}: the machine is already {busy:.0%} busy before the benchmark "
            "(other processes): timings, parallel ones most, will be slower than on an idle "
            "machine."
        )
    return busy


def wait_for_idle(max_wait: float, threshold: float = 0.15) -> float:
    """Wait up to ``max_wait`` seconds for the CPU use to fall under ``threshold``."""
    deadline = time.monotonic() + max_wait
    busy = cpu_busy(2.0)
    while busy > threshold and time.monotonic() < deadline:
        log(f"waiting for an idle machine: {busy:.0%} busy")
        time.sleep(10)
        busy = cpu_busy(2.0)
    return busy


def log(message: str) -> None:
    """Progress output, on stderr so tables on stdout stay clean."""
    print(message, file=sys.stderr, flush=True)


def environment() -> dict[str, t.Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fp:
            for line in fp:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, t.Any] = {
        "when": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "loadavg_after": list(os.getloadavg()),
        "pillow": PIL.__version__,
        "libjpeg_turbo": features.version("libjpeg_turbo"),
        "webp": features.version("webp"),
        "commit": _git_commit(),
    }
    try:
        from importlib.metadata import version

        info["pilkit"] = version("pilkit")
        info["flask_imagekit"] = version("imagekit-flask")
    except Exception:  # pragma: no cover - metadata missing
        pass
    pyvips = load_pyvips()
    if pyvips is not None:
        info["pyvips"] = pyvips.__version__
        info["libvips"] = ".".join(str(pyvips.version(i)) for i in range(3))
        info["vips_concurrency"] = pyvips.concurrency_get()
    return info


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    if commit:
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        commit += "+dirty" if dirty else ""
    return commit or None


def write_results(name: str, payload: Mapping[str, t.Any]) -> Path:
    """Write ``payload`` (plus the environment) to ``bench/results/<name>.json``."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    data = clean_floats({"benchmark": name, "environment": environment(), **payload})
    text = json.dumps(data, indent=2, default=_json_default, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def _json_default(value: object) -> t.Any:
    if isinstance(value, Target):
        return value.as_dict()
    if isinstance(value, Path):
        return str(value)
    msg = f"not JSON serialisable: {value!r}"
    raise TypeError(msg)


def clean_floats(value: t.Any) -> t.Any:
    """Replace inf/nan (not valid JSON) by strings, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Target):
        return clean_floats(value.as_dict())
    if isinstance(value, dict):
        return {k: clean_floats(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_floats(v) for v in value]
    return value


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: no FLASK_* leaking in, repo root importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "BENCH_"))}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
    )
    env.update(extra)
    return env


def iter_chunks(items: Sequence[t.Any], parts: int) -> Iterator[list[t.Any]]:
    """``items`` split into ``parts`` interleaved slices (``items[i::parts]``)."""
    for index in range(parts):
        yield list(items[index::parts])
