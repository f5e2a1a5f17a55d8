"""Running a generator and saving its output: a function of (generator, storage, name).

Backends call :func:`write_output` under their lock; it returns the image's size,
which they record with the file's state, so nothing reads the file back.
"""

from __future__ import annotations

import io
import typing as t

from PIL import Image

from ..exceptions import GenerationError

if t.TYPE_CHECKING:
    from ..protocols import Generator
    from ..storage import Storage

__all__ = ["read_size", "write_output"]


def write_output(generator: Generator, storage: Storage, name: str) -> tuple[int, int] | None:
    """Run ``generator`` and save its output as ``name`` in ``storage``; return its size.

    The size is None when the output is not an image Pillow can read (a custom
    generator may make anything). An empty output is a :class:`GenerationError`.
    """
    content = generator.generate()
    try:
        if isinstance(content, io.BytesIO):
            data = content.getvalue()
        else:
            if content.seekable():
                content.seek(0)
            data = content.read()
    finally:
        content.close()
    if not data:
        msg = f"{generator!r} generated an empty file for {name!r}."
        raise GenerationError(msg)
    try:
        size: tuple[int, int] | None = read_size(io.BytesIO(data))
    except GenerationError:
        size = None
    storage.save(name, data)
    return size


def read_size(fp: t.IO[bytes]) -> tuple[int, int]:
    """The pixel size of the image in ``fp`` (only its header is read)."""
    try:
        with Image.open(fp) as img:
            return img.size
    except Exception as exc:
        msg = f"The generated file is not a readable image: {exc}."
        raise GenerationError(msg) from exc
