"""Registries of generators and source groups, cache files by id, source signals."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from flask import Flask

from flask_imagekit import ImageKit, ImageSpec, register, unregister
from flask_imagekit.cachefiles import ImageCacheFile, LazyImageCacheFile
from flask_imagekit.exceptions import AlreadyRegistered, NotRegistered
from flask_imagekit.globals import current_state
from flask_imagekit.processors import ResizeToFill
from flask_imagekit.registry import Registry, default_registry
from flask_imagekit.signals import source_changed, source_created, source_deleted
from flask_imagekit.sources import SourceFile

from .conftest import save_source


class Thumb(ImageSpec):
    processors = [ResizeToFill(20, 10)]
    format = "JPEG"


class Other(ImageSpec):
    format = "PNG"


class Group:
    def __init__(self, names: list[str]) -> None:
        self.names = names

    def files(self) -> t.Iterator[str]:
        yield from self.names


def test_module_register_records_into_default_registry() -> None:
    register.generator("tests:thumb", Thumb)
    assert default_registry.generator_factory("tests:thumb") is Thumb
    register.generator("tests:thumb", Thumb)  # the same object again: no-op
    with pytest.raises(AlreadyRegistered, match="tests:thumb"):
        register.generator("tests:thumb", Other)
    unregister.generator("tests:thumb")
    with pytest.raises(NotRegistered, match="tests:thumb"):
        default_registry.generator_factory("tests:thumb")


def test_decorator_form() -> None:
    @register.generator("tests:decorated")
    class Decorated(ImageSpec):
        format = "PNG"

    assert default_registry.get_generator("tests:decorated", source="a.png").format == "PNG"
    assert isinstance(Decorated, type)


def test_factories_get_kwargs() -> None:
    registry = Registry()
    registry.register_generator("a:b", lambda **kw: ("built", kw))
    assert registry.get_generator("a:b", source="x", width=3) == (
        "built",
        {"source": "x", "width": 3},
    )


def test_not_registered_names_the_id_and_known_ids() -> None:
    registry = Registry()
    registry.register_generator("app:one", Thumb)
    with pytest.raises(NotRegistered) as excinfo:
        registry.get_generator("app:two")
    assert "'app:two'" in str(excinfo.value)
    assert "app:one" in str(excinfo.value)
    with pytest.raises(NotRegistered, match="app:two"):
        registry.unregister_generator("app:two")


@pytest.mark.parametrize("bad_id", ["", ":a", "a:", "a::b", None, 3])
def test_invalid_ids_are_refused(bad_id: t.Any) -> None:
    with pytest.raises(ValueError, match="Invalid generator id"):
        Registry().register_generator(bad_id, Thumb)


def test_layers() -> None:
    parent = Registry()
    child = Registry(parent=parent)
    parent.register_generator("x:a", Thumb)
    parent.register_generator("x:b", Thumb)
    child.register_generator("x:a", Other)
    assert child.generator_factory("x:a") is Other
    assert child.generator_factory("x:b") is Thumb
    assert child.generator_ids() == ["x:a", "x:b"]
    assert parent.generator_factory("x:a") is Thumb


def test_source_groups() -> None:
    registry = Registry()
    group = Group(["a.jpg"])
    registry.register_source_group("x:a", group)
    registry.register_source_group("x:a", group)  # no duplicates
    registry.register_source_group("x:b", group)
    assert registry.source_groups("x:a") == [group]
    assert registry.generator_ids_for_source_group(group) == ["x:a", "x:b"]
    registry.unregister_source_group("x:a", group)
    assert registry.source_groups("x:a") == []
    with pytest.raises(NotRegistered):
        registry.unregister_source_group("x:a", group)
    with pytest.raises(TypeError, match="files"):
        registry.register_source_group("x:a", object())


def test_module_source_group_is_seen_by_every_extension(tmp_path: Path) -> None:
    group = Group([])
    register.source_group("tests:thumb", group)
    ik1, ik2 = ImageKit(), ImageKit()
    assert ik1.registry.source_groups("tests:thumb") == [group]
    assert ik2.registry.source_groups("tests:thumb") == [group]
    unregister.source_group("tests:thumb", group)
    assert ik1.registry.source_groups("tests:thumb") == []


# Source signals -> strategies --------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __getattr__(self, name: str) -> t.Callable[[ImageCacheFile], None]:
        if not name.startswith("on_source_"):
            raise AttributeError(name)
        return lambda file: self.calls.append((name, file.generator.source.name))


@pytest.fixture
def recorder(app: Flask) -> Recorder:
    recorder = Recorder()
    app.config["IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY"] = recorder
    return recorder


@pytest.mark.parametrize(
    ("signal", "expected"),
    [
        (source_created, ["on_source_created", "on_source_saved"]),
        (source_changed, ["on_source_changed", "on_source_saved"]),
        (source_deleted, ["on_source_deleted"]),
    ],
)
def test_source_signals_reach_strategies(
    recorder: Recorder, ctx: Flask, signal: t.Any, expected: list[str]
) -> None:
    imagekit: ImageKit = ctx.extensions["imagekit"]
    group = Group([])
    imagekit.register.generator("tests:thumb", Thumb)
    imagekit.register.source_group("tests:thumb", group)
    imagekit.register.generator("tests:other", Other)  # not fed by the group
    signal.send(group, source="photos/a.jpg")
    assert recorder.calls == [(name, "photos/a.jpg") for name in expected]


def test_source_signals_of_unregistered_groups_and_outside_apps_do_nothing(
    recorder: Recorder, app: Flask, imagekit: ImageKit
) -> None:
    group = Group([])
    imagekit.register.generator("tests:thumb", Thumb)
    imagekit.register.source_group("tests:thumb", group)
    source_created.send(group, source="a.jpg")  # no app context
    with app.app_context():
        source_created.send(Group([]), source="a.jpg")  # a group nobody registered
    assert recorder.calls == []


def test_optimistic_generates_on_source_created(app: Flask, media_root: Path) -> None:
    app.config["IMAGEKIT_DEFAULT_CACHEFILE_STRATEGY"] = (
        "flask_imagekit.cachefiles.strategies.Optimistic"
    )
    imagekit = ImageKit(app)
    save_source(media_root, "photos/a.jpg")
    group = Group(["photos/a.jpg"])
    imagekit.register.generator("tests:thumb", Thumb)
    imagekit.register.source_group("tests:thumb", group)
    with app.app_context():
        file = ImageCacheFile(Thumb(source="photos/a.jpg"))
        assert not (media_root / file.name).exists()
        source_created.send(group, source=SourceFile("photos/a.jpg"))
        assert (media_root / file.name).exists()
        assert file.width == 20


# From a registry id to a cache file ---------------------------------------------------


def test_the_state_builds_cache_files_from_registry_ids(
    ctx: Flask, imagekit: ImageKit, media_root: Path
) -> None:
    save_source(media_root, "photos/a.jpg")
    imagekit.register.generator("tests:thumb", Thumb)
    file = current_state().cachefile("tests:thumb", source="photos/a.jpg")
    assert isinstance(file, ImageCacheFile)
    assert isinstance(file.generator, Thumb)
    assert file.generator.source.name == "photos/a.jpg"
    assert file.generator_id == "tests:thumb"
    assert file.generator_kwargs == {}
    assert file.name == ImageCacheFile(Thumb(source="photos/a.jpg")).name
    assert (file.width, file.height) == (20, 10)


def test_cachefile_passes_arguments_on_and_records_them(ctx: Flask, imagekit: ImageKit) -> None:
    seen: list[dict[str, t.Any]] = []

    def factory(**kwargs: t.Any) -> Thumb:
        seen.append(kwargs)
        return Thumb(source=kwargs["source"])

    imagekit.register.generator("tests:factory", factory)
    file = current_state().cachefile(
        "tests:factory", html_attrs={"alt": "A"}, source="a.jpg", width=3
    )
    assert seen == [{"source": "a.jpg", "width": 3}]
    assert file.generator_id == "tests:factory"
    assert file.generator_kwargs == {"width": 3}  # the source travels on its own
    assert file.html_attrs == {"alt": "A"}


def test_cachefile_of_an_unknown_id_names_it(ctx: Flask) -> None:
    with pytest.raises(NotRegistered, match="tests:nope"):
        current_state().cachefile("tests:nope", source="a.jpg")


def test_cachefile_prefers_the_extensions_registry(ctx: Flask, imagekit: ImageKit) -> None:
    register.generator("tests:thumb", Other)
    assert isinstance(current_state().cachefile("tests:thumb", source="a.png").generator, Other)
    imagekit.register.generator("tests:thumb", Thumb)
    assert isinstance(current_state().cachefile("tests:thumb", source="a.png").generator, Thumb)


def test_a_lazy_file_is_the_same_cache_file(ctx: Flask, imagekit: ImageKit) -> None:
    imagekit.register.generator("tests:thumb", Thumb)
    lazy = LazyImageCacheFile("tests:thumb", source="a.jpg")
    direct = current_state().cachefile("tests:thumb", source="a.jpg")
    assert lazy.name == direct.name
    assert lazy.generator_id == direct.generator_id
