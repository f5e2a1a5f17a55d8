"""SQLAlchemy integration: ImageSpecField, source groups, source signals, ProcessedImageField.

Every test runs on SQLite and on the local PostgreSQL server (each test in a
schema of its own). Models are defined anew for every test, on purpose: the
library must accept redefining a model (the latest definition wins).
"""

from __future__ import annotations

import dataclasses
import io
import threading
import typing as t
from pathlib import Path

import pytest
from flask import Flask, render_template_string
from flask_sqlalchemy import SQLAlchemy
from PIL import Image
from sqlalchemy import ForeignKey, Integer, String, func, insert, inspect, select
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column, relationship
from werkzeug.datastructures import FileStorage

from flask_imagekit import ImageKit, ImageSpec, register
from flask_imagekit.exceptions import ImproperlyConfigured, MissingSource, SourceError
from flask_imagekit.globals import current_state
from flask_imagekit.models import (
    ImageSpecField,
    ProcessedColumn,
    ProcessedImageField,
    StoredImage,
    listen,
)
from flask_imagekit.processors import ResizeToFill
from flask_imagekit.registry import default_registry
from flask_imagekit.signals import source_changed, source_created, source_deleted
from flask_imagekit.specs.sourcegroups import ImageFieldSourceGroup
from flask_imagekit.storage import FileSystemStorage
from flask_imagekit.utils import get_field_info

from .conftest import Database, encode, photo, save_source

OPTIMISTIC = "flask_imagekit.cachefiles.strategies.Optimistic"
DEFAULT_ID = "tests:profile:avatar_thumbnail"
# Models ------------------------------------------------------------------------------


def default_thumbnail() -> ImageSpecField:
    return ImageSpecField(
        source="avatar", processors=[ResizeToFill(100, 50)], format="JPEG", options={"quality": 60}
    )


@dataclasses.dataclass
class Models:
    db: SQLAlchemy
    Profile: t.Any
    VipProfile: t.Any
    Gallery: t.Any = None
    Picture: t.Any = None


def define_models(
    thumbnail: ImageSpecField | None = None,
    *,
    vip_banner: ImageSpecField | None = None,
    banner: ImageSpecField | None = None,
    gallery: bool = False,
) -> Models:
    """A fresh declarative base, Flask-SQLAlchemy object and models.

    ``Profile`` (with ``avatar_thumbnail``, and ``banner`` if given) and its single-table subclass
    ``VipProfile`` (with ``banner`` if ``vip_banner`` is given); with ``gallery``,
    ``Gallery`` and its ``Picture`` rows (delete-orphan cascade, a spec field
    declared on a mixin).
    """

    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)

    class Profile(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "profile"
        id = mapped_column(Integer, primary_key=True)
        kind = mapped_column(String(20), nullable=False, default="profile")
        title = mapped_column(String(50), nullable=False, default="")
        avatar = mapped_column(String(255), nullable=True)
        thumbnail_width = mapped_column(Integer, nullable=False, default=100)
        thumbnail_height = mapped_column(Integer, nullable=False, default=50)
        photo = ProcessedImageField(
            upload_to="photos", processors=[ResizeToFill(64, 64)], format="JPEG"
        )
        avatar_thumbnail = thumbnail if thumbnail is not None else default_thumbnail()
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "profile"}
        if banner is not None:
            banner_field = banner

    class VipProfile(Profile):
        __mapper_args__ = {"polymorphic_identity": "vip"}
        if vip_banner is not None:
            banner = vip_banner

    models = Models(db, Profile, VipProfile)
    if not gallery:
        return models

    class PictureThumbnailMixin:
        thumbnail = ImageSpecField(source="image", processors=[ResizeToFill(30, 20)], format="PNG")

    class Gallery(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "gallery"
        id = mapped_column(Integer, primary_key=True)
        pictures = relationship("Picture", cascade="all, delete-orphan")

    class Picture(PictureThumbnailMixin, db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "picture"
        id = mapped_column(Integer, primary_key=True)
        gallery_id = mapped_column(ForeignKey("gallery.id"))
        image = mapped_column(String(255))

    models.Gallery, models.Picture = Gallery, Picture
    return models


@dataclasses.dataclass
class Env:
    app: Flask
    db: SQLAlchemy
    models: Models
    media: Path
    database: Database

    @property
    def Profile(self) -> t.Any:  # noqa: N802
        return self.models.Profile

    @property
    def VipProfile(self) -> t.Any:  # noqa: N802
        return self.models.VipProfile

    @property
    def session(self) -> t.Any:
        return self.db.session

    def source(self, name: str, size: tuple[int, int] = (160, 120)) -> str:
        return save_source(self.media, name, photo(size))

    def file(self, name: str) -> Path:
        return self.media / name


@pytest.fixture
def make_env(database: Database, tmp_path: Path) -> t.Iterator[t.Callable[..., Env]]:
    """``make_env(thumbnail=None, *, vip_banner=, banner=, gallery=False, **config)``.

    Defines the models, makes an app with ImageKit and the db, pushes its context.
    """
    cleanups: list[t.Callable[[], None]] = []

    def factory(
        thumbnail: ImageSpecField | None = None,
        *,
        vip_banner: ImageSpecField | None = None,
        banner: ImageSpecField | None = None,
        gallery: bool = False,
        **config: t.Any,
    ) -> Env:
        models = define_models(thumbnail, vip_banner=vip_banner, banner=banner, gallery=gallery)
        media = tmp_path / "media"
        media.mkdir(exist_ok=True)
        app = Flask(__name__, instance_path=str(tmp_path / "instance"))
        app.config.update(
            TESTING=True,
            IMAGEKIT_MEDIA_ROOT=str(media),
            SQLALCHEMY_DATABASE_URI=database.uri,
            SQLALCHEMY_ENGINE_OPTIONS=database.engine_options,
            **config,
        )
        db = models.db
        db.init_app(app)
        ImageKit(app, db=db)
        ctx = app.app_context()
        ctx.push()

        def cleanup() -> None:
            try:
                db.session.remove()
                for engine in db.engines.values():
                    engine.dispose()
            finally:
                ctx.pop()

        cleanups.append(cleanup)
        db.create_all()
        return Env(app, db, models, media, database)

    yield factory
    for cleanup in reversed(cleanups):
        cleanup()


@pytest.fixture
def env(make_env: t.Callable[..., Env]) -> Env:
    return make_env()


Event = tuple[str, t.Any, t.Any]


@pytest.fixture
def events() -> t.Iterator[list[Event]]:
    """(kind, sender, source) of every source signal sent during the test."""
    received: list[Event] = []

    def receiver(kind: str) -> t.Callable[..., None]:
        def receive(sender: t.Any, source: t.Any = None, **extra: t.Any) -> None:
            received.append((kind, sender, source))

        return receive

    connected = [
        (source_created, receiver("created")),
        (source_changed, receiver("changed")),
        (source_deleted, receiver("deleted")),
    ]
    for signal, handler in connected:
        signal.connect(handler, weak=False)
    yield received
    for signal, handler in connected:
        signal.disconnect(handler)


def summary(events: list[Event]) -> list[tuple[str, str]]:
    return [(kind, source.name) for kind, _, source in events]


@pytest.fixture
def storage_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, t.Any]]:
    """Every I/O call made on a FileSystemStorage (``url`` does none, so it is not spied)."""
    calls: list[tuple[str, t.Any]] = []
    for method in ("exists", "open", "size", "save", "delete", "listdir", "path"):
        original = getattr(FileSystemStorage, method)

        def spy(self: t.Any, *args: t.Any, _o: t.Any = original, _m: str = method, **kw: t.Any):
            calls.append((_m, args[0] if args else None))
            return _o(self, *args, **kw)

        monkeypatch.setattr(FileSystemStorage, method, spy)
    return calls


