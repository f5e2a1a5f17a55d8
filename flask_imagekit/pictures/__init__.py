"""Jinja globals ``picture`` and ``srcset``: a spec's output at several widths and formats.

``{{ picture("myapp:photo", photo.image, attrs={"alt": "Me"}) }}`` renders::

    <picture>
      <source type="image/avif" srcset="URL 480w, URL 800w, URL 1200w" sizes="...">
      <source type="image/webp" srcset="URL 480w, URL 800w, URL 1200w" sizes="...">
      <img src="URL" srcset="URL 480w, URL 800w, URL 1200w" sizes="..."
           width="1200" height="800" loading="lazy" decoding="async" alt="Me">
    </picture>

Each candidate is an ordinary cache file (see :mod:`flask_imagekit.specs.responsive`):
the spec's output scaled down to one width, in one format; the spec's own file is
the full-width candidate of the ``<img>``, which is in the spec's own format.

* **Widths**: the call's ``widths``, else the spec's ``responsive_widths``, else
  ``IMAGEKIT_RESPONSIVE_WIDTHS``. Widths at or above the spec's output width are
  left out, and that width itself is always offered, so no candidate is wider than
  the spec's output. Nor than the source: a spec may scale a small source up
  (``ResizeToFit`` does unless ``upscale=False``), its candidates stop at the
  source's width (known from the source's header, then from the record the
  candidates keep), and the browser scales that one up itself.
* **Formats**: the call's ``formats``, else the spec's ``responsive_formats``, else
  ``IMAGEKIT_RESPONSIVE_FORMATS`` (AVIF, then WebP): one ``<source>`` each, best
  first. Formats this Pillow build cannot encode are left out.
* **sizes**: when not given, ``(max-width: Wpx) 100vw, Wpx`` where W is the
  output's width: the image is shown at its own width, or as wide as the viewport on
  narrower screens. Give ``sizes`` whenever the layout shows it otherwise.
* ``width``/``height`` are the output's, so the page keeps the image's room while it
  loads; ``loading="lazy"`` and ``decoding="async"`` are set unless ``attrs`` say
  otherwise (``None`` leaves one out). ``attrs`` go on the ``<img>``, escaped. Under
  OnRequest, an output whose size cannot be foreseen before it is made (a processor
  without ``cost()``) is offered at its full size only, one file per format, without
  ``width``/``height``, widths or ``sizes``: which widths would be narrower than it
  is unknown, and those it does not reach would all be the same pixels.
* ``placeholder="blur"``: the ``<img>`` shows a tiny blurred preview (a data URI
  recorded when the candidates were generated) as its CSS background until it loads
  (behind a transparent image it stays visible); nothing when no preview is known yet.
  A record lost with the state cache is made again once, from the smallest
  candidate there (see :mod:`~flask_imagekit.pictures.records`).

The strategy decides what rendering does: under JustInTime the missing candidates
are generated, together, so the source is decoded once for all of them; under
Optimistic and OnRequest nothing is generated. The full output size comes from what
the candidates recorded with their state (one lookup), else from the spec's own file.
What a render resolved is remembered for specs whose output depends only on the
arguments (see :class:`~flask_imagekit.filememo.FileMemo`), so rendering the same
picture again costs a dictionary lookup (and, under JustInTime, one state read per
candidate). A per-image problem renders the placeholder ``<img>`` in production and
raises in debug mode, as :class:`~flask_imagekit.cachefiles.ImageCacheFile` does.
"""

from __future__ import annotations

import dataclasses
import typing as t

from markupsafe import Markup, escape

from ..cachefiles import PER_IMAGE_ERRORS, ImageCacheFile
from ..cachefiles.backends import CacheFileState
from ..cachefiles.html import check_attributes, placeholder_tag, size_from_attributes, tag
from ..exceptions import ImageKitError, ImproperlyConfigured, MissingCacheFile, MissingSource
from ..globals import current_state
from ..signals import existence_required
from ..specs import ImageSpec
from ..specs.responsive import responsive_formats, responsive_widths
from .layout import Layout, Request, picture_info

