"""A custom source group: the JPEGs of a folder, like the documentation's example.

django-imagekit's documentation shows this group::

    class JpegsInADirectory(object):
        def __init__(self, dir):
            self.dir = dir

        def files(self):
            os.chdir(self.dir)
            for name in glob.glob('*.jpg'):
                yield open(name)

That works with flask_imagekit as printed. The version here is the same idea
made fit for a web app: it does not ``chdir`` (the working directory belongs to
the whole process), it lists a folder *of the source storage*, so it follows
``IMAGEKIT_MEDIA_ROOT`` / ``IMAGEKIT_SOURCE_STORAGE`` of the current app, and it
yields storage names such as ``"featured/harbour.jpg"``: exactly the sources the
gallery template passes to ``generateimage``, so ``flask imagekit generate``
fills the very cache files the page shows.
"""

from __future__ import annotations

import typing as t

from flask_imagekit.extension import current_state

__all__ = ["FEATURED", "FEATURED_DIR", "JpegsInADirectory"]

#: Folder of the source storage holding the featured images.
FEATURED_DIR = "featured"


class JpegsInADirectory:
    """Every ``*.jpg`` / ``*.jpeg`` directly inside ``dir``, a folder of the source storage."""

    def __init__(self, dir: str) -> None:
        self.dir = dir.strip("/")

    def files(self) -> t.Iterator[str]:
        """Yield the storage name of each JPEG, sorted; nothing if the folder is missing."""
        storage = current_state().source_storage
        try:
            _folders, names = storage.listdir(self.dir)
        except FileNotFoundError:
            return
        for name in names:
            if name.lower().endswith((".jpg", ".jpeg")):
                yield f"{self.dir}/{name}"

    def count(self) -> int:
        """How many JPEGs there are (for the progress bar of ``flask imagekit generate``)."""
        return sum(1 for _ in self.files())

    def __repr__(self) -> str:
        return f"JpegsInADirectory({self.dir!r})"


#: The featured images, used with the ``example_app:featured`` spec.
FEATURED = JpegsInADirectory(FEATURED_DIR)
