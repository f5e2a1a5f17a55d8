"""Source groups: which sources go with which specs.

A source group has a ``files()`` method yielding sources; registered with a
generator id (``register.source_group(id, group)``), it tells ``flask imagekit
generate`` what to generate, and its source signals reach the id's strategies.
"""

from __future__ import annotations

import typing as t

from ..sources import SourceFile

__all__ = ["ImageFieldSourceGroup"]


class ImageFieldSourceGroup:
    """Every non-empty value of one column of a model (and of its subclasses).

    ``ImageFieldSourceGroup(Profile, "avatar").files()`` streams the sources in
    batches of ``batch_size`` rows from a session of its own, so memory stays
    flat however many rows there are. Each source carries its row, so dynamic
    specs can call :func:`~flask_imagekit.utils.get_field_info` on it.
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
        from flask import current_app

        db = current_app.extensions.get("sqlalchemy") if current_app else None
        if db is None:
            return False
        metadata = getattr(self.model_class, "metadata", None)
        return any(metadata is other for other in db.metadatas.values())

    def files(self) -> t.Iterator[SourceFile]:
        """Yield a source for every row whose column holds a name."""
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        column = getattr(self.model_class, self.image_field)
        bind = _session_bind(self.model_class)
        statement = (
            select(self.model_class)
            .where(column.is_not(None), column != "")
            .execution_options(yield_per=self.batch_size)
        )
        with Session(bind=bind) as session:
            for instance in session.scalars(statement):
                name = getattr(instance, self.image_field)
                yield SourceFile(str(name), instance=instance, attname=self.image_field)
                # Rows already yielded need not stay in the identity map.
                session.expunge(instance)

    def count(self) -> int:
        """How many rows have a source."""
        from sqlalchemy import func, select
        from sqlalchemy.orm import Session

        column = getattr(self.model_class, self.image_field)
        statement = (
            select(func.count())
            .select_from(self.model_class)
            .where(column.is_not(None), column != "")
        )
        with Session(bind=_session_bind(self.model_class)) as session:
            return int(session.scalar(statement) or 0)


def _session_bind(model_class: type[t.Any]) -> t.Any:
    from flask import current_app

    from ..exceptions import ImproperlyConfigured

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
    from sqlalchemy import inspect

    return db.session.get_bind(mapper=inspect(model_class))
