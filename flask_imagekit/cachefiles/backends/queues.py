"""Backends that generate cache files on workers: Celery and RQ.

The web process takes the file's GENERATING lock and sends a signed, JSON-safe
job (:func:`flask_imagekit.payloads.job_payload`); a worker checks it, rebuilds
the spec from its own app's registry and generates under that lock
(:func:`flask_imagekit.jobs.run_job`). A broker that cannot be reached makes the
web process generate inline, with one warning per outage window.
"""

from __future__ import annotations

import functools
import logging
import math
import typing as t

from flask import current_app

from ...exceptions import ImproperlyConfigured, MissingSource
from ...payloads import CELERY_TASK_NAME, job_payload
from ...statecache import Outage
from .base import CachedFileBackend, rendering
from .states import CACHE_FAILED, CacheFileState, unreachable_errors

if t.TYPE_CHECKING:
    from .. import ImageCacheFile

__all__ = ["RQ", "AsyncBackend", "Celery"]

logger = logging.getLogger("flask_imagekit.cachefiles.backends")


class AsyncBackend(CachedFileBackend):
    """Base class of backends that generate files on workers.

    ``generate`` marks the file GENERATING (the lock, so other page views do not
    enqueue it again) and sends a JSON-safe job signed with the app's
    ``SECRET_KEY``: generator id, source name, generator kwargs and the lock's
    token (:func:`flask_imagekit.jobs.job_payload`). A worker checks it and
    rebuilds the spec from its own app's registry
    (:func:`flask_imagekit.jobs.run_job`). Until the file exists, ``bool(file)``
    is False.

    Workers read sources by name from the source storage: a source that is not
    stored there (an upload, an open file, a path) is refused with
    :class:`~flask_imagekit.exceptions.UnstoredSource`, and an app without
    ``SECRET_KEY`` with :class:`~flask_imagekit.exceptions.ImproperlyConfigured`.
    """

    #: Files may be pending on a worker: ``bool()`` asks the state cache.
    is_async = True

    def __init__(self, *args: t.Any, queue_timeout: int = 600, **kwargs: t.Any) -> None:
        """``queue_timeout``: seconds a job may wait in the queue before it is sent again.

        A sent job is marked *queued* for that long, so page views do not send it
        again however long the queue; the worker that picks it up drops the mark
        and holds the GENERATING lock, renewed while it runs, so a worker killed
        mid-job frees the file after ``lock_timeout``.
        """
        super().__init__(*args, **kwargs)
        self.queue_timeout = max(self.lock_timeout, math.ceil(queue_timeout))
        #: The broker could not be reached: files are generated inline meanwhile.
        self.broker_down = Outage()

    def generate(self, file: ImageCacheFile, force: bool = False) -> tuple[int, int] | None:
        """Schedule the generation of ``file`` unless it exists or is under way.

        Returns the size of a file that exists and whose size is known, else None.
        """
        if not force:
            state, size = self.state_and_size(file)
            if state is CacheFileState.FAILED and rendering.get():
                self._raise_failure(file)
            if state is not CacheFileState.DOES_NOT_EXIST or self.is_queued(file):
                return size
            if self.source_missing(file):
                return None  # a worker just found the source gone: no new job per page view
        self.enqueue(file, force=force)
        return None

    def enqueue(self, file: ImageCacheFile, force: bool = False) -> bool:
        """Take the GENERATING lock and send the job; False if it is already taken.

        The job is built (and its source checked) before the lock is taken.
        """
        payload = job_payload(file, force=force)
        if self.broker_down.active:
            # Known to be down: no connection attempt per image.
            self.generate_now(file, force=force)
            return True
        token = t.cast(str, payload["token"])
        if not self._acquire(file, token):
            return False
        try:
            self.schedule(payload)
            self._call(file, "set", self.get_queued_key(file), token, timeout=self.queue_timeout)
        except broker_errors() as exc:
            self.release(file, token)
            self.broker_down.begin()
            logger.warning(
                "flask_imagekit: the broker of %r is unreachable (%s); generating inline for "
                "%d seconds.",
                self,
                exc,
                Outage.SECONDS,
            )
            self.generate_now(file, force=force)
        except BaseException:
            self.release(file, token)
            raise
        return True

    def schedule(self, payload: dict[str, t.Any]) -> None:
        """Send ``payload`` to a worker."""
        raise NotImplementedError

    def is_queued(self, file: ImageCacheFile) -> bool:
        """Whether a job for ``file`` was sent and no worker has picked it up yet."""
        return self._call(file, "get", self.get_queued_key(file)) not in (None, CACHE_FAILED)

    def is_pending(self, file: ImageCacheFile) -> bool:
        """Like :meth:`CachedFileBackend.is_pending`; a queued job counts too."""
        return super().is_pending(file) or self.is_queued(file)

    def job_failed(self, file: ImageCacheFile, token: str, error: BaseException) -> None:
        """Record that the job for ``file`` failed with ``error``, and release its lock.

        The file is FAILED for ``IMAGEKIT_FAILURE_TIMEOUT`` seconds (or, when its
        source is gone, known missing for a while), so page views do not send a job
        per view; then the lock the scheduler took with ``token`` is released.
        """
        # The state first: between the two, a page must not find the file unknown.
        if isinstance(error, MissingSource):
            self.remember_missing_source(file)
        else:
            self.remember_failure(file, error)
        self.release(file, token)


