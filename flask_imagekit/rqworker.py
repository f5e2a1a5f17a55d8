"""RQ workers that load the Flask app once, before they run any job.

.. code-block:: console

    $ FLASK_APP=myapp rq worker --serializer json --worker-class flask_imagekit.rqworker.Worker

RQ's ``Worker`` forks a work horse for every job. With a plain worker, each work
horse imports and builds the Flask app again (a third of a second for a small
app); :class:`Worker` builds it once in the parent, so every work horse starts
with the app in memory and keeps RQ's isolation (a job that crashes or is
killed takes only its work horse down). Database connection pools are never
shared across the fork: each work horse drops the ones it inherited.
:class:`SimpleWorker` runs jobs in the worker process itself, without forking.

Needs the ``rq`` extra (``pip install imagekit-flask[rq]``).
"""

from __future__ import annotations

import typing as t

from rq.worker import SimpleWorker as _RQSimpleWorker
from rq.worker import Worker as _RQWorker

from .jobs import preload_app

__all__ = ["SimpleWorker", "Worker"]


class Worker(_RQWorker):
    """RQ's forking worker, with the app (``FLASK_APP``) loaded before the first job."""

    def work(self, *args: t.Any, **kwargs: t.Any) -> bool:
        preload_app()
        return bool(super().work(*args, **kwargs))


class SimpleWorker(_RQSimpleWorker):
    """RQ's non-forking worker, with the app loaded before the first job."""

    def work(self, *args: t.Any, **kwargs: t.Any) -> bool:
        preload_app()
        return bool(super().work(*args, **kwargs))
