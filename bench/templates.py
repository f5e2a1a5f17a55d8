"""Benchmark 3 - templates: the cost of ``generateimage`` / ``thumbnail`` on a page.

A page of 50 images whose cache files already exist is rendered, per image:

* ``plain``: a literal ``<img src=.. width=.. height=..>`` per image (the baseline);
* ``Optimistic`` (state cache: the default in-process SimpleCache);
* ``JustInTime`` + SimpleCache (the default);
* ``JustInTime`` + Redis state (``IMAGEKIT_CACHE_BACKEND = {"CACHE_TYPE":
  "RedisCache", "CACHE_REDIS_URL": "redis://127.0.0.1:6379/14"}``; database 14
  is flushed first), skipped when Redis is not reachable.

Each helper (``generateimage``, ``thumbnail``) is measured separately. Every
sample renders the page ``--inner`` times; samples alternate between the
contenders; the medians are compared with the plain page, per image. The
storage is wrapped to count the calls that may do I/O (``url()`` is counted
apart: it does none), and the state cache to count its operations, in one
extra render of each contender: the state cache counted is the backing
cachelib cache (for Redis, the network round trips), behind any local tier.

    python -m bench.templates [--samples 15] [--inner 20] [--quick] [--profile KEY]
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import functools
import io
import pstats
import re
import shutil
import socket
import statistics
import sys
import tempfile
import typing as t
from pathlib import Path

from flask import Flask

from flask_imagekit import ImageKit, ImageSpec
from flask_imagekit.processors import ResizeToFill
from flask_imagekit.storage import FileSystemStorage

if __package__ in (None, ""):  # run as a file: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    RESULTS_DIR,
    Target,
    alternate,
    check_idle,
    log,
    photo_like,
    table,
    target_table,
    write_results,
)

PAGE_SIZE = 50
MIN_SAMPLES = 7
DEFAULT_SAMPLES = 15
DEFAULT_INNER = 20
REDIS_URL = "redis://127.0.0.1:6379/14"
OPTIMISTIC = "flask_imagekit.cachefiles.strategies.Optimistic"

TEMPLATES = {
    "plain": (
        '{% for name in names %}<img src="/media/{{ name }}" width="300" height="200">\n'
        "{% endfor %}"
    ),
    "generateimage": (
        '{% for name in names %}{{ generateimage("bench:thumb", source=name) }}\n{% endfor %}'
    ),
    "thumbnail": '{% for name in names %}{{ thumbnail("300x200", name) }}\n{% endfor %}',
}

#: App configurations: key -> (label, extra config).
CONFIGS: dict[str, tuple[str, dict[str, t.Any]]] = {
    "optimistic": ("Optimistic", {"IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY": OPTIMISTIC}),
    "jit-simple": ("JustInTime + SimpleCache", {}),
    "jit-redis": (
        "JustInTime + Redis",
        {"IMAGEKIT_CACHE_BACKEND": {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": REDIS_URL}},
    ),
}


def _has_local_tier() -> bool:
    from flask_imagekit.config import DEFAULTS

    return "IMAGEKIT_LOCAL_STATE_TIMEOUT" in DEFAULTS


if _has_local_tier():
    # The same with the local in-process tier off: one Redis round trip per image.
    CONFIGS["jit-redis-nolocal"] = (
        "JustInTime + Redis, local tier off",
        {**CONFIGS["jit-redis"][1], "IMAGEKIT_LOCAL_STATE_TIMEOUT": 0},
    )

#: Targets: config key -> (limit in us/img over plain, note).
LIMITS = {
    "optimistic": (5.0, ""),
    "jit-simple": (10.0, ""),
    "jit-redis": (
        50.0,
        "with the local in-process tier in front of Redis (default)"
        if _has_local_tier()
        else "no local in-process tier in front of Redis exists yet: a round trip per image",
    ),
}

_IO_METHODS = ("open", "save", "exists", "delete", "size", "listdir", "walk", "path")
_CACHE_METHODS = ("get", "get_many", "get_dict", "set", "set_many", "add", "delete", "has")


class CountingStorage:
    """A FileSystemStorage wrapper that counts the calls that may do I/O.

    ``url()`` does no I/O and is on the hot path: it is the wrapped storage's own
    bound method (no overhead) unless :meth:`count_urls` turns counting on.
    """

    def __init__(self, inner: FileSystemStorage) -> None:
        self.inner = inner
        self.location = inner.location
        self.base_url = inner.base_url
        self.calls: collections.Counter[str] = collections.Counter()
        self.url: t.Callable[[str], str] = inner.url

    def count_urls(self, on: bool) -> None:
        """Count ``url()`` calls too (only while measuring calls, not time)."""
        if not on:
            self.url = self.inner.url
            return

        def url(name: str) -> str:
            self.calls["url"] += 1
            return self.inner.url(name)

        self.url = url

    def _count(self, method: str, *args: t.Any, **kwargs: t.Any) -> t.Any:
        self.calls[method] += 1
        return getattr(self.inner, method)(*args, **kwargs)

    def open(self, name: str, mode: str = "rb") -> t.Any:
        """Counted :meth:`FileSystemStorage.open`."""
        return self._count("open", name, mode)

    def save(self, name: str, content: t.Any, *, overwrite: bool = True) -> str:
        """Counted :meth:`FileSystemStorage.save`."""
        return t.cast(str, self._count("save", name, content, overwrite=overwrite))

    def exists(self, name: str) -> bool:
        """Counted :meth:`FileSystemStorage.exists`."""
        return bool(self._count("exists", name))

    def delete(self, name: str) -> None:
        """Counted :meth:`FileSystemStorage.delete`."""
        self._count("delete", name)

    def size(self, name: str) -> int:
        """Counted :meth:`FileSystemStorage.size`."""
        return int(self._count("size", name))

    def listdir(self, path: str = "") -> tuple[list[str], list[str]]:
        """Counted :meth:`FileSystemStorage.listdir`."""
        return t.cast(tuple[list[str], list[str]], self._count("listdir", path))

    def walk(self, path: str = "") -> t.Iterator[str]:
        """Counted :meth:`FileSystemStorage.walk`."""
        return t.cast(t.Iterator[str], self._count("walk", path))

    def path(self, name: str) -> str:
        """Counted :meth:`FileSystemStorage.path`."""
        return t.cast(str, self._count("path", name))


class CacheCounter:
    """Counts the operations on a state cache while active (patches the instance)."""

    def __init__(self, cache: t.Any) -> None:
        self.cache = cache
        self.calls: collections.Counter[str] = collections.Counter()

    def __enter__(self) -> CacheCounter:
        for name in _CACHE_METHODS:
            original = getattr(self.cache, name, None)
            if original is not None:
                setattr(self.cache, name, self._wrap(name, original))
        return self

    def _wrap(self, name: str, original: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
        def counted(*args: t.Any, **kwargs: t.Any) -> t.Any:
            self.calls[name] += 1
            return original(*args, **kwargs)

        return counted

    def __exit__(self, *exc: object) -> None:
        for name in _CACHE_METHODS:
            self.cache.__dict__.pop(name, None)


class Thumb(ImageSpec):
    """The page's spec: 300x200 crop, JPEG."""

    processors = [ResizeToFill(300, 200)]
    format = "JPEG"


