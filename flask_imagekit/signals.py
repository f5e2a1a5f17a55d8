"""Blinker signals sent by flask_imagekit.

Source signals are sent by source groups with ``sender=<source group>`` and
``source=<source file>``; for model columns they go out after the transaction
commits. Cache file signals are sent with ``sender=<cache file>`` and
``file=<cache file>`` when a file's existence or content is needed.
"""

from __future__ import annotations

from blinker import Namespace

__all__ = [
    "content_required",
    "existence_required",
    "source_changed",
    "source_created",
    "source_deleted",
]

_signals = Namespace()

#: A source was created (a row inserted with a source).
source_created = _signals.signal("imagekit.source-created")
#: A source changed (a column now holds another source).
source_changed = _signals.signal("imagekit.source-changed")
#: A source went away (row deleted, or its old value after a change).
source_deleted = _signals.signal("imagekit.source-deleted")
#: A cache file's content is about to be read.
content_required = _signals.signal("imagekit.content-required")
#: A cache file's existence is about to be relied on (URL, bool).
existence_required = _signals.signal("imagekit.existence-required")
