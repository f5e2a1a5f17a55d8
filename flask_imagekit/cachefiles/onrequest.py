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

**Sizes before the file exists.** A page wants ``width`` and ``height``:
:func:`expected_size` takes them from the state when the file was made, else
from the source's header (its size and EXIF orientation, no pixels decoded) run
through the processors' size arithmetic (their ``cost()``). It remembers what it
found under a key of its own (``<prefix>size:<name>``, for a day), never in the
file's state: the state keeps saying the file is not there, so JustInTime,
``flask imagekit generate`` and the media route still make it. When a processor's
output cannot be foreseen (no ``cost()``, or one that depends on the pixels), the
size is unknown until the file exists (:class:`SizeUnknown`): pages render the
``<img>`` without it rather than generating.
"""

from __future__ import annotations

import hashlib
import time
import typing as t
import weakref

from flask import current_app
from itsdangerous import BadData, URLSafeSerializer

from ..exceptions import ImproperlyConfigured, MissingCacheFile, UnstoredSource
from ..imaging import exif_orientation, open_image
from ..processors.base import chain_cost
from ..processors.orientation import upright_size
from ..references import (
    FileReference,
    check_kwargs,
    encode_candidate,
    model_reference,
    parse_candidate,
    parse_source,
    plain_kwargs,
    stored_source,
)
from ..specs import ImageSpec
from ..storage import FileSystemStorage
from .backends.states import CacheFileState, state_key, unreachable_errors

if t.TYPE_CHECKING:
    from flask import Flask

    from ..sources import SourceFile
    from ..state import AppState
    from ..statecache import StateCache
    from .file import ImageCacheFile

__all__ = [
    "EXPECTED_SIZE_TIMEOUT",
    "QUERY_PARAMETER",
    "SALT",
    "SizeUnknown",
    "check_app",
    "expected_size",
    "media_storage",
    "on_request_url",
    "read_token",
]

#: The query parameter that carries the token.
QUERY_PARAMETER = "ik"
#: The itsdangerous salt of on-request tokens (jobs have their own).
SALT = "flask_imagekit.onrequest"

#: Seconds an expected size is remembered; the file is usually made long before.
EXPECTED_SIZE_TIMEOUT = 24 * 3600

_UNFORESEEABLE = "?"
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
    secret = app.secret_key
    fallbacks = tuple(app.config.get("SECRET_KEY_FALLBACKS") or ())
    keys = (secret, *fallbacks)
    cached = _serializers.get(app)
    if cached is not None and cached[0] == keys:
        return cached[1]
    if not secret:
        msg = (
            "OnRequest signs the URLs of files that do not exist yet with the app's "
            "SECRET_KEY, and this app has none. Set SECRET_KEY (from an environment "
            "variable, for instance), the same in every process that serves the app."
        )
        raise ImproperlyConfigured(msg)
    serializer = URLSafeSerializer(
        # As Flask's sessions: the current key signs, the fallbacks still verify.
        [*fallbacks, secret],
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


# Sizes before the file exists -------------------------------------------------------------


class SizeUnknown(MissingCacheFile):
    """The size of a file that does not exist yet cannot be foreseen (it is known once made)."""


def expected_size(file: ImageCacheFile) -> tuple[int, int] | None:
    """The size of ``file`` from its state, else from its source's header (see above).

    None when the state says the file exists without telling its size (read it
    from the file). Raises the remembered error of a failed generation,
    :class:`~flask_imagekit.exceptions.SourceError` for a source that cannot be
    opened, and :class:`SizeUnknown` when the size cannot be foreseen.
    """
    backend = file.cachefile_backend
    lookup = getattr(backend, "lookup", None)
    if lookup is not None:
        found = lookup(file)
        if found.size is not None:
            return t.cast(tuple[int, int], found.size)
        if found.error is not None:
            raise found.error
        if found.state is CacheFileState.EXISTS:
            return None
    states_of = getattr(backend, "state_cache", None)
    states: StateCache | None = states_of(file) if callable(states_of) else None
    key = state_key(file.app_state.cache_prefix, "size:", file.name)
    remembered = _read(states, key)
    if isinstance(remembered, str) and remembered != _UNFORESEEABLE:
        width, _, height = remembered.partition("x")
        if width.isdigit() and height.isdigit():
            return int(width), int(height)
    if remembered != _UNFORESEEABLE:
        size = _foresee(file.generator, file.app_state)
        _write(states, key, f"{size[0]}x{size[1]}" if size else _UNFORESEEABLE)
        if size is not None:
            return size
    msg = (
        f"The size of {file.name!r} is known once the file is made (a processor of its "
        "spec has no cost(), so its output size cannot be foreseen)."
    )
    raise SizeUnknown(msg)


def _foresee(generator: t.Any, state: AppState) -> tuple[int, int] | None:
    """The output size of ``generator``, from its source's header; None if unforeseeable."""
    if not isinstance(generator, ImageSpec) or not generator.source:
        return None
    processors = list(generator.processors or ())
    size, mode, orientation = _header(generator.source, state)
    if generator.auto_orient:
        size = upright_size(size, orientation)
    cost = chain_cost(processors, size, mode)
    return None if cost.guessed else cost.size


# The candidates of one picture share a source: its header is read once for all of them.
_HEADER_SECONDS = 60.0
_headers: weakref.WeakKeyDictionary[
    AppState, dict[str, tuple[float, tuple[int, int], str, int]]
] = weakref.WeakKeyDictionary()


def _header(source: SourceFile, state: AppState) -> tuple[tuple[int, int], str, int]:
    """The size, mode and EXIF orientation of ``source``, read from its header."""
    known = _headers.setdefault(state, {})
    key = source.name if source.is_stored and source.storage is None else None
    now = time.monotonic()
    found = known.get(key) if key else None
    if found is not None and found[0] > now:
        return found[1], found[2], found[3]
    with (
        source.open(state.source_storage) as fp,
        open_image(
            fp,
            formats=state.allowed_source_formats,
            max_pixels=state.max_source_pixels,
            max_bytes=state.max_decode_bytes,
            name=source.name,
        ) as img,
    ):
        size, mode, orientation = img.size, img.mode, exif_orientation(img)
    if key:
        if len(known) > 4096:
            known.clear()
        known[key] = (now + _HEADER_SECONDS, size, mode, orientation)
    return size, mode, orientation


# Written to the cache behind the state cache: a size is no state, and files derived
# from states (remembered markup) need not start again because of it.


def _read(states: StateCache | None, key: str) -> t.Any:
    if states is None or states.unreachable.active:
        return None
    try:
        return states.cache.get(key)
    except unreachable_errors():
        states.unreachable.begin()
        return None


def _write(states: StateCache | None, key: str, value: str) -> None:
    if states is None or states.unreachable.active:
        return
    try:
        states.cache.set(key, value, timeout=EXPECTED_SIZE_TIMEOUT)
    except unreachable_errors():
        states.unreachable.begin()