def image_size(path: Path) -> tuple[tuple[int, int], str | None]:
    with Image.open(path) as img:
        return img.size, img.format


def png_bytes(size: tuple[int, int] = (120, 90)) -> bytes:
    return encode(photo(size), "PNG")


def files_under(root: Path) -> list[str]:
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# The seed's three model examples ----------------------------------------------------------


def test_shorthand_field_generates_a_100x50_jpeg(env: Env) -> None:
    name = env.source("avatars/me.png")
    profile = env.Profile(avatar=name)
    env.session.add(profile)
    env.session.commit()

    thumb = profile.avatar_thumbnail
    assert thumb.url.startswith("/media/CACHE/images/avatars/me/")
    assert thumb.url.endswith(".jpg")
    assert (thumb.width, thumb.height) == (100, 50)
    assert image_size(env.file(thumb.name)) == ((100, 50), "JPEG")
    # Class access gives the field itself.
    assert isinstance(env.Profile.avatar_thumbnail, ImageSpecField)
    assert env.Profile.avatar_thumbnail.spec_id == DEFAULT_ID


def test_shorthand_options_reach_the_encoder(env: Env) -> None:
    profile = env.Profile(avatar=env.source("avatars/q.jpg", (400, 200)))
    env.session.add(profile)
    env.session.commit()
    thumb = profile.avatar_thumbnail
    assert thumb.url
    reference = io.BytesIO(encode(Image.new("RGB", (100, 50)), "JPEG", quality=60))
    with Image.open(env.file(thumb.name)) as generated, Image.open(reference) as expected:
        assert generated.quantization == expected.quantization  # quality=60 was used
    spec = default_registry.get_generator(DEFAULT_ID, source="avatars/q.jpg")
    assert (spec.format, spec.options) == ("JPEG", {"quality": 60})


@pytest.mark.parametrize("keyword", ["spec_id", "id"])
def test_long_form_registered_spec(make_env: t.Callable[..., Env], keyword: str) -> None:
    class AvatarThumbnail(ImageSpec):
        processors = [ResizeToFill(100, 50)]
        format = "JPEG"
        options = {"quality": 60}

    register.generator("myapp:profile:avatar_thumbnail", AvatarThumbnail)
    field = ImageSpecField(source="avatar", **{keyword: "myapp:profile:avatar_thumbnail"})
    env = make_env(thumbnail=field)
    assert env.Profile.avatar_thumbnail.spec_id == "myapp:profile:avatar_thumbnail"
    groups = default_registry.source_groups("myapp:profile:avatar_thumbnail")
    assert groups == [ImageFieldSourceGroup(env.Profile, "avatar")]
    assert not default_registry.has_generator(DEFAULT_ID)

    profile = env.Profile(avatar=env.source("avatars/long.jpg"))
    env.session.add(profile)
    env.session.commit()
    thumb = profile.avatar_thumbnail
    assert isinstance(thumb.generator, AvatarThumbnail)
    assert thumb.url.endswith(".jpg")
    assert image_size(env.file(thumb.name)) == ((100, 50), "JPEG")


def test_dynamic_spec_reads_columns_through_get_field_info(make_env: t.Callable[..., Env]) -> None:
    seen: list[tuple[t.Any, str]] = []

    class AvatarThumbnail(ImageSpec):
        format = "JPEG"
        options = {"quality": 60}

        @property
        def processors(self) -> list[t.Any]:
            instance, field_name = get_field_info(self.source)
            seen.append((instance, field_name))
            return [ResizeToFill(instance.thumbnail_width, instance.thumbnail_height)]

    register.generator("myapp:profile:avatar_thumbnail", AvatarThumbnail)
    env = make_env(ImageSpecField(source="avatar", spec_id="myapp:profile:avatar_thumbnail"))
    name = env.source("avatars/dyn.jpg", (300, 200))
    small = env.Profile(avatar=name, thumbnail_width=40, thumbnail_height=30)
    large = env.Profile(avatar=name, thumbnail_width=120, thumbnail_height=80)
    env.session.add_all([small, large])
    env.session.commit()

    small_thumb, large_thumb = small.avatar_thumbnail, large.avatar_thumbnail
    assert (small_thumb.width, small_thumb.height) == (40, 30)
    assert (large_thumb.width, large_thumb.height) == (120, 80)
    assert small_thumb.name != large_thumb.name  # same source, other parameters
    assert image_size(env.file(small_thumb.name)) == ((40, 30), "JPEG")
    assert image_size(env.file(large_thumb.name)) == ((120, 80), "JPEG")
    assert seen
    assert all(field == "avatar" for _, field in seen)
    assert {id(instance) for instance, _ in seen} == {id(small), id(large)}
    assert get_field_info(small.avatar_thumbnail.generator.source) == (small, "avatar")
    assert get_field_info(small.avatar_thumbnail.generator.source)[0] is small

    # Changing the columns changes the file.
    small.thumbnail_width = 50
    env.session.commit()
    assert (small.avatar_thumbnail.width, small.avatar_thumbnail.height) == (50, 30)


# Registration ------------------------------------------------------------------------


def test_default_spec_id_and_source_group_are_registered(env: Env) -> None:
    assert default_registry.has_generator(DEFAULT_ID)
    assert env.Profile.avatar_thumbnail.spec_id == DEFAULT_ID
    group = ImageFieldSourceGroup(env.Profile, "avatar")
    groups = default_registry.source_groups(DEFAULT_ID)
    assert group in groups
    assert len(groups) == 1
    assert groups[0].model_class is env.Profile
    assert groups[0].image_field == "avatar"
    # The app's registry sees them through its parent.
    state = env.app.extensions["imagekit"].state(env.app)
    assert state.registry.generator_ids_for_source_group(group) == [DEFAULT_ID]


