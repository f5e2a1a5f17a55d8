"""On-request URLs: the signed token that lets the media route make a cache file.

Under :class:`~flask_imagekit.cachefiles.strategies.OnRequest` a page shows a
file at its usual URL plus ``?ik=<token>``. The token names what made the file
(as a job payload does, see :mod:`flask_imagekit.references`): a JSON object of

* ``"g"``: the generator's registry id;
* ``"s"``, ``"a"``, ``"m"``: the source's name in the source storage, the
  attribute name of its model column, its row (``{"entity", "identity"}``);
* ``"k"``: the generator's other arguments; ``"c"``: ``[width, format]`` of a
  responsive candidate;

(absent keys: none), serialised and signed by :class:`itsdangerous.URLSafeSerializer`
with the app's ``SECRET_KEY`` (``SECRET_KEY_FALLBACKS`` still verify), the salt
``"flask_imagekit.onrequest"`` and HMAC-SHA256. Keys are sorted, so one file has
one URL, before and after it exists: browsers and CDNs cache it.

**Why a query parameter, not a path segment.** The path stays the file's storage
name, so a server in front of the app (nginx ``try_files $uri @app``, a CDN, an
object store) finds an existing file by its path and ignores the query; only a
missing file reaches the app, which sees the same path. A token in the path would
need a rewrite rule everywhere the files are served from, and a name that differs
from the file's. CDNs key their caches on the query string by default, and the
token is deterministic, so each file has exactly one cache entry; a CDN told to
ignore query strings still caches by the path, which names one file. The token
changes only when ``SECRET_KEY`` does: the new URLs are misses once, served from
the disk, not generated again.

Files a token cannot name (no registry id, a source that is not stored in the
source storage, arguments that are not plain JSON values) are generated just in
time instead (:func:`on_request_url` returns None for them).

Sizes before the file exists come from :mod:`flask_imagekit.cachefiles.sizing`.

**Signed, not encrypted.** Anyone can read a token's fields (base64 JSON): the
generator id, the source's stored name, the model and primary key of its row, the
arguments. Only the signature is secret. An app whose namer hides source names
(the ``hash`` namer) shows them in OnRequest URLs.
"""

from __future__ import annotations

import hashlib
import typing as t
import weakref

from flask import current_app
from itsdangerous import BadData, URLSafeSerializer

from ..exceptions import ImproperlyConfigured, UnstoredSource
from ..references import (
    FileReference,
    check_kwargs,
    encode_candidate,
    model_reference,
    parse_candidate,
    parse_source,
    plain_kwargs,
    signing_keys,
    stored_source,
)
from ..storage import FileSystemStorage

if t.TYPE_CHECKING:
    from flask import Flask

    from ..state import AppState
    from .file import ImageCacheFile

__all__ = [
    "QUERY_PARAMETER",
    "SALT",
    "check_app",
    "media_storage",
    "on_request_url",
    "read_token",
]

#: The query parameter that carries the token.
QUERY_PARAMETER = "ik"
#: The itsdangerous salt of on-request tokens (jobs have their own).
SALT = "flask_imagekit.onrequest"

_KEYS = frozenset({"g", "s", "a", "m", "k", "c"})
_MAX_TOKEN_LENGTH = 4096

_serializers: weakref.WeakKeyDictionary[Flask, tuple[tuple[t.Any, ...], URLSafeSerializer]] = (
    weakref.WeakKeyDictionary()
)
_media_storages: weakref.WeakKeyDictionary[AppState, FileSystemStorage] = (
    weakref.WeakKeyDictionary()
)


def _current_app() -> Flask:
    # The app itself, not the proxy: it keys the serializers.
    return t.cast("Flask", current_app._get_current_object())  # type: ignore[attr-defined]


