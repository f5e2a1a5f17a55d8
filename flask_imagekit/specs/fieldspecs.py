"""The specs of model and form fields: built from keyword arguments, compared by output.

``ImageSpecField(processors=[...], format="JPEG")`` and the two
``ProcessedImageField`` classes take a spec's attributes directly; each builds
its spec class with :func:`spec_class`, so the arguments mean the same
everywhere. A form field marks what it processed with :func:`spec_signature`,
so a model column with the same spec stores the upload without processing it again.
"""

from __future__ import annotations

import typing as t

from ..exceptions import ImproperlyConfigured
from . import ImageSpec

__all__ = ["spec_class", "spec_signature"]


def spec_class(
    processors: t.Iterable[t.Any] | None = None,
    format: str | None = None,
    options: t.Mapping[str, t.Any] | None = None,
    *,
    base: type[ImageSpec] | None = None,
    name: str = "ShorthandSpec",
    **attributes: t.Any,
) -> type[ImageSpec]:
    """Return a new subclass of ``base`` (:class:`ImageSpec`) with the given attributes.

    An argument left at None keeps ``base``'s own value, so a ``spec=`` class
    given to a field keeps whatever the field does not override. ``processors``
    is copied into a list; ``attributes`` are other spec attributes such as
    ``autoconvert`` or ``cachefile_strategy``. Raises
    :class:`~flask_imagekit.exceptions.ImproperlyConfigured` for processors that
    are not a list, or for a name that is not an attribute of the spec.
    """
    base = base or ImageSpec
    attrs: dict[str, t.Any] = {"format": format, "options": options, **attributes}
    unknown = sorted(
        key for key in attrs if not hasattr(base, key) and not hasattr(ImageSpec, key)
    )
    if unknown:
        msg = (
            f"{name}: {', '.join(unknown)} is not an attribute of {base.__name__}. "
            "Give processors, format, options, autoconvert or a cachefile_* setting."
        )
        raise ImproperlyConfigured(msg)
    attrs = {key: value for key, value in attrs.items() if value is not None}
    if processors is not None:
        if isinstance(processors, str | bytes) or not isinstance(processors, t.Iterable):
            msg = (
                f"{name}: processors must be a list of processors such as "
                f"[ResizeToFill(100, 50)], not {processors!r}."
            )
            raise ImproperlyConfigured(msg)
        attrs["processors"] = list(processors)
    return type(name, (base,), attrs)


def spec_signature(spec: t.Any) -> str:
    """What a spec makes of any source: how it generates, and its output parameters."""
    params = getattr(spec, "canonical_parameters", None)
    generate = getattr(type(spec), "generate", None)
    how = f"{generate.__module__}.{generate.__qualname__}" if generate else type(spec).__name__
    return f"{how}:{params() if params else ''}"