def test_redefining_the_model_replaces_spec_and_group() -> None:
    first = define_models()
    spec_one = default_registry.generator_factory(DEFAULT_ID)
    second = define_models(
        ImageSpecField(source="avatar", processors=[ResizeToFill(10, 10)], format="PNG")
    )
    spec_two = default_registry.generator_factory(DEFAULT_ID)
    assert spec_two is not spec_one
    assert spec_two.format == "PNG"
    groups = default_registry.source_groups(DEFAULT_ID)
    assert len(groups) == 1
    assert groups[0].model_class is second.Profile
    assert first.Profile is not second.Profile


def test_empty_sources_have_no_file(env: Env) -> None:
    for value in (None, ""):
        profile = env.Profile(avatar=value)
        env.session.add(profile)
        env.session.commit()
        thumb = profile.avatar_thumbnail
        assert not bool(thumb)
        with pytest.raises(MissingSource):
            _ = thumb.url
    assert files_under(env.media) == []


# Source groups ---------------------------------------------------------------------------


def _fill(env: Env, rows: int = 1200) -> list[str]:
    """Insert ``rows`` profiles (every 10th a VipProfile); return the non-empty sources."""
    expected: list[str] = []
    data = []
    for i in range(rows):
        avatar: str | None = f"avatars/{i}.jpg"
        if i % 7 == 0:
            avatar = None
        elif i % 11 == 0:
            avatar = ""
        kind = "vip" if i % 10 == 3 else "profile"
        data.append({"kind": kind, "avatar": avatar, "title": f"p{i}"})
        if avatar:
            expected.append(avatar)
    env.session.execute(insert(env.Profile), data)
    env.session.commit()
    return expected


def test_source_group_streams_every_non_empty_source(env: Env) -> None:
    expected = _fill(env)
    group = ImageFieldSourceGroup(env.Profile, "avatar", batch_size=7)
    names = []
    kinds = set()
    max_identity_map = 0
    for source in group.files():
        names.append(source.name)
        kinds.add(type(source.instance).__name__)
        assert source.attname == "avatar"
        assert get_field_info(source)[1] == "avatar"
        session = inspect(source.instance).session
        max_identity_map = max(max_identity_map, len(session.identity_map))
    assert sorted(names) == sorted(expected)
    assert len(names) == len(expected) > 900
    assert kinds == {"Profile", "VipProfile"}  # subclass rows come as subclass instances
    # Batches of 7: never more rows than one batch in memory.
    assert 1 <= max_identity_map <= 7
    assert group.count() == len(expected)


def test_source_group_default_batch_size_works(env: Env) -> None:
    expected = _fill(env, 60)
    group = ImageFieldSourceGroup(env.Profile, "avatar")
    assert sorted(s.name for s in group.files()) == sorted(expected)
    assert group.count() == len(expected)


def test_source_group_of_subclass_lists_only_its_rows(env: Env) -> None:
    _fill(env, 100)
    vip = ImageFieldSourceGroup(env.VipProfile, "avatar", batch_size=3)
    names = [s.name for s in vip.files()]
    expected = [f"avatars/{i}.jpg" for i in range(100) if i % 10 == 3 and i % 7 and i % 11]
    assert sorted(names) == sorted(expected)
    assert vip.count() == len(expected)


def test_source_group_of_empty_table(env: Env) -> None:
    group = ImageFieldSourceGroup(env.Profile, "avatar")
    assert list(group.files()) == []
    assert group.count() == 0


# Source signals -----------------------------------------------------------------------------


def test_insert_sends_created_after_commit_only(env: Env, events: list[Event]) -> None:
    name = env.source("avatars/new.jpg")
    profile = env.Profile(avatar=name)
    env.session.add(profile)
    env.session.flush()
    assert events == []
    env.session.commit()
    assert summary(events) == [("created", name)]
    kind, sender, source = events[0]
    assert isinstance(sender, ImageFieldSourceGroup)
    assert sender == ImageFieldSourceGroup(env.Profile, "avatar")
    assert sender.model_class is env.Profile
    assert source.instance is profile
    assert source.attname == "avatar"


def test_insert_of_subclass_sends_with_base_group(env: Env, events: list[Event]) -> None:
    vip = env.VipProfile(avatar="avatars/vip.jpg")
    env.session.add(vip)
    env.session.commit()
    assert summary(events) == [("created", "avatars/vip.jpg")]
    assert events[0][1] == ImageFieldSourceGroup(env.Profile, "avatar")
    assert events[0][2].instance is vip


def _committed(env: Env, **values: t.Any) -> t.Any:
    """A committed row, loaded again (its columns hold their committed values)."""
    profile = env.Profile(**values)
    env.session.add(profile)
    env.session.commit()
    env.session.refresh(profile)
    return profile


def test_change_sends_changed_and_deleted(env: Env, events: list[Event]) -> None:
    profile = _committed(env, avatar="avatars/old.jpg")
    events.clear()
    profile.avatar = "avatars/new.jpg"
    env.session.flush()
    assert events == []
    env.session.commit()
    assert summary(events) == [("changed", "avatars/new.jpg"), ("deleted", "avatars/old.jpg")]
    assert all(sender == ImageFieldSourceGroup(env.Profile, "avatar") for _, sender, _ in events)
    assert events[0][2].instance is profile


def test_change_of_a_row_loaded_by_get(env: Env, events: list[Event]) -> None:
    profile_id = _committed(env, avatar="avatars/old.jpg").id
    env.session.remove()
    events.clear()
    profile = env.session.get(env.Profile, profile_id)
    profile.avatar = "avatars/new.jpg"
    env.session.commit()
    assert summary(events) == [("changed", "avatars/new.jpg"), ("deleted", "avatars/old.jpg")]


def test_clearing_the_source_sends_deleted_only(env: Env, events: list[Event]) -> None:
    profile = _committed(env, avatar="avatars/old.jpg")
    events.clear()
    profile.avatar = None
    env.session.commit()
    assert summary(events) == [("deleted", "avatars/old.jpg")]
    env.session.refresh(profile)
    events.clear()
    profile.avatar = "avatars/again.jpg"
    env.session.commit()
    assert summary(events) == [("changed", "avatars/again.jpg")]


EXPIRED_REASON = (
    "bug: a source column set on an expired row (e.g. right after a commit) has no old value "
    "in its history (no active_history), so the old source's source_deleted is never sent and "
    "re-assigning the same value sends a spurious source_changed"
)


