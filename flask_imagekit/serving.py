"""The media route: files of the media root, and cache files made when first asked for.

Registered by :class:`~flask_imagekit.ImageKit` when ``IMAGEKIT_SERVE_MEDIA`` is
true, at the path of ``IMAGEKIT_MEDIA_URL`` (an absolute URL names a CDN that
pulls from the app). A file that exists is sent as it is, whatever the query:
conditional GET, a long max-age for cache files, images inline and anything else
as a download, never a file outside the root or a half-written one.

A missing file is made only for an on-request token (``?ik=``, see
:mod:`flask_imagekit.cachefiles.onrequest`) that this app signed for exactly that
name; anything else is a 404 that generates nothing and leaves no state behind.
The file is generated under the backend's lock, in the request whatever the
backend (the browser is waiting), so racing requests, in any process, make it
once and all get it. A file of the media root is then sent; a file of another
storage is redirected to (its URL never changes, so the redirect is cached for
long), and one that exists there is redirected to at once.

A source that cannot be made into the file (missing, corrupt, refused) is a 404;
the failure is remembered for ``IMAGEKIT_FAILURE_TIMEOUT`` seconds, during which
requests are 404s without decoding anything, and logged once. A file still
locked by another process after :data:`REQUEST_WAIT` seconds, or a storage that
fails, is a 503 with ``Retry-After``. No 404 or 503 of the route may be cached
(``Cache-Control: no-store``): the file may be there a moment later, and a CDN
that ignores query strings would otherwise keep the 404 of a request without a
token for the URL with one.

The redirect to a file in another storage is cached for a year, unless the
storage says how long its URLs stay valid: a storage whose ``url()`` gives
URLs that expire (presigned) sets ``url_max_age`` to a number of seconds shorter
than their lifetime (0: not cached at all).
"""

from __future__ import annotations

import logging
import os
import posixpath
import time
import typing as t
from urllib.parse import unquote, urlsplit

from flask import Response, abort, redirect, request, send_file
from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Response as BaseResponse

from .cachefiles.backends.states import CacheFileState, for_page
from .cachefiles.onrequest import QUERY_PARAMETER, media_storage, read_token
from .exceptions import (
    GenerationError,
    ImproperlyConfigured,
    MissingCacheFile,
    SourceError,
    StorageError,
    SuspiciousName,
)
from .globals import current_state
from .storage import clean_name, is_temporary_name

if t.TYPE_CHECKING:
    from flask import Flask

    from .cachefiles import ImageCacheFile
    from .state import AppState

__all__ = [
    "CACHEFILE_MAX_AGE",
    "MEDIA_HEADERS",
    "MEDIA_INLINE_TYPES",
    "REQUEST_WAIT",
    "add_media_route",
]

logger = logging.getLogger("flask_imagekit")

#: Browsers may keep cache files this long (their names change with the spec).
CACHEFILE_MAX_AGE = 365 * 24 * 3600

#: Seconds a request waits for a file another process is generating (under the
#: 30 s gunicorn gives a worker by default).
REQUEST_WAIT = 20.0

# Answers that must not be cached: the file may be there a moment later.
_NOT_CACHED = frozenset({404, 503})

#: The only files the media route shows inline, by extension; anything else is a download.
MEDIA_INLINE_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".jpe": "image/jpeg",
    ".jfif": "image/jpeg",
    ".png": "image/png",
    ".apng": "image/apng",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".avifs": "image/avif",
}

#: Sent with every response of the media route: an uploaded SVG or HTML file must
#: never run as a page of the app's origin.
MEDIA_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


