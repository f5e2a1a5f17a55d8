"""Source groups: which sources go with which specs.

A source group has a ``files()`` method yielding sources; registered with a
generator id (``register.source_group(id, group)``), it tells ``flask imagekit
generate`` what to generate, and its source signals reach the id's strategies.
"""

from __future__ import annotations

import typing as t

from flask import current_app
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from ..exceptions import ImproperlyConfigured
from ..sources import SourceFile

__all__ = ["ImageFieldSourceGroup", "mapped_descendants", "mapped_models"]


class ImageFieldSourceGroup:
    """Every non-empty value of one column of a model (and of its subclasses).

    ``ImageFieldSourceGroup(Profile, "avatar").files()`` streams the sources in
    batches of ``batch_size`` rows from a session of its own, so memory stays
    flat however many rows there are. Each source carries its row, so dynamic
    specs can call :func:`~flask_imagekit.utils.get_field_info` on it.

    Registered with a generator id (an ``ImageSpecField`` registers its own
    group), the group watches its column, as in django-imagekit: rows
    inserted, changed or deleted through the ``db`` given to the extension send
    ``source_created``/``source_changed``/``source_deleted`` after commit,
    whether or not the model has an ``ImageSpecField``. ``model_class`` may be
    an abstract base or a mixin: the group covers every mapped model that
    inherits the column.
    """

    def __init__(self, model_class: type[t.Any], image_field: str, batch_size: int = 500) -> None:
        self.model_class = model_class
        self.image_field = image_field
        self.batch_size = batch_size

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies the group across redefinitions of the model class."""
        model = self.model_class
        return (model.__module__, model.__qualname__, self.image_field)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImageFieldSourceGroup):
            return NotImplemented
        return self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"ImageFieldSourceGroup({self.model_class.__name__}, {self.image_field!r})"

    def applies_to_current_app(self) -> bool:
        """Whether the current app's Flask-SQLAlchemy maps this group's model.

        Models register their groups process-wide; an app (several may share a
        process) only walks the groups of its own models.
        """
        db = current_app.extensions.get("sqlalchemy") if current_app else None
        if db is None:
            return False
        metadata = getattr(self.model_class, "metadata", None)
        return any(metadata is other for other in db.metadatas.values())

    def files(self) -> t.Iterator[SourceFile]:
        """Yield a source for every row whose column holds a name."""
        for model in mapped_models(self.model_class):
            column = self._column(model)
            statement = (
                select(model)
                .where(column.is_not(None), column != "")
                .execution_options(yield_per=self.batch_size)
            )
            with Session(bind=_session_bind(model)) as session:
                for instance in session.scalars(statement):
                    value = getattr(instance, self.image_field)
                    yield SourceFile(
                        str(value),
                        instance=instance,
                        attname=self.image_field,
                        # A ProcessedImageField(storage=...) value knows its storage.
                        storage=getattr(value, "column_storage", None),
                    )
                    # Rows already yielded need not stay in the identity map.
                    session.expunge(instance)

    def count(self) -> int:
        """How many rows have a source."""
        total = 0
        for model in mapped_models(self.model_class):
            column = self._column(model)
            statement = (
                select(func.count()).select_from(model).where(column.is_not(None), column != "")
            )
            with Session(bind=_session_bind(model)) as session:
                total += int(session.scalar(statement) or 0)
        return total

    def _column(self, model: type[t.Any]) -> t.Any:
        column = getattr(model, self.image_field, None)
        if column is None or not hasattr(column, "is_not"):
            msg = (
                f"{self!r}: {model.__name__} has no mapped column {self.image_field!r}. "
                "Give the name of the model attribute that holds the image's name."
            )
            raise ImproperlyConfigured(msg)
        return column


def mapped_models(model_class: type[t.Any]) -> list[type[t.Any]]:
    """The mapped models whose queries cover every row of ``model_class``'s column.

    A mapped class is its own answer (its query includes the rows of its mapped
    subclasses). An abstract base or a mixin gives its outermost mapped
    descendants, as django-imagekit's ``get_nonabstract_descendants`` does.
    """
    return mapped_descendants(model_class, outermost=True)


def mapped_descendants(model_class: type[t.Any], *, outermost: bool = False) -> list[type[t.Any]]:
    """``model_class`` and its subclasses that SQLAlchemy maps, nearest first.

    With ``outermost``, the walk stops at each mapped class: its subclasses are
    left out, as its queries already cover their rows.
    """
    found: list[type[t.Any]] = []
    pending = [model_class]
    seen: set[type[t.Any]] = set()
    while pending:
        cls = pending.pop(0)
        if cls in seen:
            continue
        seen.add(cls)
        mapped = inspect(cls, raiseerr=False) is not None
        if mapped:
            found.append(cls)
        if not (mapped and outermost):
            pending.extend(cls.__subclasses__())
    return found


def _session_bind(model_class: type[t.Any]) -> t.Any:
    if not current_app:
        msg = "Listing the sources of a model needs an application context."
        raise ImproperlyConfigured(msg)
    db = current_app.extensions.get("sqlalchemy")
    if db is None:
        msg = (
            f"{model_class.__name__} sources need Flask-SQLAlchemy on the app: "
            "call db.init_app(app)."
        )
        raise ImproperlyConfigured(msg)
    return db.session.get_bind(mapper=inspect(model_class))