def _serializer(app: Flask) -> URLSafeSerializer:
    """The serializer of ``app``'s tokens; refuses an app without ``SECRET_KEY``."""
    keys = (app.secret_key, *(app.config.get("SECRET_KEY_FALLBACKS") or ()))
    cached = _serializers.get(app)
    if cached is not None and cached[0] == keys:
        return cached[1]
    serializer = URLSafeSerializer(
        signing_keys(app, "OnRequest signs the URLs of files that do not exist yet"),
        salt=SALT,
        serializer_kwargs={"sort_keys": True},
        signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha256},
    )
    _serializers[app] = (keys, serializer)
    return serializer


def check_app(app: Flask, state: AppState) -> None:
    """Refuse an app that cannot serve on-request files (no media route, no secret)."""
    if not state.serve_media:
        msg = (
            "OnRequest needs the media route, which generates a file when a browser first "
            "asks for it, and IMAGEKIT_SERVE_MEDIA is False. Set it to True (a CDN or "
            "nginx in front may still serve the files that exist), or choose JustInTime "
            "or Optimistic."
        )
        raise ImproperlyConfigured(msg)
    _serializer(app)


def media_storage(state: AppState) -> FileSystemStorage:
    """The storage the media route serves: the media root at ``IMAGEKIT_MEDIA_URL``."""
    storage = _media_storages.get(state)
    if storage is None:
        storage = _media_storages[state] = FileSystemStorage(state.media_root, state.media_url)
    return storage


def on_request_url(file: ImageCacheFile) -> str | None:
    """The URL of ``file`` with its token, or None for a file a token cannot name.

    A file of the media root is at its own URL; a file of any other storage (an
    object store) is at the media route's URL for its name, which generates it
    there and redirects to it. Raises
    :class:`~flask_imagekit.exceptions.ImproperlyConfigured` when the app cannot
    serve it (no media route, no ``SECRET_KEY``).
    """
    state = file.app_state
    app = _current_app()
    check_app(app, state)
    fields = _token_fields(file)
    if fields is None:
        return None
    token = _serializer(app).dumps(fields)
    # The route's URL of the name; for the media root, that is the file's own URL.
    return f"{media_storage(state).url(file.name)}?{QUERY_PARAMETER}={token}"


def _token_fields(file: ImageCacheFile) -> dict[str, t.Any] | None:
    generator_id = file.generator_id
    if not generator_id:
        return None  # not built from the registry: nothing to rebuild it from
    try:
        source = stored_source(file)
        kwargs = plain_kwargs(file)
    except (UnstoredSource, ValueError):
        return None
    fields: dict[str, t.Any] = {"g": generator_id}
    if source is not None:
        fields["s"] = source.name
        if source.attname:
            fields["a"] = source.attname
        row = model_reference(source)
        if row is not None:
            fields["m"] = row
    if kwargs:
        fields["k"] = kwargs
    candidate = encode_candidate(file.candidate)
    if candidate is not None:
        fields["c"] = candidate
    return fields


def read_token(token: str, state: AppState) -> FileReference | None:
    """The file ``token`` names, if this app signed it and its fields are sound; else None."""
    if not token or len(token) > _MAX_TOKEN_LENGTH:
        return None
    try:
        fields = _serializer(_current_app()).loads(token)
    except (BadData, ImproperlyConfigured):
        return None
    try:
        return _parse(fields, state)
    except (TypeError, ValueError):
        return None


def _parse(fields: t.Any, state: AppState) -> FileReference:
    if not isinstance(fields, dict) or not set(fields) <= _KEYS or "g" not in fields:
        msg = "not the fields of a token"
        raise ValueError(msg)
    generator_id = fields["g"]
    if not isinstance(generator_id, str) or not state.registry.has_generator(generator_id):
        msg = f"no generator {generator_id!r}"
        raise ValueError(msg)
    source, row = None, None
    if "s" in fields:
        data = {"name": fields["s"], "attname": fields.get("a"), "model": fields.get("m")}
        source, row = parse_source(data)
    elif "a" in fields or "m" in fields:
        msg = "a row without a source"
        raise ValueError(msg)
    kwargs = fields.get("k", {})
    check_kwargs(kwargs)
    return FileReference(generator_id, source, row, kwargs, parse_candidate(fields.get("c")))