def add_media_route(app: Flask, state: AppState) -> None:
    """Serve the files under the media root at the path of ``IMAGEKIT_MEDIA_URL``.

    Only regular files that lie inside the root once symlinks are resolved, and are
    not the temporary file of a save; images inline, anything else as a download.
    """
    # Only the URL's path matters: an absolute URL names a CDN that pulls from the app.
    base = unquote(urlsplit(state.media_url).path).strip("/")
    base = f"/{base}" if base else ""
    cache_prefix = state.cachefile_dir + "/"
    storage = media_storage(state)

    def send(source: str | t.IO[bytes], name: str) -> Response:
        mimetype = MEDIA_INLINE_TYPES.get(posixpath.splitext(name)[1].lower())
        max_age = CACHEFILE_MAX_AGE if name.startswith(cache_prefix) else None
        try:
            return send_file(
                source,
                mimetype=mimetype or "application/octet-stream",
                as_attachment=mimetype is None,
                download_name=posixpath.basename(name),
                conditional=True,
                etag=isinstance(source, str),
                max_age=max_age,
            )
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound() from None  # Deleted since the check.

    def imagekit_media(filename: str) -> BaseResponse:
        try:
            name = clean_name(filename)
            path = os.path.realpath(storage.path(name))
        except SuspiciousName:
            raise NotFound() from None
        # storage.path() checked the name; this checks the very path that is opened,
        # in case a symlink changed in between.
        root = os.path.normcase(os.path.realpath(storage.location)).rstrip(os.sep)
        inside = os.path.normcase(path).startswith(root + os.sep)
        if not inside or is_temporary_name(name) or is_temporary_name(os.path.basename(path)):
            raise NotFound()
        if os.path.isfile(path):
            return send(path, name)
        file = _requested_file(name)
        if file.storage == storage:
            _make(file, path)
            return send(path, name)
        if not file.cachefile_backend.exists(file):
            _make(file)
        target = file.storage.url(name)
        parts = urlsplit(target)
        if target != storage.url(name) and not (
            parts.netloc in ("", request.host) and unquote(parts.path) == request.path
        ):
            return _redirect(target, file.storage)
        # The storage's URL is this very route (a storage without a base_url of its
        # own): a redirect would loop, so the file is sent from the storage.
        try:
            return send(file.storage.open(name, "rb"), name)
        except FileNotFoundError:
            raise NotFound() from None

    def add_media_headers(response: Response) -> Response:
        rule = request.url_rule
        if rule is not None:
            ours = rule.endpoint == "imagekit_media"
        else:  # Not routed (404, 405, redirect): judge by the path.
            ours = bool(base) and (request.path == base or request.path.startswith(f"{base}/"))
        if ours:
            response.headers.update(MEDIA_HEADERS)
            if response.status_code in _NOT_CACHED:
                response.headers["Cache-Control"] = "no-store"
        return response

    app.add_url_rule(f"{base}/<path:filename>", "imagekit_media", imagekit_media)
    app.after_request(add_media_headers)


def _requested_file(name: str) -> ImageCacheFile:
    """The cache file the request's token names, if it is the file called ``name``."""
    state = current_state()
    reference = read_token(request.args.get(QUERY_PARAMETER, ""), state)
    if reference is None:
        raise NotFound()
    try:
        file: ImageCacheFile = reference.cachefile(state)
        if file.name == name:
            return file
    except Exception as exc:
        # Signed by this app, yet not rebuilt: its row is gone, or the code changed.
        logger.info("flask_imagekit: no file for the token of %r: %s", name, exc)
    raise NotFound()


def _make(file: ImageCacheFile, path: str | None = None) -> None:
    """Generate ``file`` under its backend's lock, in this request; errors end the request.

    ``path``: where a file of the media root lands (it was missing a moment ago).
    """
    backend = file.cachefile_backend
    lookup = getattr(backend, "lookup", None)
    found = lookup(file) if lookup is not None else None
    if found is not None and found.error is not None:
        raise NotFound()  # failed a short while ago: not decoded again now
    if found is not None and found.state is CacheFileState.EXISTS and path is not None:
        if not os.path.isfile(path):
            backend.forget(file)  # deleted from the disk behind the state's back
    try:
        with for_page():
            run = getattr(backend, "run_generation", None)
            if run is None:
                backend.generate(file)
                return
            deadline = time.monotonic() + REQUEST_WAIT
            while True:
                try:
                    run(file)
                    return
                except MissingCacheFile:  # another process holds the lock
                    if time.monotonic() >= deadline:
                        raise
                    time.sleep(0.05)  # each try waits lock_wait, which may be 0
    except (SourceError, GenerationError) as exc:
        _warn_once(file, exc)
        raise NotFound() from None
    except (MissingCacheFile, StorageError) as exc:
        _warn_once(file, exc)
        abort(Response("Try again shortly.", status=503, headers={"Retry-After": "1"}))


_COULD_NOT_MAKE = "flask_imagekit: could not make %r on request: %s"


def _warn_once(file: ImageCacheFile, error: BaseException) -> None:
    """Log why ``file`` could not be made, once per file, kind and failure window."""
    state = file.app_state
    state.warnings.warn(file.name, error, state.failure_timeout, _COULD_NOT_MAKE)


def _redirect(target: str, storage: t.Any) -> BaseResponse:
    """A redirect to a file's URL in its (remote) storage, cached as the storage allows.

    A year (the URL of a name never changes), or ``storage.url_max_age`` seconds
    for a storage whose URLs expire.
    """
    response = redirect(target, code=302)
    max_age = getattr(storage, "url_max_age", None)
    if max_age is None:
        max_age = CACHEFILE_MAX_AGE
    if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
        msg = (
            f"{storage!r} has url_max_age = {max_age!r}: give the seconds its URLs may be "
            "cached (0: never), or None for URLs that never change."
        )
        raise ImproperlyConfigured(msg)
    if max_age:
        response.cache_control.public = True
        response.cache_control.max_age = max_age
    else:
        response.cache_control.no_store = True
    return response
