"""Cache files whose generator is looked up by id when first needed."""

from __future__ import annotations

import typing as t

from .file import ImageCacheFile

__all__ = ["LazyGeneratedImageFile", "LazyImageCacheFile"]


class LazyImageCacheFile(ImageCacheFile):
    """A cache file whose generator is looked up by id in the current app's registry.

    ``LazyImageCacheFile("myapp:thumb", source=f)`` builds the generator with
    ``source=f`` on first use, so it can be created before an app context exists.
    """

    def __init__(self, generator_id: str, *args: t.Any, **kwargs: t.Any) -> None:
        file_kwargs = {
            key: kwargs.pop(key)
            for key in ("name", "storage", "cachefile_backend", "cachefile_strategy", "html_attrs")
            if key in kwargs
        }
        super().__init__(
            None,
            generator_id=generator_id,
            generator_kwargs={k: v for k, v in kwargs.items() if k != "source"},
            **file_kwargs,
        )
        self._generator_args = args
        self._generator_kwargs = kwargs

    @property
    def generator(self) -> t.Any:
        generator = self._generator
        if generator is None:
            assert self.generator_id is not None
            generator = self._generator = self.app_state.registry.get_generator(
                self.generator_id, *self._generator_args, **self._generator_kwargs
            )
        return generator

    def __repr__(self) -> str:
        label = self._name if self._name is not None else self.generator_id
        return f"<{type(self).__name__}: {label}>"

    def __getstate__(self) -> dict[str, t.Any]:
        state = super().__getstate__()
        state.update(args=self._generator_args, kwargs=self._generator_kwargs)
        return state

    def __setstate__(self, state: dict[str, t.Any]) -> None:
        super().__setstate__(state)
        self._generator_args = state["args"]
        self._generator_kwargs = state["kwargs"]


#: django-imagekit's name for :class:`LazyImageCacheFile`.
LazyGeneratedImageFile = LazyImageCacheFile
