"""pyvips doing the batch benchmark's work, in its own process (as a user would run it).

For each source, three ``thumbnail`` calls (shrink-on-load, auto-rotate): fill
300x200 JPEG, fit 1024 JPEG, fill 150x150 WebP, written to files; sources are
spread over ``--jobs`` worker processes::

    python -m bench.vipsbatch --sources-dir DIR --out DIR [--sources N] [--jobs 2]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import glob
import multiprocessing
import os
import typing as t

#: name -> (width, height, crop, format)
OUTPUTS: dict[str, tuple[int, int, str | None, str]] = {
    "fill300": (300, 200, "centre", "JPEG"),
    "fit1024": (1024, 1024, None, "JPEG"),
    "fill150webp": (150, 150, "centre", "WEBP"),
}
_SUFFIX = {"JPEG": ".jpg", "WEBP": ".webp"}
_OPTIONS: dict[str, dict[str, t.Any]] = {
    "JPEG": {"Q": 75, "optimize_coding": True, "keep": 8},
    "WEBP": {"Q": 80, "effort": 4, "keep": 8},
}


def work(path: str, out_dir: str) -> int:
    """Write the three outputs of one source; return how many were written."""
    # Imported in the workers only: libvips threads and fork do not mix.
    import pyvips  # type: ignore[import-untyped]

    pyvips.cache_set_max(0)
    stem = os.path.splitext(os.path.basename(path))[0]
    for name, (width, height, crop, fmt) in OUTPUTS.items():
        options: dict[str, t.Any] = {"height": height}
        if crop:
            options["crop"] = crop
        image = pyvips.Image.thumbnail(path, width, **options)
        image.write_to_file(os.path.join(out_dir, f"{stem}_{name}{_SUFFIX[fmt]}"), **_OPTIONS[fmt])
    return len(OUTPUTS)


def main(argv: t.Sequence[str] | None = None) -> None:
    """Run the batch; print how many files were written."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--sources", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    paths = sorted(glob.glob(os.path.join(args.sources_dir, "*.jpg")))
    if args.sources is not None:
        paths = paths[: args.sources]
    os.makedirs(args.out, exist_ok=True)
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
        written = sum(pool.map(work, paths, [args.out] * len(paths)))
    print(f"Wrote {written} files from {len(paths)} sources.")


if __name__ == "__main__":
    main()