def test_change_on_expired_row_sends_deleted_for_old_source(env: Env, events: list[Event]) -> None:
    profile = env.Profile(avatar="avatars/old.jpg")
    env.session.add(profile)
    env.session.commit()  # expires profile
    events.clear()
    profile.avatar = "avatars/new.jpg"
    env.session.commit()
    assert summary(events) == [("changed", "avatars/new.jpg"), ("deleted", "avatars/old.jpg")]


def test_clearing_source_on_expired_row_sends_deleted(env: Env, events: list[Event]) -> None:
    profile = env.Profile(avatar="avatars/old.jpg")
    env.session.add(profile)
    env.session.commit()
    events.clear()
    profile.avatar = None
    env.session.commit()
    assert summary(events) == [("deleted", "avatars/old.jpg")]


def test_same_value_on_expired_row_sends_nothing(env: Env, events: list[Event]) -> None:
    profile = env.Profile(avatar="avatars/same.jpg")
    env.session.add(profile)
    env.session.commit()
    events.clear()
    profile.avatar = "avatars/same.jpg"
    env.session.commit()
    assert events == []


def test_orphans_deleted_when_source_replaced_on_expired_row(
    make_env: t.Callable[..., Env],
) -> None:
    env = make_env(IMAGEKIT_DELETE_ORPHANED_CACHEFILES=True)
    profile = env.Profile(avatar=env.source("avatars/a.jpg"))
    env.session.add(profile)
    env.session.commit()
    path = env.file(profile.avatar_thumbnail.name)
    assert profile.avatar_thumbnail.url
    env.session.commit()  # expire the row, as a later request would find it
    profile.avatar = env.source("avatars/b.jpg")
    env.session.commit()
    assert not path.exists()


def test_delete_row_sends_deleted(env: Env, events: list[Event]) -> None:
    profile = env.Profile(avatar="avatars/gone.jpg")
    env.session.add(profile)
    env.session.commit()
    events.clear()
    env.session.delete(profile)  # the row is expired: its source must be loaded first
    env.session.flush()
    assert events == []
    env.session.commit()
    assert summary(events) == [("deleted", "avatars/gone.jpg")]


def test_row_without_source_sends_nothing(env: Env, events: list[Event]) -> None:
    env.session.add_all([env.Profile(avatar=None), env.Profile(avatar="")])
    env.session.commit()
    for profile in env.session.scalars(select(env.Profile)):
        env.session.delete(profile)
    env.session.commit()
    assert events == []


def test_rollback_sends_nothing(env: Env, events: list[Event]) -> None:
    env.session.add(env.Profile(avatar="avatars/never.jpg"))
    env.session.flush()
    env.session.rollback()
    assert events == []
    # The next transaction does not inherit anything.
    env.session.add(env.Profile(avatar="avatars/next.jpg"))
    env.session.commit()
    assert summary(events) == [("created", "avatars/next.jpg")]


def test_update_of_another_column_sends_nothing(env: Env, events: list[Event]) -> None:
    profile = _committed(env, avatar="avatars/same.jpg")
    events.clear()
    profile.title = "renamed"
    env.session.commit()
    env.session.refresh(profile)
    profile.avatar = "avatars/same.jpg"  # same value again
    env.session.commit()
    env.session.refresh(profile)
    profile.avatar = "avatars/other.jpg"
    profile.avatar = "avatars/same.jpg"  # and back before the flush
    env.session.commit()
    assert events == []


def test_failed_commit_sends_nothing(env: Env, events: list[Event]) -> None:
    from sqlalchemy.exc import IntegrityError

    env.session.add(env.Profile(id=1000))
    env.session.commit()
    env.session.remove()
    env.session.add(env.Profile(id=1000, avatar="avatars/bad.jpg"))  # duplicate key
    with pytest.raises(IntegrityError):
        env.session.commit()
    env.session.rollback()
    env.session.add(env.Profile(avatar="avatars/good.jpg"))
    env.session.commit()
    assert summary(events) == [("created", "avatars/good.jpg")]


def test_signals_outside_app_context_are_not_sent(env: Env, events: list[Event]) -> None:
    engine = env.db.engine
    errors: list[BaseException] = []

    def work() -> None:  # a new thread has no app context
        try:
            with Session(engine) as session:
                session.add(env.Profile(avatar="avatars/outside.jpg"))
                session.commit()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert errors == []
    assert events == []
    assert env.session.scalar(select(env.Profile.avatar)) == "avatars/outside.jpg"


def test_sessions_not_made_by_db_session_send_nothing(env: Env, events: list[Event]) -> None:
    with Session(env.db.engine) as session:  # inside the app context, but not db.session
        profile = env.Profile(avatar="avatars/plain.jpg")
        session.add(profile)
        session.commit()
        profile.avatar = "avatars/plain2.jpg"
        session.commit()
        session.delete(profile)
        session.commit()
    assert events == []
    env.session.add(env.Profile(avatar="avatars/db.jpg"))
    env.session.commit()
    assert summary(events) == [("created", "avatars/db.jpg")]


def test_listening_twice_to_one_db_sends_each_signal_once(env: Env, events: list[Event]) -> None:
    listen(env.db)  # ImageKit(app, db=db) already did
    listen(env.db)
    env.session.add(env.Profile(avatar="avatars/once.jpg"))
    env.session.commit()
    assert summary(events) == [("created", "avatars/once.jpg")]


def test_listen_refuses_what_is_not_flask_sqlalchemy() -> None:
    with pytest.raises(ImproperlyConfigured, match="not a Flask-SQLAlchemy extension"):
        listen(object())


class Cover(ImageSpec):
    processors = [ResizeToFill(10, 10)]
    format = "PNG"


def test_each_app_sends_the_signals_of_its_own_db(tmp_path: Path, events: list[Event]) -> None:
    made = []
    for n in (1, 2):

        class Base(DeclarativeBase):
            pass

        db = SQLAlchemy(model_class=Base)

        class Album(db.Model):  # type: ignore[name-defined,misc]
            __tablename__ = f"album{n}"
            id = mapped_column(Integer, primary_key=True)
            cover = mapped_column(String(255))

        app = Flask(f"album{n}", instance_path=str(tmp_path / f"instance{n}"))
        app.config.update(
            TESTING=True,
            IMAGEKIT_MEDIA_ROOT=str(tmp_path / f"media{n}"),
            SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / f'db{n}.sqlite3'}",
        )
        db.init_app(app)
        imagekit = ImageKit(app, db=db)
        group = ImageFieldSourceGroup(Album, "cover")
        # Registered on this app's extension only: the other app does not watch it.
        imagekit.register.generator(f"tests:album{n}", Cover)
        imagekit.register.source_group(f"tests:album{n}", group)
        made.append((app, db, Album, group))
    for n, (app, db, Album, _) in enumerate(made, 1):  # noqa: N806 - a model class
        with app.app_context():
            db.create_all()
            album = Album(cover=f"covers/{n}.jpg")
            db.session.add(album)
            db.session.commit()
            db.session.delete(album)
            db.session.commit()
            db.session.remove()
    (_, _, _, first), (_, _, _, second) = made
    assert [(kind, sender, source.name) for kind, sender, source in events] == [
        ("created", first, "covers/1.jpg"),
        ("deleted", first, "covers/1.jpg"),
        ("created", second, "covers/2.jpg"),
        ("deleted", second, "covers/2.jpg"),
    ]
    assert events[0][1] is first
    assert events[2][1] is second


