"""The outputs of specs decoded together, encoded on a few threads at once.

Specs that share a decode (see :mod:`flask_imagekit.specs.sharing`) are about to
be generated, all of them: the first of them to generate makes the images of
all and encodes every output on up to :func:`encode_threads` threads, itself
among them (Pillow's encoders let go of the GIL while they work); each spec's
``generate()`` then returns its own output or raises its own error. The
generating thread makes the images (processors run where they always did) while
the others start encoding those made, the slowest first (AVIF, then WebP, then
the others; the largest first), so that the threads finish together; each
encode runs in a copy of the generating thread's context (the app context
included), and no thread outlives that first ``generate()``. A candidate as wide
as its spec's output or wider is left to its own ``generate()``: ``picture()``
and the CLI let those go.

An output waits with its spec until it is taken; :meth:`ImageSpec.discard
<flask_imagekit.specs.ImageSpec.discard>` drops it, and so does letting go of
the spec. With one thread (as in the worker processes of ``flask imagekit
generate --jobs``, which already use every core), or a memory budget that admits
one encoder at a time, each output is encoded by its own spec's ``generate()``,
one at a time, as a spec alone is.
"""

from __future__ import annotations

import contextvars
import functools
import heapq
import os
import threading
import typing as t
import weakref

if t.TYPE_CHECKING:
    import io

    from . import ImageSpec
    from .sharing import Share

__all__ = [
    "Batch",
    "Encode",
    "encode_in_threads",
    "encode_order",
    "encode_threads",
    "fitting_threads",
    "set_encode_threads",
]

#: Encodes one spec's output from its share of the decode.
Encode = t.Callable[["ImageSpec", "Share"], "io.BytesIO"]

_threads = min(os.cpu_count() or 1, 4)

# Measured on photos with the default settings: AVIF takes about twice WebP's
# time for the same image, and WebP four times JPEG's.
_FORMAT_ORDER = {"AVIF": 0, "WEBP": 1}


def set_encode_threads(threads: int) -> None:
    """Encode the outputs of specs decoded together on up to ``threads`` threads.

    1 encodes each output in its own spec's ``generate()``, as a spec alone is.
    The default is the number of CPUs, at most 4.
    """
    global _threads
    _threads = max(1, threads)


def encode_threads() -> int:
    """How many threads encode the outputs of specs decoded together at most."""
    return _threads


def encode_order(format: str, size: tuple[int, int]) -> tuple[int, int]:
    """The sort key of an encode that puts the slowest first."""
    return _FORMAT_ORDER.get(format.upper(), 2), -size[0] * size[1]


def fitting_threads(
    alive: int, encodes: t.Sequence[tuple[int, int]], max_bytes: int | None
) -> int:
    """How many of ``encodes`` may run at once within ``max_bytes`` (at least 1).

    ``alive``: bytes of the images kept throughout; ``encodes``: (memory each
    encoder takes beyond its image, bytes its output may keep until taken).
    """
    if max_bytes is None:
        return max(1, len(encodes))
    memory = alive + sum(output for _, output in encodes)
    fitting = 0
    for extra in sorted((extra for extra, _ in encodes), reverse=True):
        memory += extra
        if memory > max_bytes:
            break
        fitting += 1
    return max(1, fitting)


def encode_in_threads(jobs: t.Iterable[tuple[t.Any, t.Callable[[], None]]], threads: int) -> None:
    """Run ``jobs`` ((sort key, job) pairs; jobs keep their own errors) on ``threads`` threads.

    This thread walks ``jobs`` (which may make each job's image as it goes) while
    the other threads, one started with each job after the first, run those at
    hand, the least key first; then it runs jobs too. Returns once every job is
    done and the other threads have ended.
    """
    queue: list[tuple[t.Any, int, t.Callable[[], None]]] = []
    ready = threading.Condition()
    walked = False
    helpers: list[threading.Thread] = []

    def take() -> t.Callable[[], None] | None:
        with ready:
            while not queue and not walked:
                ready.wait()
            return heapq.heappop(queue)[2] if queue else None

    def work() -> None:
        while (job := take()) is not None:
            job()

    try:
        try:
            for number, (key, job) in enumerate(jobs):
                with ready:
                    heapq.heappush(queue, (key, number, job))
                    ready.notify()
                if 0 < number < threads:
                    helper = threading.Thread(target=work, name="imagekit-encode", daemon=True)
                    helpers.append(helper)
                    helper.start()
        finally:
            with ready:
                walked = True
                ready.notify_all()
        work()
    except BaseException:
        with ready:
            queue.clear()
        raise
    finally:
        for helper in helpers:
            helper.join()


class Batch:
    """The encodes of the specs of one decode: run once, by the first to generate."""

    def __init__(
        self, members: t.Sequence[tuple[Share, ImageSpec]], encode: Encode, cap: int
    ) -> None:
        # Weak: a spec let go of drops its share, and its output, with it.
        self._members = [(weakref.ref(share), weakref.ref(spec)) for share, spec in members]
        self._encode = encode
        #: The most encodes the memory budget admits at once.
        self.cap = cap
        self._lock = threading.Lock()
        self._started = False
        self._made = threading.Event()
        self._done = threading.Event()

    def run_once(self) -> None:
        """Encode every member's output now (the first call), or wait until they are."""
        with self._lock:
            first, self._started = not self._started, True
        if not first:
            self._done.wait()
            return
        try:
            self._run()
        finally:
            self._made.set()
            self._done.set()
            self._members = []

    def wait_until_made(self) -> None:
        """Wait until the images of the batch are made, if it is running."""
        if self._started:
            self._made.wait()

    def _run(self) -> None:
        threads = min(encode_threads(), self.cap)
        if threads < 2:
            return
        members = [(share(), spec()) for share, spec in self._members]
        encode_in_threads(self._jobs(members), threads)

    def _jobs(
        self, members: list[tuple[Share | None, ImageSpec | None]]
    ) -> t.Iterator[tuple[tuple[int, int], t.Callable[[], None]]]:
        """Each member's encode, once its image is made (the other threads start meanwhile)."""
        try:
            for share, spec in members:
                if share is None or spec is None or share.released:
                    continue
                try:
                    img = share.image(spec)
                    fmt = spec.output_format(share.original_format)
                except Exception:
                    continue  # its own generate() raises the error
                if not share.scales_nothing():
                    # In the context of the generate() (the app's, for specs that read it).
                    run = contextvars.copy_context().run
                    yield (
                        encode_order(fmt, img.size),
                        functools.partial(run, self._job, share, spec),
                    )
        finally:
            self._made.set()

    def _job(self, share: Share, spec: ImageSpec) -> None:
        try:
            share.keep_encoded(self._encode(spec, share), None)
        except Exception as exc:
            share.keep_encoded(None, exc)
        finally:
            share.release()