if t.TYPE_CHECKING:
    from ..state import AppState

__all__ = ["picture", "srcset"]

#: Attributes of the ``<img>`` that ``picture()`` sets itself.
_OWN_ATTRIBUTES = ("src", "srcset", "sizes")
_PLACEHOLDERS = (None, "blur")


def picture(
    generator_id: str,
    source: t.Any,
    widths: t.Iterable[int] | None = None,
    formats: t.Iterable[str] | None = None,
    sizes: str | None = None,
    attrs: t.Mapping[str, t.Any] | None = None,
    placeholder: str | None = None,
    **kwargs: t.Any,
) -> Markup:
    """A ``<picture>`` of the output of ``generator_id`` for ``source`` (see the module).

    ``kwargs`` go to the generator, as with ``generateimage``.
    """
    kwargs["source"] = source
    request = Request(generator_id, kwargs, widths, formats, sizes, attrs, placeholder)
    return Markup(_remembered(request, ("picture", widths, formats, sizes, placeholder)))


def srcset(
    generator_id: str,
    source: t.Any,
    widths: t.Iterable[int] | None = None,
    format: str | None = None,
    **kwargs: t.Any,
) -> str:
    """The ``srcset`` value of the output of ``generator_id`` in ``format`` (default: its own).

    ``"URL 480w, URL 800w, URL 1200w"``, with the same widths as :func:`picture`; for
    a hand-written ``<img>`` or ``<source>``. Empty for a file without a source, a
    format this Pillow cannot encode, and (in production) an image that cannot be shown.
    """
    kwargs["source"] = source
    formats = None if format is None else [format]
    request = Request(generator_id, kwargs, widths, formats, None, None, None, only=True)
    return _remembered(request, ("srcset", widths, format))


@dataclasses.dataclass(frozen=True, eq=False)
class _Rendered:
    """A rendered picture (or srcset value), remembered for the next pages."""

    text: str
    #: The files it shows; under JustInTime each must still exist for it to be reused.
    files: tuple[ImageCacheFile, ...] = ()
    check_existence: bool = False
    #: Rendered without the preview it asked for: reused while this file has none recorded.
    preview_of: ImageCacheFile | None = None
    #: Whether it may be remembered (nothing pending, nothing degraded).
    final: bool = True


def _remembered(request: Request, extra: tuple[t.Any, ...]) -> str:
    state = current_state()
    memo = state.file_memo
    key = memo.key(state.registry, request.generator_id, request.kwargs, request.attrs, extra)
    epoch = state.states_epoch
    if key is not None:
        kept: _Rendered | None = memo.get(key, epoch)
        if kept is not None and _still_good(kept):
            return kept.text
    base = state.cachefile(request.generator_id, **request.kwargs)
    rendered = _render(state, request, base)
    if key is not None and rendered.final:
        memo.put(key, base, epoch, rendered)
    return rendered.text


def _still_good(kept: _Rendered) -> bool:
    """Whether what was rendered earlier is still what a render would give."""
    if kept.check_existence:
        if existence_required.receivers:
            for file in kept.files:
                existence_required.send(file, file=file)
        for file in kept.files:
            if file.cachefile_backend.lookup(file).state is not CacheFileState.EXISTS:
                return False
    if kept.preview_of is not None:
        info = picture_info(kept.preview_of)
        return info is None or info.preview is None
    return True


# Rendering -------------------------------------------------------------------------------


