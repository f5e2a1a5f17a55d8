"""Benchmark - pictures: the cost of ``picture()`` on a page, over hand-written markup.

A page of 50 ``<picture>`` elements whose files already exist (3 formats: AVIF,
WebP and the spec's JPEG, x 4 widths each: 12 cache files a picture) is rendered:

* ``hand-written``: the same ``<picture>`` markup with the URLs, sizes and
  dimensions given to the template (the baseline);
* ``Optimistic`` (state cache: the default in-process SimpleCache);
* ``JustInTime`` + SimpleCache (the default), which checks each candidate's state;
* ``JustInTime`` + Redis state (``IMAGEKIT_CACHE_BACKEND = {"CACHE_TYPE":
  "RedisCache", "CACHE_REDIS_URL": "redis://127.0.0.1:6379/12"}``; database 12 is
  flushed first), with the local in-process tier (the default), and without it for
  comparison; skipped when Redis is not reachable;
* ``OnRequest`` (signed URLs), when the strategy exists;
* Optimistic and JustInTime + SimpleCache with nothing remembered between renders
  (what a page costs the first time after a state changed, or for a spec whose
  output depends on more than its arguments): for information, no target.

Every sample renders the page ``--inner`` times; samples alternate between the
contenders; the medians are compared with the hand-written page, per picture.
One extra render of each contender counts the state cache operations (the
backing cachelib cache: for Redis, the network round trips) and the storage
calls that may do I/O. The pages of JustInTime and Optimistic are checked to be
byte for byte the hand-written one.

    python -m bench.pictures [--samples 15] [--inner 20] [--quick] [--profile KEY]
"""

from __future__ import annotations

import argparse
import functools
import html
import re
import shutil
import statistics
import sys
import tempfile
import typing as t
from pathlib import Path

from flask import Flask

from flask_imagekit import ImageSpec
from flask_imagekit.globals import STATE_KEY
from flask_imagekit.processors import ResizeToFit

if __package__ in (None, ""):  # run as a file: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    Target,
    alternate,
    check_idle,
    log,
    table,
    target_table,
    write_results,
)
from bench.templates import (  # noqa: E402
    CacheCounter,
    CountingStorage,
    Page,
    flush_redis,
    make_sources,
    profile_page,
    redis_up,
)
from bench.templates import make_app as page_app  # noqa: E402

PAGE_SIZE = 50
MIN_SAMPLES = 7
DEFAULT_SAMPLES = 15
DEFAULT_INNER = 20
REDIS_URL = "redis://127.0.0.1:6379/12"
STRATEGIES = "flask_imagekit.cachefiles.strategies"
#: With the spec's 320-pixel output: 80, 160, 240 and 320 wide.
WIDTHS = [80, 160, 240]
FORMATS = ["AVIF", "WEBP"]

PICTURE_TEMPLATE = (
    '{% for name in names %}{{ picture("bench:photo", name, attrs={"alt": "Photo"}) }}\n'
    "{% endfor %}"
)
HAND_WRITTEN_TEMPLATE = (
    "{% for p in pictures %}<picture>"
    '<source type="image/avif" srcset="{{ p.avif }}" sizes="{{ p.sizes }}">'
    '<source type="image/webp" srcset="{{ p.webp }}" sizes="{{ p.sizes }}">'
    '<img src="{{ p.src }}" srcset="{{ p.jpeg }}" sizes="{{ p.sizes }}" '
    'width="{{ p.width }}" height="{{ p.height }}" loading="lazy" decoding="async" '
    'alt="{{ p.alt }}"></picture>\n{% endfor %}'
)