def redis_up() -> bool:
    """Whether Redis answers on 127.0.0.1:6379."""
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


def flush_redis(url: str = REDIS_URL) -> None:
    """Empty the benchmark's Redis database (``url``: 14 unless told)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def make_sources(media_root: Path, seed: int = 3) -> list[str]:
    """50 source JPEGs (640x480) under ``page/`` in the media root; return their names."""
    buf = io.BytesIO()
    photo_like((640, 480), seed).save(buf, "JPEG", quality=85)
    names = []
    for index in range(PAGE_SIZE):
        path = media_root / "page" / f"{index:02d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buf.getvalue())
        names.append(f"page/{index:02d}.jpg")
    return names


class Page:
    """One contender: an app, a compiled template and its context."""

    def __init__(
        self,
        key: str,
        label: str,
        app: Flask,
        storage: CountingStorage,
        template: str,
        context: dict[str, t.Any],
    ) -> None:
        self.key = key
        self.label = label
        self.app = app
        self.storage = storage
        self.template = app.jinja_env.from_string(template)
        self.context = context

    def render(self, times: int = 1) -> str:
        """Render the page ``times`` times in one request context; return the last."""
        html = ""
        with self.app.test_request_context():
            for _ in range(times):
                html = self.template.render(**self.context)
        return html


def make_app(
    work: Path,
    key: str,
    media_root: Path,
    extra: dict[str, t.Any],
    spec: tuple[str, type[ImageSpec]] = ("bench:thumb", Thumb),
) -> tuple[Flask, CountingStorage]:
    """A Flask app with ImageKit on the shared media root, through a counting storage.

    ``spec`` is registered under its id; ``extra`` is the contender's own config.
    """
    storage = CountingStorage(FileSystemStorage(media_root, "/media/"))
    app = Flask(f"bench-{key}", instance_path=str(work / f"instance-{key}"))
    app.config.update(IMAGEKIT_MEDIA_ROOT=str(media_root), IMAGEKIT_DEFAULT_FILE_STORAGE=storage)
    app.config.update(extra)
    kit = ImageKit(app)
    kit.register.generator(*spec)
    return app, storage


def check_page(html: str, key: str) -> None:
    """The page has 50 images with 50 distinct URLs."""
    urls = re.findall(r'<img src="([^"]+)"', html)
    if len(urls) != PAGE_SIZE or len(set(urls)) != PAGE_SIZE:
        msg = f"{key}: expected {PAGE_SIZE} distinct images, got {len(set(urls))}:\n{html[:500]}"
        raise RuntimeError(msg)


def build_pages(work: Path, media_root: Path, names: list[str], with_redis: bool) -> list[Page]:
    """Every contender, its files generated and its state cache warm."""
    pages: list[Page] = []
    base_app, base_storage = make_app(work, "plain", media_root, {})
    context = {"names": names}
    pages.append(Page("plain", "plain <img>", base_app, base_storage, TEMPLATES["plain"], context))
    for key, (label, extra) in CONFIGS.items():
        if key.startswith("jit-redis") and not with_redis:
            continue
        if key == "jit-redis":
            flush_redis()  # once: the Redis apps share their state keys
        app, storage = make_app(work, key, media_root, extra)
        for helper in ("generateimage", "thumbnail"):
            page = Page(
                f"{key}/{helper}", f"{label} ({helper})", app, storage, TEMPLATES[helper], context
            )
            if key == "optimistic":
                # Optimistic never generates on access: generate, as a source save would.
                with app.app_context():
                    from flask_imagekit.templating import generateimage, thumbnail

                    for name in names:
                        file = (
                            thumbnail("300x200", name)
                            if helper == "thumbnail"
                            else generateimage("bench:thumb", source=name)
                        )
                        file.generate()
            check_page(page.render(), page.key)  # generates (JIT), fills the state cache
            check_page(page.render(), page.key)
            pages.append(page)
    return pages


def count_calls(page: Page) -> dict[str, dict[str, float]]:
    """Storage and state cache calls per image in one render of ``page``."""
    page.storage.calls.clear()
    page.storage.count_urls(True)
    try:
        with page.app.app_context():
            from flask_imagekit.extension import current_state

            cache = current_state().state_cache
        with CacheCounter(cache) as counter:
            page.render()
    finally:
        page.storage.count_urls(False)
    storage = {k: v / PAGE_SIZE for k, v in sorted(page.storage.calls.items())}
    return {
        "storage_io": {k: v for k, v in storage.items() if k != "url"},
        "storage_url": {"url": storage.get("url", 0.0)},
        "state_cache": {k: v / PAGE_SIZE for k, v in sorted(counter.calls.items())},
    }


def profile_page(page: Page, bench: str, unit: str, renders: int) -> Path:
    """cProfile ``renders`` renders of a page of ``unit``; write the top of the stats."""
    profiler = cProfile.Profile()
    with page.app.test_request_context():
        profiler.enable()
        for _ in range(renders):
            page.template.render(**page.context)
        profiler.disable()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"profile-{bench}-{page.key.replace('/', '-')}.txt"
    with path.open("w", encoding="utf-8") as fp:
        fp.write(f"{renders} renders of {PAGE_SIZE} {unit}: {page.label}\n")
        stats = pstats.Stats(profiler, stream=fp)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(40)
    return path


def parse_args(argv: t.Sequence[str] | None) -> argparse.Namespace:
    """Command line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=None, help="samples per contender (15)")
    parser.add_argument("--inner", type=int, default=DEFAULT_INNER, help="renders per sample")
    parser.add_argument("--quick", action="store_true", help=f"{MIN_SAMPLES} samples")
    parser.add_argument("--no-redis", action="store_true", help="leave Redis out")
    parser.add_argument(
        "--profile",
        default=None,
        help="also cProfile one contender, e.g. jit-redis/generateimage",
    )
    return parser.parse_args(argv)