def test_a_group_registered_later_watches_from_the_next_transaction(
    make_env: t.Callable[..., Env], events: list[Event]
) -> None:
    env = make_env()
    profile = env.Profile(title="t", photo="photos/old.jpg")
    env.session.add(profile)
    env.session.commit()
    group = ImageFieldSourceGroup(env.Profile, "photo")
    register.generator("tests:profile:photo_copy", Cover)
    register.source_group("tests:profile:photo_copy", group)
    profile.title = "loaded again"  # the next transaction begins with the group known
    env.session.commit()
    profile.photo = "photos/new.jpg"  # set on an expired row
    env.session.commit()
    photo_events = [(kind, source.name) for kind, sender, source in events if sender == group]
    assert photo_events == [("changed", "photos/new.jpg"), ("deleted", "photos/old.jpg")]


def test_savepoint_rollback_keeps_outer_events(env: Env, events: list[Event]) -> None:
    env.session.add(env.Profile(avatar="avatars/outer.jpg"))
    env.session.flush()
    nested = env.session.begin_nested()
    env.session.add(env.Profile(avatar="avatars/inner.jpg"))
    env.session.flush()
    nested.rollback()
    env.session.commit()
    assert summary(events) == [("created", "avatars/outer.jpg")]


def test_closed_session_does_not_leak_events(env: Env, events: list[Event]) -> None:
    env.session.add(env.Profile(avatar="avatars/abandoned.jpg"))
    env.session.flush()
    env.session.close()  # what Flask-SQLAlchemy's teardown does after an error
    env.session.add(env.Profile(avatar="avatars/next.jpg"))
    env.session.commit()
    assert summary(events) == [("created", "avatars/next.jpg")]


def test_relationship_cascade_delete_sends_deleted(
    make_env: t.Callable[..., Env], events: list[Event]
) -> None:
    env = make_env(gallery=True)
    Gallery, Picture = env.models.Gallery, env.models.Picture  # noqa: N806
    gallery = Gallery(pictures=[Picture(image="pics/a.jpg"), Picture(image="pics/b.jpg")])
    env.session.add(gallery)
    env.session.commit()
    assert sorted(summary(events)) == [("created", "pics/a.jpg"), ("created", "pics/b.jpg")]
    events.clear()
    env.session.delete(gallery)
    env.session.commit()
    assert sorted(summary(events)) == [("deleted", "pics/a.jpg"), ("deleted", "pics/b.jpg")]


def test_delete_orphan_cascade_sends_deleted(
    make_env: t.Callable[..., Env], events: list[Event]
) -> None:
    env = make_env(gallery=True)
    Gallery, Picture = env.models.Gallery, env.models.Picture  # noqa: N806
    gallery = Gallery(pictures=[Picture(image="pics/a.jpg"), Picture(image="pics/b.jpg")])
    env.session.add(gallery)
    env.session.commit()
    events.clear()
    gallery.pictures.pop(0)
    env.session.commit()
    assert env.session.scalar(select(func.count()).select_from(Picture)) == 1
    assert summary(events) == [("deleted", "pics/a.jpg")]


def test_spec_field_on_a_mixin_lists_its_sources(make_env: t.Callable[..., Env]) -> None:
    env = make_env(gallery=True)
    Gallery, Picture = env.models.Gallery, env.models.Picture  # noqa: N806
    env.session.add(Gallery(pictures=[Picture(image="pics/a.jpg"), Picture(image=None)]))
    env.session.commit()
    groups = default_registry.source_groups(Picture.thumbnail.spec_id)
    assert groups
    names = [source.name for group in groups for source in group.files()]
    assert names == ["pics/a.jpg"]


# Strategies ------------------------------------------------------------------------------------


def test_just_in_time_does_not_generate_on_commit(env: Env) -> None:
    profile = env.Profile(avatar=env.source("avatars/jit.jpg"))
    env.session.add(profile)
    env.session.commit()
    name = profile.avatar_thumbnail.name
    assert not env.file(name).exists()
    assert profile.avatar_thumbnail.url.endswith(".jpg")
    assert env.file(name).exists()


def test_optimistic_generates_after_commit_and_urls_cost_nothing(
    make_env: t.Callable[..., Env], storage_calls: list[tuple[str, t.Any]]
) -> None:
    env = make_env(IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=OPTIMISTIC)
    name = env.source("avatars/opt.jpg")
    profile = env.Profile(avatar=name)
    env.session.add(profile)
    env.session.flush()
    assert files_under(env.media / "CACHE") == []  # not before the commit
    env.session.commit()
    cache_name = profile.avatar_thumbnail.name
    assert image_size(env.file(cache_name)) == ((100, 50), "JPEG")

    storage_calls.clear()
    thumb = profile.avatar_thumbnail
    assert thumb.url == f"/media/{cache_name}"
    assert bool(thumb)
    assert storage_calls == []

    # Changing the source regenerates.
    other = env.source("avatars/opt2.png", (90, 90))
    profile.avatar = other
    env.session.commit()
    new_name = profile.avatar_thumbnail.name
    assert new_name != cache_name
    assert image_size(env.file(new_name)) == ((100, 50), "JPEG")
    assert env.file(cache_name).exists()  # orphans are kept by default


def test_optimistic_rollback_generates_nothing(make_env: t.Callable[..., Env]) -> None:
    env = make_env(IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=OPTIMISTIC)
    env.session.add(env.Profile(avatar=env.source("avatars/rb.jpg")))
    env.session.flush()
    env.session.rollback()
    assert files_under(env.media / "CACHE") == []


def test_optimistic_with_dynamic_spec(make_env: t.Callable[..., Env]) -> None:
    class Dynamic(ImageSpec):
        format = "PNG"

        @property
        def processors(self) -> list[t.Any]:
            instance, _ = get_field_info(self.source)
            return [ResizeToFill(instance.thumbnail_width, instance.thumbnail_height)]

    register.generator("myapp:profile:dynamic", Dynamic)
    env = make_env(
        ImageSpecField(source="avatar", spec_id="myapp:profile:dynamic"),
        IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=OPTIMISTIC,
    )
    profile = env.Profile(
        avatar=env.source("avatars/d.jpg"), thumbnail_width=33, thumbnail_height=22
    )
    env.session.add(profile)
    env.session.commit()  # the expired row is reloaded by the spec after the commit
    assert image_size(env.file(profile.avatar_thumbnail.name)) == ((33, 22), "PNG")


