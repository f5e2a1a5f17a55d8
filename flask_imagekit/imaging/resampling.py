"""The fast path's resize: one LANCZOS pass, split into bands on threads when large."""

from __future__ import annotations

import concurrent.futures
import os
import threading

from PIL import Image

from ..processors.resampling import lanczos_resize

__all__ = ["resize", "resize_bands", "set_resize_threads"]

# Large outputs are resized in horizontal bands on several threads (Pillow lets
# go of the GIL while it resamples). Worker processes of `generate --jobs` use one.
_BAND_MIN_PIXELS = 250_000
_resize_threads = min(2, os.cpu_count() or 1)
_resize_pool: concurrent.futures.ThreadPoolExecutor | None = None
_resize_pool_lock = threading.Lock()

# Pillow resamples RGBA and LA premultiplied, converting the whole image for each call.
_PREMULTIPLIED = {"RGBA": "RGBa", "LA": "La"}


def _forget_pool() -> None:
    # Threads do not survive fork: a forked child (worker, server) makes its own pool.
    global _resize_pool, _resize_pool_lock
    _resize_pool = None
    _resize_pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def set_resize_threads(threads: int) -> None:
    """Use up to ``threads`` threads for one large resize (1: no threads)."""
    global _resize_threads
    _resize_threads = max(1, threads)


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    global _resize_pool
    with _resize_pool_lock:
        if _resize_pool is None:
            _resize_pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=_resize_threads, thread_name_prefix="imagekit-resize"
            )
        return _resize_pool


def resize_bands(size: tuple[int, int]) -> int:
    """How many bands :func:`resize` splits a resize to ``size`` into."""
    width, height = size
    bands = _resize_threads
    if bands < 2 or width * height < _BAND_MIN_PIXELS or height < 8 * bands:
        return 1
    return bands


def resize(
    img: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float]
) -> Image.Image:
    """Lanczos-resize the region ``box`` of ``img`` to ``size``, in bands when large.

    Each band is resized as :func:`~flask_imagekit.processors.resampling.lanczos_resize`
    resizes a whole image.
    """
    bands = resize_bands(size)
    if bands == 1:
        return lanczos_resize(img, size, box)
    width, height = size
    left, top, right, bottom = box
    step = (bottom - top) / height
    edges = [round(height * index / bands) for index in range(bands + 1)]
    # Convert to premultiplied once here rather than once per band.
    premultiplied = _PREMULTIPLIED.get(img.mode)
    source = img.convert(premultiplied) if premultiplied else img
    futures = [
        _pool().submit(
            lanczos_resize,
            source,
            (width, y1 - y0),
            (left, top + y0 * step, right, top + y1 * step),
        )
        for y0, y1 in zip(edges, edges[1:], strict=False)
    ]
    result = Image.new(source.mode, size)
    for y0, future in zip(edges, futures, strict=False):
        result.paste(future.result(), (0, y0))
    del source, futures
    if premultiplied:
        result = result.convert(img.mode)
    result.info = dict(img.info)
    return result
