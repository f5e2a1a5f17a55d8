"""Canonical, process-independent digests of spec parameters.

The digest of a spec names its cache files, so it must not depend on dict order,
the process, the Python version or pickling: values are written out in a
canonical text form (classes by import path, mappings sorted) and hashed.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import inspect
import typing as t

from PIL import Image

from ..exceptions import ImproperlyConfigured

__all__ = ["canonical", "digest"]


def digest(*values: t.Any) -> str:
    """Return a 32-character hex digest of ``values`` in canonical form."""
    return hashlib.sha256(canonical(values).encode("utf-8")).hexdigest()[:32]


def _type_name(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def canonical(value: t.Any) -> str:
    """Write ``value`` in a canonical text form; equal values give equal text."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, enum.Enum):
        return f"{_type_name(value)}.{value.name}"
    # Subclasses (a stored image's name is a str) hash as their base type.
    if isinstance(value, str):
        return f"str:{str(value)!r}"
    if isinstance(value, bytes):
        return f"bytes:{bytes(value)!r}"
    if isinstance(value, int):
        return f"int:{int(value)!r}"
    if isinstance(value, float):
        return f"float:{float(value)!r}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(canonical(item) for item in value) + "]"
    if isinstance(value, dict):
        items = sorted((canonical(k), canonical(v)) for k, v in value.items())
        return "{" + ",".join(f"{k}:{v}" for k, v in items) + "}"
    if isinstance(value, set | frozenset):
        return "set{" + ",".join(sorted(canonical(item) for item in value)) + "}"
    if isinstance(value, Image.Image):
        pixels = hashlib.sha256(value.tobytes()).hexdigest()
        return f"Image({value.mode},{value.size},{pixels})"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return f"{_type_name(value)}({canonical(fields)})"
    if isinstance(value, type):
        return f"class:{value.__module__}.{value.__qualname__}"
    if isinstance(value, functools.partial):
        return (
            f"partial({canonical(value.func)},{canonical(value.args)},{canonical(value.keywords)})"
        )
    if (
        callable(value)
        and hasattr(value, "__qualname__")
        and not hasattr(value, "__dict__")
        or (inspect.isfunction(value) or inspect.isbuiltin(value) or inspect.ismethod(value))
    ):
        return _callable_name(value)
    state = _state_of(value)
    if state is not None:
        return f"{_type_name(value)}({canonical(state)})"
    msg = (
        f"Cannot build a stable hash of {value!r}: give its class plain attributes "
        "(or make it a dataclass) so equal parameters give equal cache file names."
    )
    raise ImproperlyConfigured(msg)


def _callable_name(value: t.Any) -> str:
    qualname = getattr(value, "__qualname__", "")
    if inspect.ismethod(value):
        return f"method:{canonical(value.__self__)}.{value.__func__.__name__}"
    if not qualname or "<lambda>" in qualname or "<locals>" in qualname:
        msg = (
            f"Cannot build a stable hash of {value!r}: lambdas and nested functions have no "
            "stable name. Use a module-level function instead."
        )
        raise ImproperlyConfigured(msg)
    return f"function:{value.__module__}.{qualname}"


def _state_of(value: object) -> dict[str, t.Any] | None:
    getstate = getattr(value, "__getstate__", None)
    state = getstate() if callable(getstate) else None
    if isinstance(state, dict):
        return state
    try:
        return dict(vars(value))
    except TypeError:
        slots = getattr(type(value), "__slots__", None)
        if slots is None:
            return None
        names = [slots] if isinstance(slots, str) else list(slots)
        return {name: getattr(value, name, None) for name in names}