def test_optimistic_missing_source_does_not_break_commit(
    make_env: t.Callable[..., Env], caplog: pytest.LogCaptureFixture
) -> None:
    env = make_env(IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=OPTIMISTIC)
    profile = env.Profile(avatar="avatars/not-there.jpg")
    env.session.add(profile)
    env.session.commit()  # logged, not raised: the row is committed
    assert env.session.scalar(select(env.Profile.avatar)) == "avatars/not-there.jpg"
    assert "failed" in caplog.text
    assert files_under(env.media / "CACHE") == []


def test_failing_spec_does_not_break_commit(make_env: t.Callable[..., Env]) -> None:
    class Picky(ImageSpec):
        format = "PNG"

        @property
        def processors(self) -> list[t.Any]:
            instance, _ = get_field_info(self.source)
            if not instance.thumbnail_width:
                msg = "thumbnail_width must be positive"
                raise ValueError(msg)
            return [ResizeToFill(instance.thumbnail_width, instance.thumbnail_height)]

    register.generator("myapp:profile:picky", Picky)
    env = make_env(
        ImageSpecField(source="avatar", spec_id="myapp:profile:picky"),
        IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=OPTIMISTIC,
    )
    name = env.source("avatars/picky.jpg")
    broken = env.Profile(avatar=name, thumbnail_width=0, thumbnail_height=10)
    fine = env.Profile(avatar=name, thumbnail_width=12, thumbnail_height=10)
    env.session.add_all([broken, fine])
    env.session.commit()  # the rows are committed whatever a spec does afterwards
    assert image_size(env.file(fine.avatar_thumbnail.name)) == ((12, 10), "PNG")


def test_optimistic_generates_every_spec_of_the_source(make_env: t.Callable[..., Env]) -> None:
    env = make_env(
        banner=ImageSpecField(source="avatar", processors=[ResizeToFill(30, 10)], format="PNG"),
        IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=OPTIMISTIC,
    )
    assert env.Profile.banner_field.spec_id == "tests:profile:banner_field"
    group = ImageFieldSourceGroup(env.Profile, "avatar")
    state = env.app.extensions["imagekit"].state(env.app)
    assert state.registry.generator_ids_for_source_group(group) == [
        DEFAULT_ID,
        "tests:profile:banner_field",
    ]
    profile = env.Profile(avatar=env.source("avatars/both.jpg"))
    env.session.add(profile)
    env.session.commit()
    assert image_size(env.file(profile.avatar_thumbnail.name)) == ((100, 50), "JPEG")
    assert image_size(env.file(profile.banner_field.name)) == ((30, 10), "PNG")


def test_subclass_spec_field_is_registered(make_env: t.Callable[..., Env]) -> None:
    env = make_env(
        vip_banner=ImageSpecField(source="avatar", processors=[ResizeToFill(30, 10)], format="PNG")
    )
    assert env.VipProfile.banner.spec_id == "tests:vipprofile:banner"
    assert default_registry.source_groups("tests:vipprofile:banner") == [
        ImageFieldSourceGroup(env.VipProfile, "avatar")
    ]
    vip = env.VipProfile(avatar=env.source("avatars/v.jpg"))
    env.session.add(vip)
    env.session.commit()
    assert (vip.banner.width, vip.banner.height) == (30, 10)
    assert (vip.avatar_thumbnail.width, vip.avatar_thumbnail.height) == (100, 50)
    assert not hasattr(env.Profile(), "banner")


def test_optimistic_generates_base_and_subclass_specs(make_env: t.Callable[..., Env]) -> None:
    env = make_env(
        vip_banner=ImageSpecField(
            source="avatar", processors=[ResizeToFill(30, 10)], format="PNG"
        ),
        IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY=OPTIMISTIC,
    )
    vip = env.VipProfile(avatar=env.source("avatars/vip.jpg"))
    env.session.add(vip)
    env.session.commit()
    assert image_size(env.file(vip.banner.name)) == ((30, 10), "PNG")
    assert image_size(env.file(vip.avatar_thumbnail.name)) == ((100, 50), "JPEG")


# Orphaned cache files ----------------------------------------------------------------------------


def _generated(env: Env, avatar: str) -> tuple[t.Any, Path]:
    profile = env.Profile(avatar=env.source(avatar))
    env.session.add(profile)
    env.session.commit()
    thumb = profile.avatar_thumbnail
    assert thumb.url  # JustInTime generates it
    path = env.file(thumb.name)
    assert path.exists()
    return profile, path


def test_delete_orphaned_cachefiles_on_row_delete(make_env: t.Callable[..., Env]) -> None:
    env = make_env(IMAGEKIT_DELETE_ORPHANED_CACHEFILES=True)
    profile, path = _generated(env, "avatars/orphan.jpg")
    env.session.delete(profile)
    env.session.flush()
    assert path.exists()  # not before the commit
    env.session.commit()
    assert not path.exists()
    assert env.file("avatars/orphan.jpg").exists()  # the source stays

    # The backend forgot the file: a new row with the same source regenerates it.
    again = env.Profile(avatar="avatars/orphan.jpg")
    env.session.add(again)
    env.session.commit()
    assert again.avatar_thumbnail.url
    assert path.exists()


def test_delete_orphaned_cachefiles_on_source_change(make_env: t.Callable[..., Env]) -> None:
    env = make_env(IMAGEKIT_DELETE_ORPHANED_CACHEFILES=True)
    profile, path = _generated(env, "avatars/before.jpg")
    profile.avatar = env.source("avatars/after.jpg")
    env.session.commit()
    assert not path.exists()
    assert env.file("avatars/before.jpg").exists()
    assert profile.avatar_thumbnail.url
    assert env.file(profile.avatar_thumbnail.name).exists()


def test_delete_orphaned_cachefiles_not_on_rollback(make_env: t.Callable[..., Env]) -> None:
    env = make_env(IMAGEKIT_DELETE_ORPHANED_CACHEFILES=True)
    profile, path = _generated(env, "avatars/kept.jpg")
    env.session.delete(profile)
    env.session.flush()
    env.session.rollback()
    assert path.exists()


def test_orphaned_cachefiles_are_kept_by_default(env: Env) -> None:
    profile, path = _generated(env, "avatars/keep.jpg")
    profile.avatar = env.source("avatars/keep2.jpg")
    env.session.commit()
    assert path.exists()
    env.session.delete(profile)
    env.session.commit()
    assert path.exists()