def main(argv: t.Sequence[str] | None = None) -> dict[str, t.Any]:
    """Run the benchmark; print the tables; write ``bench/results/templates.json``."""
    args = parse_args(argv)
    samples = args.samples or (MIN_SAMPLES if args.quick else DEFAULT_SAMPLES)
    with_redis = not args.no_redis and redis_up()
    if not with_redis and not args.no_redis:
        log("Redis is not reachable on 127.0.0.1:6379: its rows are left out")
    work = Path(tempfile.mkdtemp(prefix="imagekit-bench-templates-"))
    try:
        media_root = work / "media"
        media_root.mkdir()
        names = make_sources(media_root)
        busy = check_idle("templates")
        log("templates: generating the page's files and warming the state caches")
        pages = build_pages(work, media_root, names, with_redis)
        log(f"templates: {samples} samples x {args.inner} renders x {PAGE_SIZE} images each")
        times = alternate(
            {page.key: functools.partial(page.render, args.inner) for page in pages},
            samples,
        )
        calls = {page.key: count_calls(page) for page in pages}
        profile = None
        if args.profile:
            page = next(p for p in pages if p.key == args.profile)
            profile = profile_page(page, "templates", "images", renders=200)
    finally:
        if with_redis:
            flush_redis()
        shutil.rmtree(work, ignore_errors=True)

    per_render = args.inner * PAGE_SIZE
    plain = statistics.median(times["plain"]) / per_render
    results: dict[str, dict[str, t.Any]] = {}
    rows = []
    for page in pages:
        per_image = [v / per_render * 1e6 for v in times[page.key]]
        median = statistics.median(per_image)
        over = median - plain * 1e6
        io_calls = sum(calls[page.key]["storage_io"].values())
        results[page.key] = {
            "label": page.label,
            "median_us_per_image": median,
            "min_us_per_image": min(per_image),
            "max_us_per_image": max(per_image),
            "over_plain_us_per_image": over,
            "samples_us_per_image": [round(v, 3) for v in per_image],
            **calls[page.key],
        }
        cache_ops = ", ".join(f"{k} {v:g}" for k, v in calls[page.key]["state_cache"].items())
        rows.append(
            [
                page.label,
                f"{median:.2f}",
                "-" if page.key == "plain" else f"{over:+.2f}",
                f"{io_calls:g}",
                f"{calls[page.key]['storage_url']['url']:g}",
                cache_ops or "-",
            ]
        )
    found: list[Target] = []
    for key, (limit, note) in LIMITS.items():
        for helper in ("generateimage", "thumbnail"):
            entry = results.get(f"{key}/{helper}")
            label = f"{CONFIGS[key][0]} ({helper})"
            over = None if entry is None else entry["over_plain_us_per_image"]
            found.append(Target(f"{label}: over plain", over, limit, "us/img", False, note))
            if key == "optimistic" and entry is not None:
                io_calls = sum(entry["storage_io"].values())
                found.append(Target(f"{label}: storage I/O calls", io_calls, 0, "/img", False))
    print(
        f"\nTemplates: page of {PAGE_SIZE} existing images, median of {samples} samples "
        f"x {args.inner} renders"
    )
    print(
        table(
            [
                "contender",
                "us/img",
                "over plain",
                "storage I/O/img",
                "url()/img",
                "backing state cache ops/img",
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
        "plain_us_per_image": plain * 1e6,
        "contenders": results,
        "targets": found,
    }
    if profile is not None:
        payload["profile"] = str(profile)
        print(f"\nProfile: {profile}")
    path = write_results("templates", payload)
    print(f"\nResults: {path}")
    return {"name": "templates", "targets": found, "results": path}


if __name__ == "__main__":
    main()