def _render(state: AppState, request: Request, base: ImageCacheFile) -> _Rendered:
    attrs = dict(request.attrs or {})
    check_attributes(attrs)
    given = sorted(set(attrs) & set(_OWN_ATTRIBUTES))
    if given:
        msg = f"picture() sets {given} itself; pass sizes=... instead of attrs, not these."
        raise ImproperlyConfigured(msg)
    if request.placeholder not in _PLACEHOLDERS:
        msg = f"picture(placeholder={request.placeholder!r}): use None or 'blur'."
        raise ImproperlyConfigured(msg)
    try:
        name = base.name
    except MissingSource:  # a NULL column: no error, nothing to show
        name = None
    if not name:
        return _nothing(state, base, request, attrs)
    spec = base.generator
    if not isinstance(spec, ImageSpec):
        msg = (
            f"{request.generator_id!r} makes {spec!r}, which is not an ImageSpec: picture() "
            "and srcset() need a spec made of processors."
        )
        raise ImproperlyConfigured(msg)
    widths, formats = _choices(state, request, spec)
    own = spec.output_format()
    if request.only:
        if request.formats is not None and not formats:
            return _Rendered("")  # a format this Pillow cannot encode
        # The spec's own format unless the call names another.
        fmt = formats[0] if request.formats is not None else own
        chosen: list[str | None] = [None if fmt == own else fmt]
    else:
        chosen = [*(fmt for fmt in formats if fmt != own), None]
    try:
        layout = Layout.resolve(state, request, base, widths, chosen)
    except MissingCacheFile:
        # The spec's own file is on its way (a worker, another process's lock).
        if state.raise_errors and not request.only:
            pending = tag([f'src="{escape(base.storage.url(base.name))}"'], attrs)
            return _Rendered(str(pending), final=False)
        return _degraded(state, base, request, attrs, None)
    except PER_IMAGE_ERRORS as exc:
        return _degraded(state, base, request, attrs, exc)
    if layout.pending and not state.raise_errors:
        return _degraded(state, base, request, attrs, None)
    if request.only:
        text = layout.srcset(chosen[0])
    else:
        text = layout.markup(request, attrs)
    wants_preview = request.placeholder == "blur" and layout.preview is None
    return _Rendered(
        text,
        files=tuple(layout.shown.values()),
        check_existence=layout.just_in_time,
        preview_of=base if wants_preview else None,
        final=not layout.pending,
    )


def _choices(
    state: AppState, request: Request, spec: ImageSpec
) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The widths and formats to offer: the call's, else the spec's, else the settings'."""
    name = "srcset" if request.only else "picture"
    declared_widths = getattr(spec, "responsive_widths", None)
    if request.widths is not None:
        widths = responsive_widths(f"{name}(widths=...)", request.widths)
    elif declared_widths is not None:
        label = f"{type(spec).__name__}.responsive_widths"
        widths = responsive_widths(label, declared_widths)
    else:
        widths = state.responsive_widths
    declared_formats = getattr(spec, "responsive_formats", None)
    if request.formats is not None:
        label = f"{name}({'format' if request.only else 'formats'}=...)"
        formats = responsive_formats(label, request.formats)
    elif declared_formats is not None:
        label = f"{type(spec).__name__}.responsive_formats"
        formats = responsive_formats(label, declared_formats)
    else:
        formats = state.responsive_formats
    return widths, formats


# What is shown instead --------------------------------------------------------------------


def _nothing(
    state: AppState, base: ImageCacheFile, request: Request, attrs: dict[str, t.Any]
) -> _Rendered:
    """A file without a source: nothing in debug mode, the placeholder in production."""
    if state.raise_errors or request.only:
        return _Rendered("")
    url = base.placeholder_url()
    return _Rendered(str(placeholder_tag(url, size_from_attributes(attrs), attrs)))


def _degraded(
    state: AppState,
    base: ImageCacheFile,
    request: Request,
    attrs: dict[str, t.Any],
    error: ImageKitError | None,
) -> _Rendered:
    """Raise ``error`` in debug mode; in production warn once and render the placeholder."""
    if error is not None:
        if state.raise_errors:
            raise error
        state.warnings.warn(base.name, error, state.failure_timeout)
    if request.only:
        return _Rendered("", final=False)
    url = base.placeholder_url()
    return _Rendered(str(placeholder_tag(url, size_from_attributes(attrs), attrs)), final=False)