def test_delete_orphaned_with_dynamic_spec_on_expired_row(make_env: t.Callable[..., Env]) -> None:
    class Dynamic(ImageSpec):
        format = "JPEG"

        @property
        def processors(self) -> list[t.Any]:
            instance, _ = get_field_info(self.source)
            return [ResizeToFill(instance.thumbnail_width, instance.thumbnail_height)]

    register.generator("myapp:profile:dynamic", Dynamic)
    env = make_env(
        ImageSpecField(source="avatar", spec_id="myapp:profile:dynamic"),
        IMAGEKIT_DELETE_ORPHANED_CACHEFILES=True,
    )
    profile = env.Profile(
        avatar=env.source("avatars/dd.jpg"), thumbnail_width=20, thumbnail_height=20
    )
    env.session.add(profile)
    env.session.commit()
    path = env.file(profile.avatar_thumbnail.name)
    assert profile.avatar_thumbnail.url
    assert path.exists()
    env.session.commit()  # expire everything again
    env.session.delete(profile)
    env.session.commit()
    assert not path.exists()


def test_delete_orphaned_cachefiles_deletes_the_candidates_with_their_states(
    make_env: t.Callable[..., Env],
) -> None:
    class Declaring(ImageSpec):
        processors = [ResizeToFill(100, 75)]  # noqa: RUF012
        format = "JPEG"
        responsive_widths = (40,)
        responsive_formats = ("WEBP",)

    register.generator("myapp:profile:declaring", Declaring)
    env = make_env(
        ImageSpecField(source="avatar", spec_id="myapp:profile:declaring"),
        IMAGEKIT_DELETE_ORPHANED_CACHEFILES=True,
    )
    profile = env.Profile(avatar=env.source("avatars/c.jpg"))
    env.session.add(profile)
    env.session.commit()
    generator_id = profile.avatar_thumbnail.generator_id
    state = current_state()
    files = [
        state.cachefile(generator_id, source="avatars/c.jpg", candidate=key)
        for key in [None, (None, "WEBP"), (40, "WEBP"), (40, None)]
    ]
    for file in files:  # as `flask imagekit generate` makes what the spec declares
        file.generate()
    state.states.cache.clear()  # their states lost: the spec's declaration still names them
    with env.app.test_request_context():
        # Widths and formats a template asked for: the picture's record names them.
        template = '{{ picture(id, name, widths=[60], formats=["PNG"]) }}'
        assert render_template_string(template, id=generator_id, name="avatars/c.jpg")
    files += [
        state.cachefile(generator_id, source="avatars/c.jpg", candidate=key)
        for key in [(None, "PNG"), (60, "PNG"), (60, None)]
    ]
    assert all(env.file(file.name).is_file() for file in files)
    backend = files[0].cachefile_backend
    assert backend.picture_info(files[0]) is not None

    env.session.delete(profile)
    env.session.commit()
    assert [file.name for file in files if env.file(file.name).exists()] == []
    assert [file.name for file in files if backend.lookup(file).state is not None] == []
    assert backend.picture_info(files[0]) is None
    assert env.file("avatars/c.jpg").exists()


# ProcessedImageField ---------------------------------------------------------------------------


def upload(data: bytes | None = None, filename: str = "../My Photo.png") -> FileStorage:
    return FileStorage(
        stream=io.BytesIO(png_bytes() if data is None else data),
        filename=filename,
        content_type="image/png",
    )


@pytest.fixture
def generate_calls(monkeypatch: pytest.MonkeyPatch) -> list[t.Any]:
    calls: list[t.Any] = []
    original = ImageSpec.generate

    def spy(self: ImageSpec) -> t.Any:
        calls.append(self)
        return original(self)

    monkeypatch.setattr(ImageSpec, "generate", spy)
    return calls


def test_processed_field_stores_a_processed_upload(env: Env, generate_calls: list[t.Any]) -> None:
    profile = env.Profile(photo=upload())
    assert len(generate_calls) == 1
    assert isinstance(profile.photo, StoredImage)
    assert profile.photo.name == "photos/My_Photo.jpg"
    env.session.add(profile)
    env.session.commit()
    env.session.expire_all()

    stored = profile.photo
    assert isinstance(stored, StoredImage)
    assert stored.name == "photos/My_Photo.jpg"
    assert stored == "photos/My_Photo.jpg"
    assert stored.url == "/media/photos/My_Photo.jpg"
    assert (stored.width, stored.height) == (64, 64)
    assert image_size(env.file("photos/My_Photo.jpg")) == ((64, 64), "JPEG")
    assert len(generate_calls) == 1  # processed once: flush and commit do not redo it
    assert files_under(env.media) == ["photos/My_Photo.jpg"]
    raw = env.session.execute(select(env.Profile.__table__.c.photo)).scalar_one()
    assert raw == "photos/My_Photo.jpg"


def test_processed_field_assignment_on_persistent_row(env: Env) -> None:
    profile = env.Profile()
    env.session.add(profile)
    env.session.commit()
    profile.photo = upload(filename="later.png")
    env.session.commit()
    env.session.expire_all()
    assert profile.photo.name == "photos/later.jpg"
    assert (profile.photo.width, profile.photo.height) == (64, 64)


def test_processed_field_accepts_bytes_and_binary_files(env: Env, tmp_path: Path) -> None:
    from_bytes = env.Profile(photo=png_bytes())
    path = tmp_path / "upload.png"
    path.write_bytes(png_bytes((50, 200)))
    with open(path, "rb") as fp:
        from_file = env.Profile(photo=fp)
    from_buffer = env.Profile(photo=io.BytesIO(png_bytes()))
    env.session.add_all([from_bytes, from_file, from_buffer])
    env.session.commit()
    env.session.expire_all()
    assert from_file.photo.name == "photos/upload.jpg"
    assert from_bytes.photo.name.startswith("photos/")
    assert from_bytes.photo.name.endswith(".jpg")
    assert from_buffer.photo.name.endswith(".jpg")
    assert from_bytes.photo.name != from_buffer.photo.name
    for row in (from_bytes, from_file, from_buffer):
        assert (row.photo.width, row.photo.height) == (64, 64)
        assert image_size(env.file(row.photo.name)) == ((64, 64), "JPEG")


def test_processed_field_keeps_plain_strings(env: Env, generate_calls: list[t.Any]) -> None:
    profile = env.Profile(photo="photos/Already There.PNG")
    env.session.add(profile)
    env.session.commit()
    env.session.expire_all()
    assert profile.photo == "photos/Already There.PNG"
    assert isinstance(profile.photo, StoredImage)
    assert generate_calls == []
    assert files_under(env.media) == []
    profile.photo = None
    env.session.commit()
    env.session.expire_all()
    assert profile.photo is None


