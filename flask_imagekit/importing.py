"""Settings that name a class or function: the object, a class, or a dotted path.

Each helper takes the name of the setting it resolves, so that a bad value fails
with an :class:`~flask_imagekit.exceptions.ImproperlyConfigured` naming it.
"""

from __future__ import annotations

import typing as t

from werkzeug.utils import ImportStringError, import_string

from .exceptions import ImproperlyConfigured

__all__ = ["invalid", "resolve", "resolve_instance"]


def invalid(key: str, value: object, expected: str) -> t.NoReturn:
    """Raise :class:`ImproperlyConfigured`: ``key = value`` is not ``expected``."""
    msg = f"{key} = {value!r} is invalid: expected {expected}."
    raise ImproperlyConfigured(msg)


def resolve(key: str, value: t.Any) -> t.Any:
    """Import ``value`` if it is a dotted path string; return it otherwise."""
    if isinstance(value, str):
        try:
            return import_string(value)
        except (ImportStringError, ImportError, AttributeError) as exc:
            msg = f"{key} = {value!r} cannot be imported: {exc}. Check the dotted path."
            raise ImproperlyConfigured(msg) from exc
    return value


def resolve_instance(key: str, value: t.Any, expected: str) -> t.Any:
    """Resolve a setting naming an object, a class (instantiated) or a dotted path."""
    value = resolve(key, value)
    if isinstance(value, type):
        try:
            return value()
        except Exception as exc:
            msg = f"{key}: could not create {value.__qualname__}(): {exc}. Pass an instance."
            raise ImproperlyConfigured(msg) from exc
    if value is None:
        invalid(key, value, expected)
    return value
