"""Where the current app's flask_imagekit state is found.

Every layer may ask for the current app's :class:`~flask_imagekit.state.AppState`;
only the extension builds one. As ``flask/globals.py`` does, this module names the
type for type checkers alone, so it imports nothing of the package but exceptions.
"""

from __future__ import annotations

import typing as t

from flask import current_app
from flask.globals import _cv_app

from .exceptions import ImproperlyConfigured

if t.TYPE_CHECKING:
    from .state import AppState

__all__ = ["STATE_KEY", "current_state", "current_state_or_none"]

#: The key of an app's AppState in ``app.extensions``.
STATE_KEY = "imagekit.state"


def current_state_or_none() -> AppState | None:
    """The current app's settings, or None outside an app context or without ImageKit."""
    # On every render path: read the app context directly, not through the proxy.
    ctx = _cv_app.get(None)
    if ctx is None:
        return None
    return t.cast("AppState | None", ctx.app.extensions.get(STATE_KEY))


def current_state() -> AppState:
    """The current app's flask_imagekit settings; raises when there are none."""
    state = current_state_or_none()
    if state is None:
        if not current_app:
            msg = (
                "flask_imagekit needs an application context here. Use it inside a "
                "request, a CLI command, or `with app.app_context():`."
            )
        else:
            msg = "ImageKit is not initialised on the current app; call ImageKit(app)."
        raise ImproperlyConfigured(msg)
    return state