def test_processed_field_rollback_removes_the_file(env: Env) -> None:
    flushed = env.Profile(photo=upload(filename="flushed.png"))
    env.session.add(flushed)
    env.session.flush()
    assert env.file("photos/flushed.jpg").exists()
    env.session.rollback()
    assert not env.file("photos/flushed.jpg").exists()

    pending = env.Profile(photo=upload(filename="pending.png"))
    env.session.add(pending)  # never flushed
    assert env.file("photos/pending.jpg").exists()
    env.session.rollback()
    assert not env.file("photos/pending.jpg").exists()

    kept = env.Profile(photo=upload(filename="kept.png"))
    env.session.add(kept)
    env.session.commit()
    env.session.rollback()  # a later rollback does not touch committed files
    assert env.file("photos/kept.jpg").exists()


def test_processed_field_failed_commit_removes_the_file(env: Env) -> None:
    from sqlalchemy.exc import IntegrityError

    env.session.add(env.Profile(id=1000))
    env.session.commit()
    env.session.remove()
    env.session.add(env.Profile(id=1000, photo=upload(filename="failed.png")))  # duplicate key
    assert env.file("photos/failed.jpg").exists()
    with pytest.raises(IntegrityError):
        env.session.commit()
    env.session.rollback()
    assert files_under(env.media) == []


def test_processed_field_replacement_rollback_keeps_the_committed_file(env: Env) -> None:
    profile = env.Profile(photo=upload(filename="first.png"))
    env.session.add(profile)
    env.session.commit()
    profile.photo = upload(filename="second.png")
    env.session.flush()
    env.session.rollback()
    assert env.file("photos/first.jpg").exists()
    assert not env.file("photos/second.jpg").exists()
    assert profile.photo == "photos/first.jpg"


def test_processed_field_savepoint_then_rollback(env: Env) -> None:
    env.session.add(env.Profile(photo=upload(filename="outer.png")))
    env.session.flush()
    with env.session.begin_nested():
        env.session.add(env.Profile(photo=upload(filename="inner.png")))
    env.session.rollback()
    assert files_under(env.media) == []


def test_processed_field_savepoint_rollback_keeps_outer_upload(env: Env) -> None:
    outer = env.Profile(photo=upload(filename="outer.png"))
    env.session.add(outer)
    env.session.flush()
    nested = env.session.begin_nested()
    env.session.add(env.Profile(photo=upload(filename="inner.png")))
    env.session.flush()
    nested.rollback()
    env.session.commit()
    assert env.file("photos/outer.jpg").exists()
    assert not env.file("photos/inner.jpg").exists()


def test_processed_field_closed_session_removes_the_file(env: Env) -> None:
    env.session.add(env.Profile(photo=upload(filename="abandoned.png")))
    env.session.flush()
    env.session.close()
    assert files_under(env.media) == []


def test_processed_field_same_upload_twice_gets_two_names(env: Env) -> None:
    data = png_bytes()
    first = env.Profile(photo=upload(data))
    second = env.Profile(photo=upload(data))
    shared = upload(data, filename="shared.png")
    third, fourth = env.Profile(photo=shared), env.Profile(photo=shared)
    env.session.add_all([first, second, third, fourth])
    env.session.commit()
    env.session.expire_all()
    names = [row.photo.name for row in (first, second, third, fourth)]
    assert names[0] == "photos/My_Photo.jpg"
    assert names[1].startswith("photos/My_Photo")
    assert names[1].endswith(".jpg")
    assert names[2] == "photos/shared.jpg"
    assert len(set(names)) == 4
    for name in names:
        assert image_size(env.file(name)) == ((64, 64), "JPEG")


def test_processed_field_corrupt_upload(env: Env) -> None:
    profile = env.Profile()
    with pytest.raises(SourceError):
        profile.photo = upload(b"this is not an image", filename="bad.png")
    assert profile.photo is None
    with pytest.raises(SourceError):
        env.Profile(photo=upload(png_bytes()[:40], filename="truncated.png"))
    env.session.add(profile)
    env.session.commit()
    env.session.expire_all()
    assert profile.photo is None
    assert files_under(env.media) == []


def test_processed_field_on_subclass(env: Env) -> None:
    vip = env.VipProfile(photo=upload(filename="vip.png"))
    env.session.add(vip)
    env.session.commit()
    env.session.expire_all()
    assert vip.photo.name == "photos/vip.jpg"
    assert (vip.photo.width, vip.photo.height) == (64, 64)


def test_processed_field_html(env: Env) -> None:
    profile = env.Profile(photo=upload(filename="tag.png"))
    env.session.add(profile)
    env.session.commit()
    env.session.expire_all()
    assert profile.photo.__html__() == '<img src="/media/photos/tag.jpg" width="64" height="64">'


def test_spec_fields_refuse_processors_that_are_not_a_list() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"processors must be a list .*ResizeToFill"):
        ImageSpecField(source="avatar", processors=ResizeToFill(10, 10))  # no brackets
    with pytest.raises(ImproperlyConfigured, match=r"processors must be a list"):
        ProcessedImageField(processors=ResizeToFill(10, 10), format="JPEG")


def test_processed_field_refuses_what_is_not_an_upload(env: Env) -> None:
    with pytest.raises(SourceError, match=r"Cannot store 42 in the column Profile\.photo"):
        env.Profile(photo=42)
    assert files_under(env.media) == []


def test_processed_field_upload_to_must_return_a_name(env: Env) -> None:
    column = ProcessedColumn(Cover, upload_to=lambda instance, filename: None)
    with pytest.raises(ImproperlyConfigured, match="must return the name"):
        column.store(env.Profile(), upload())
    assert files_under(env.media) == []


def test_source_group_of_a_missing_column_says_so(env: Env) -> None:
    group = ImageFieldSourceGroup(env.Profile, "avatr")
    with pytest.raises(ImproperlyConfigured, match="Profile has no mapped column 'avatr'"):
        list(group.files())
    with pytest.raises(ImproperlyConfigured, match="no mapped column"):
        group.count()


def test_spec_field_over_processed_field(make_env: t.Callable[..., Env]) -> None:
    env = make_env(ImageSpecField(source="photo", processors=[ResizeToFill(16, 8)], format="PNG"))
    profile = env.Profile(photo=upload(filename="chain.png"))
    env.session.add(profile)
    env.session.commit()
    env.session.expire_all()
    thumb = profile.avatar_thumbnail
    assert (thumb.width, thumb.height) == (16, 8)
    assert image_size(env.file(thumb.name)) == ((16, 8), "PNG")