#: App configurations: key -> (label, extra config, the markup is the hand-written one).
CONFIGS: dict[str, tuple[str, dict[str, t.Any], bool]] = {
    "optimistic": (
        "Optimistic",
        {"IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY": f"{STRATEGIES}.Optimistic"},
        True,
    ),
    "jit-simple": ("JustInTime + SimpleCache", {}, True),
    "jit-redis": (
        "JustInTime + Redis (local tier)",
        {"IMAGEKIT_CACHE_BACKEND": {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": REDIS_URL}},
        True,
    ),
    "jit-redis-nolocal": (
        "JustInTime + Redis, local tier off",
        {
            "IMAGEKIT_CACHE_BACKEND": {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": REDIS_URL},
            "IMAGEKIT_LOCAL_STATE_TIMEOUT": 0,
        },
        True,
    ),
    "optimistic-unremembered": (
        "Optimistic, nothing remembered",
        {"IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY": f"{STRATEGIES}.Optimistic"},
        True,
    ),
    "jit-simple-unremembered": ("JustInTime + SimpleCache, nothing remembered", {}, True),
    "onrequest": (
        "OnRequest",
        {
            "IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY": f"{STRATEGIES}.OnRequest",
            "SECRET_KEY": "bench-pictures",
        },
        False,  # its URLs carry a token
    ),
}

#: Targets: config key -> limit in us/picture over the hand-written page.
LIMITS = {"onrequest": 30.0, "optimistic": 30.0, "jit-redis": 60.0}

_TAG = re.compile(r"<(source|img) ([^>]*)>")
_ATTRIBUTE = re.compile(r'([a-z-]+)="([^"]*)"')


class Photo(ImageSpec):
    """The page's spec: at most 320 pixels wide, JPEG."""

    processors = [ResizeToFit(320, upscale=False)]
    format = "JPEG"


PHOTO = ("bench:photo", Photo)


def has_on_request() -> bool:
    """Whether the OnRequest strategy exists in this version."""
    import flask_imagekit.cachefiles.strategies as strategies

    return hasattr(strategies, "OnRequest")


def make_app(
    work: Path, key: str, media_root: Path, extra: dict[str, t.Any]
) -> tuple[Flask, CountingStorage]:
    """The page's app (its spec registered, its responsive widths and formats set)."""
    config = {"IMAGEKIT_RESPONSIVE_WIDTHS": WIDTHS, "IMAGEKIT_RESPONSIVE_FORMATS": FORMATS}
    return page_app(work, f"pictures-{key}", media_root, {**config, **extra}, PHOTO)


def hand_written_context(markup: str) -> dict[str, t.Any]:
    """What the hand-written template needs to write ``markup`` (a page of pictures)."""
    pictures = []
    for line in markup.strip().split("\n"):
        tags = [(kind, dict(_ATTRIBUTE.findall(attrs))) for kind, attrs in _TAG.findall(line)]
        (_, avif), (_, webp), (_, img) = tags
        values = {
            "avif": avif["srcset"],
            "webp": webp["srcset"],
            "jpeg": img["srcset"],
            "src": img["src"],
            "sizes": img["sizes"],
            "width": img["width"],
            "height": img["height"],
            "alt": img["alt"],
        }
        pictures.append({name: html.unescape(value) for name, value in values.items()})
    return {"pictures": pictures}


def check_page(markup: str, key: str) -> None:
    """50 pictures, each of 12 distinct files (3 formats x 4 widths)."""
    lines = markup.strip().split("\n")
    urls = {url for url in re.findall(r"([^\s\",]+) \d+w", markup)}
    if len(lines) != PAGE_SIZE or len(urls) != PAGE_SIZE * 12:
        msg = f"{key}: expected {PAGE_SIZE} pictures of 12 files, got {len(urls)} files:\n"
        raise RuntimeError(msg + markup[:800])


def build_pages(work: Path, media_root: Path, names: list[str], with_redis: bool) -> list[Page]:
    """Every contender, its files generated and its state warm."""
    pages: list[Page] = []
    context = {"names": names}
    reference: str | None = None
    for key, (label, extra, same_markup) in CONFIGS.items():
        if key.startswith("jit-redis") and not with_redis:
            continue
        if key == "onrequest" and not has_on_request():
            log("pictures: no OnRequest strategy in this version: its row is left out")
            continue
        if key == "jit-redis":
            flush_redis(REDIS_URL)  # once: the Redis apps share their state keys
        app, storage = make_app(work, key, media_root, extra)
        if key.endswith("-unremembered"):
            # Each render resolves every picture again (a spec whose output depends on
            # more than its arguments, or the first render after a state changed).
            app.extensions[STATE_KEY].file_memo.ttl = 0
        page = Page(key, label, app, storage, PICTURE_TEMPLATE, context)
        if key == "optimistic":
            # Optimistic never generates: the files of the JustInTime page come first.
            jit_app, jit_storage = make_app(work, "generate", media_root, {})
            maker = Page("generate", "", jit_app, jit_storage, PICTURE_TEMPLATE, context)
            reference = maker.render()
        for _ in range(3):  # generates (JustInTime), fills the state cache and the memo
            markup = page.render()
        check_page(markup, key)
        if same_markup and markup != reference:
            msg = f"{key}: the page differs from the hand-written one:\n{markup[:600]}"
            raise RuntimeError(msg)
        pages.append(page)
    assert reference is not None
    app, storage = make_app(work, "hand-written", media_root, {})
    base = Page(
        "hand-written",
        "hand-written <picture>",
        app,
        storage,
        HAND_WRITTEN_TEMPLATE,
        hand_written_context(reference),
    )
    if base.render() != reference:
        msg = f"the hand-written page differs from picture()'s:\n{base.render()[:600]}"
        raise RuntimeError(msg)
    return [base, *pages]


def count_calls(page: Page) -> dict[str, dict[str, float]]:
    """Storage and state cache calls per picture in one render of ``page``."""
    page.storage.calls.clear()
    with page.app.app_context():
        from flask_imagekit.globals import current_state

        cache = current_state().state_cache
    with CacheCounter(cache) as counter:
        page.render()
    return {
        "storage_io": {k: v / PAGE_SIZE for k, v in sorted(page.storage.calls.items())},
        "state_cache": {k: v / PAGE_SIZE for k, v in sorted(counter.calls.items())},
    }


def parse_args(argv: t.Sequence[str] | None) -> argparse.Namespace:
    """Command line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=None, help="samples per contender (15)")
    parser.add_argument("--inner", type=int, default=DEFAULT_INNER, help="renders per sample")
    parser.add_argument("--quick", action="store_true", help=f"{MIN_SAMPLES} samples")
    parser.add_argument("--no-redis", action="store_true", help="leave Redis out")
    parser.add_argument("--no-vips", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile", default=None, help="also cProfile one contender")
    return parser.parse_args(argv)


def main(argv: t.Sequence[str] | None = None) -> dict[str, t.Any]:
    """Run the benchmark; print the tables; write ``bench/results/pictures.json``."""
    args = parse_args(argv)
    samples = args.samples or (MIN_SAMPLES if args.quick else DEFAULT_SAMPLES)
    with_redis = not args.no_redis and redis_up()
    if not with_redis and not args.no_redis:
        log("Redis is not reachable on 127.0.0.1:6379: its rows are left out")
    work = Path(tempfile.mkdtemp(prefix="imagekit-bench-pictures-"))
    try:
        media_root = work / "media"
        media_root.mkdir()
        names = make_sources(media_root, seed=5)
        busy = check_idle("pictures")
        log("pictures: generating 600 files and warming the state caches")
        pages = build_pages(work, media_root, names, with_redis)
        log(f"pictures: {samples} samples x {args.inner} renders x {PAGE_SIZE} pictures each")
        times = alternate(
            {page.key: functools.partial(page.render, args.inner) for page in pages}, samples
        )
        calls = {page.key: count_calls(page) for page in pages}
        profile = None
        if args.profile:
            page = next(p for p in pages if p.key == args.profile)
            profile = profile_page(page, "pictures", "pictures", renders=100)
    finally:
        if with_redis:
            flush_redis(REDIS_URL)
        shutil.rmtree(work, ignore_errors=True)

    per_render = args.inner * PAGE_SIZE
    base = statistics.median(times["hand-written"]) / per_render * 1e6
    results: dict[str, dict[str, t.Any]] = {}
    rows = []
    for page in pages:
        per_picture = [v / per_render * 1e6 for v in times[page.key]]
        median = statistics.median(per_picture)
        over = median - base
        results[page.key] = {
            "label": page.label,
            "median_us_per_picture": median,
            "min_us_per_picture": min(per_picture),
            "max_us_per_picture": max(per_picture),
            "over_hand_written_us_per_picture": over,
            "samples_us_per_picture": [round(v, 3) for v in per_picture],
            **calls[page.key],
        }
        ops = ", ".join(f"{k} {v:g}" for k, v in calls[page.key]["state_cache"].items())
        io_calls = ", ".join(f"{k} {v:g}" for k, v in calls[page.key]["storage_io"].items())
        rows.append(
            [
                page.label,
                f"{median:.2f}",
                "-" if page.key == "hand-written" else f"{over:+.2f}",
                ops or "-",
                io_calls or "-",
            ]
        )
    found = [
        Target(
            f"picture(), {CONFIGS[key][0]}: over hand-written",
            results[key]["over_hand_written_us_per_picture"] if key in results else None,
            limit,
            "us/picture",
            False,
        )
        for key, limit in LIMITS.items()
    ]
    print(
        f"\nPictures: page of {PAGE_SIZE} existing pictures (3 formats x 4 widths), "
        f"median of {samples} samples x {args.inner} renders"
    )
    print(
        table(
            [
                "contender",
                "us/picture",
                "over hand-written",
                "backing state cache ops/picture",
                "storage I/O/picture",
            ],
            rows,
        )
    )
    print("\nTargets")
    print(target_table(found))
    payload: dict[str, t.Any] = {
        "page_size": PAGE_SIZE,
        "samples": samples,
        "inner": args.inner,
        "cpu_busy_before": busy,
        "hand_written_us_per_picture": base,
        "contenders": results,
        "targets": found,
    }
    if profile is not None:
        payload["profile"] = str(profile)
        print(f"\nProfile: {profile}")
    path = write_results("pictures", payload)
    print(f"\nResults: {path}")
    return {"name": "pictures", "targets": found, "results": path}


if __name__ == "__main__":
    main()
