"""Fast path vs a plain full-decode pipeline, side by side in one run.

For each case, runs flask_imagekit's ``ImageSpec.generate()`` and the pilkit-style
pipeline django-imagekit uses (full decode, LANCZOS resize, save) alternately,
takes the median of each, and prints the ratio plus the PSNR of the fast path's
pixels against a full-resolution reference (before encoding).

    python bench/fastpath.py [--runs 9] [--json results.json]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import statistics
import sys
import time
import typing as t

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageStat

from flask_imagekit import ImageSpec
from flask_imagekit.imaging import decode, open_image
from flask_imagekit.processors import ResizeToFill, ResizeToFit


def photo_like(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """A photo-like image: smooth gradients, shapes, and fine noise texture."""
    w, h = size
    base = Image.linear_gradient("L").resize((w, h))
    img = Image.merge(
        "RGB",
        (base, base.transpose(Image.Transpose.ROTATE_90).resize((w, h)), ImageChops.invert(base)),
    )
    draw = ImageDraw.Draw(img)
    for i in range(12):
        x, y = (seed * 97 + i * 631) % w, (seed * 53 + i * 389) % h
        r = max(w, h) // (6 + i)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=((i * 40) % 256, (i * 90) % 256, 128))
    noise = Image.effect_noise((w // 4, h // 4), 40).resize((w, h), Image.Resampling.BICUBIC)
    img = Image.blend(img, Image.merge("RGB", (noise, noise, noise)), 0.25)
    return img.filter(ImageFilter.SMOOTH)


def jpeg_bytes(img: Image.Image, **kw: t.Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, **kw)
    return buf.getvalue()


def psnr(a: Image.Image, b: Image.Image) -> float:
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    mse = sum(v * v for v in ImageStat.Stat(diff).rms) / 3
    return float("inf") if mse == 0 else 20 * math.log10(255 / math.sqrt(mse))


def pilkit_style(data: bytes, processor: t.Any) -> bytes:
    """What django-imagekit does: full decode, pilkit processor, pilkit save."""
    from pilkit.utils import save_image

    img = Image.open(io.BytesIO(data))
    img.load()
    img = processor.process(img)
    out = io.BytesIO()
    save_image(img, out, "JPEG")
    return out.getvalue()


def pilkit_processor(kind: str, size: tuple[int, int]) -> t.Any:
    try:
        from pilkit import processors
    except ImportError:  # pragma: no cover - the bench extra installs pilkit
        sys.exit("pilkit is needed: pip install -e '.[bench]'")
    cls = processors.ResizeToFill if kind == "fill" else processors.ResizeToFit
    return cls(*size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    cases = [
        ("12 MP JPEG -> fill 300x200", (4000, 3000), "fill", (300, 200)),
        ("24 MP JPEG -> fill 300x200", (6000, 4000), "fill", (300, 200)),
        ("2 MP JPEG -> fill 300x200", (1600, 1200), "fill", (300, 200)),
        ("12 MP JPEG -> fit 1024", (4000, 3000), "fit", (1024, 1024)),
    ]
    results = []
    print(f"{'case':32} {'pilkit-style':>13} {'flask_imagekit':>15} {'speed-up':>9} {'PSNR':>8}")
    for label, size, kind, out in cases:
        data = jpeg_bytes(photo_like(size))
        ours_proc = (ResizeToFill if kind == "fill" else ResizeToFit)(*out)
        theirs_proc = pilkit_processor(kind, out)

        class Spec(ImageSpec):
            processors = [ours_proc]
            format = "JPEG"

        spec = Spec(source=io.BytesIO(data))
        ours_times, theirs_times = [], []
        for _ in range(args.runs):
            start = time.perf_counter()
            spec.generate()
            ours_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            pilkit_style(data, theirs_proc)
            theirs_times.append(time.perf_counter() - start)

        reference = Image.open(io.BytesIO(data))
        reference.load()
        reference = ours_proc.process(reference)
        fast, rest = decode(open_image(io.BytesIO(data)), [ours_proc])
        for processor in rest:
            fast = processor.process(fast)
        quality = psnr(fast, reference)

        ours, theirs = statistics.median(ours_times), statistics.median(theirs_times)
        results.append(
            {
                "case": label,
                "pilkit_style_ms": round(theirs * 1000, 1),
                "flask_imagekit_ms": round(ours * 1000, 1),
                "speedup": round(theirs / ours, 2),
                "psnr_db": round(quality, 1),
                "runs": args.runs,
            }
        )
        print(
            f"{label:32} {theirs * 1000:11.1f}ms {ours * 1000:13.1f}ms "
            f"{theirs / ours:8.2f}x {quality:6.1f}dB"
        )
    if args.json:
        with open(args.json, "w") as fp:
            json.dump(results, fp, indent=2)


if __name__ == "__main__":
    main()