class Celery(AsyncBackend):
    """Generate files on Celery workers (``pip install imagekit-flask[celery]``).

    :param celery_app: the Celery app; by default ``current_app.extensions["celery"]``
        (where Flask's Celery pattern keeps it).
    :param queue: the queue to send jobs to (Celery's default when None).

    Workers need the task: call :func:`flask_imagekit.jobs.init_celery` on the
    Celery app in the app factory, and the web app's ``SECRET_KEY`` to verify jobs.
    """

    def __init__(
        self, celery_app: t.Any = None, *, queue: str | None = None, **kwargs: t.Any
    ) -> None:
        super().__init__(**kwargs)
        self.celery_app = celery_app
        self.queue = queue

    def schedule(self, payload: dict[str, t.Any]) -> None:
        """Send the job as the ``flask_imagekit.generate`` task."""
        celery_app = self.celery_app
        if celery_app is None:
            celery_app = current_app.extensions.get("celery")
        if celery_app is None:
            msg = (
                "The Celery backend has no Celery app: pass Celery(celery_app) or keep it "
                'in app.extensions["celery"] as in Flask\'s Celery guide.'
            )
            raise ImproperlyConfigured(msg)
        options = {"queue": self.queue} if self.queue else {}
        celery_app.send_task(CELERY_TASK_NAME, args=[payload], **options)


class RQ(AsyncBackend):
    """Generate files on RQ workers (``pip install imagekit-flask[rq]``).

    :param queue: an ``rq.Queue``; or give ``redis_url`` and ``queue_name``.
    :param job_timeout: seconds a job may run before RQ kills it.

    Jobs are serialised as JSON, so run workers with
    ``FLASK_APP=yourapp rq worker --serializer rq.serializers.JSONSerializer``;
    the app they load needs the web app's ``SECRET_KEY`` to verify jobs. Refused
    jobs land in the queue's failed job registry.
    """

    def __init__(
        self,
        queue: t.Any = None,
        *,
        redis_url: str = "redis://127.0.0.1:6379/0",
        queue_name: str = "default",
        job_timeout: int = 300,
        **kwargs: t.Any,
    ) -> None:
        super().__init__(**kwargs)
        self._queue = queue
        self.redis_url = redis_url
        self.queue_name = queue_name
        self.job_timeout = job_timeout

    @property
    def queue(self) -> t.Any:
        """The RQ queue jobs go to."""
        if self._queue is None:
            from redis import Redis
            from rq import Queue
            from rq.serializers import JSONSerializer

            self._queue = Queue(
                self.queue_name,
                connection=Redis.from_url(self.redis_url),
                serializer=JSONSerializer,
            )
        return self._queue

    def schedule(self, payload: dict[str, t.Any]) -> None:
        """Enqueue :func:`flask_imagekit.jobs.rq_generate` with the payload."""
        self.queue.enqueue(
            "flask_imagekit.jobs.rq_generate",
            payload,
            job_timeout=self.job_timeout,
            result_ttl=0,
        )

    def __getstate__(self) -> dict[str, t.Any]:
        state = super().__getstate__()
        state["_queue"] = None
        return state


@functools.cache
def broker_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean a job queue cannot be reached (Redis for RQ, kombu for Celery)."""
    errors = list(unreachable_errors())
    try:
        from kombu.exceptions import OperationalError
    except ImportError:
        pass
    else:
        errors.append(OperationalError)
    return tuple(errors)
