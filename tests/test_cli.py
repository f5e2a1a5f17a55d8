"""``flask imagekit generate`` and ``flask imagekit list``."""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import re
import subprocess
import sys
import typing as t
import warnings
from pathlib import Path

import pytest
from click.testing import Result
from flask import Flask
from PIL import Image

import flask_imagekit.specs
from flask_imagekit import ImageKit, ImageSpec, generation, register
from flask_imagekit.cli import compile_pattern
from flask_imagekit.exceptions import GenerationError, ImproperlyConfigured
from flask_imagekit.processors import ResizeToFill, ResizeToFit

from .cliapp import AvatarThumbnail, JpegsInADirectory
from .conftest import photo, save_source

REPO_ROOT = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"^Generated (\d+) files?, (\d+) already there, (\d+) failed\.$", re.M)


class Small(ImageSpec):
    processors = [ResizeToFill(20, 10)]
    format = "JPEG"


class Fit(ImageSpec):
    processors = [ResizeToFit(16, 16)]
    format = "PNG"


class Wide(ImageSpec):
    processors = [ResizeToFill(30, 10)]
    format = "JPEG"


class Group:
    """A source group over fixed names; records how far ``files()`` was consumed."""

    def __init__(self, names: t.Sequence[t.Any], label: str = "g", on_yield: t.Any = None) -> None:
        self.names = list(names)
        self.label = label
        self.on_yield = on_yield
        self.yielded = 0

    def files(self) -> t.Iterator[t.Any]:
        for index, name in enumerate(self.names):
            if self.on_yield is not None:
                self.on_yield(index, name)
            self.yielded += 1
            yield name

    def __repr__(self) -> str:
        return f"Group({self.label!r})"


class CountedGroup(Group):
    def count(self) -> int:
        return len(self.names)


def invoke(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["imagekit", *args])


def summary(result: Result) -> tuple[int, int, int]:
    found = SUMMARY.findall(result.stdout)
    assert len(found) == 1, result.output
    generated, existed, failed = found[0]
    return int(generated), int(existed), int(failed)


def cache_files(media_root: Path) -> list[str]:
    root = media_root / "CACHE"
    if not root.exists():
        return []
    return sorted(p.relative_to(media_root).as_posix() for p in root.rglob("*") if p.is_file())


def cache_dirs(media_root: Path) -> set[str]:
    """The source directories (first name component) that got cache files."""
    return {name.split("/")[2] for name in cache_files(media_root)}


SMALL = photo((60, 40))


# Patterns ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        (
            "myapp",
            ["myapp", "myapp:thumb", "myapp:a:b"],
            ["myapp2", "myapp2:thumb", "other:myapp"],
        ),
        ("myapp:*", ["myapp:a", "myapp:a:b"], ["myapp", "myappx:a"]),
        ("myapp:*:avatar", ["myapp:profile:avatar", "myapp:x:avatar:small"], ["myapp:avatar"]),
        ("*:thumb", ["a:thumb", "b:thumb:x"], ["a:b:thumb", "thumb", "a:thumbnail"]),
        ("**:hero", ["blog:post:hero", "a:hero", "a:b:c:hero"], ["blog:heroes", "heroic"]),
        ("**", ["a", "a:b:c"], []),
        ("*", ["a", "a:b"], []),
        ("my.app", ["my.app:x"], ["myXapp", "myXapp:x"]),
        ("a+b", ["a+b"], ["aab", "ab"]),
        ("myapp:pro*", ["myapp:profile", "myapp:profile:avatar"], ["myapp:other"]),
    ],
)
def test_compile_pattern(pattern: str, matches: list[str], misses: list[str]) -> None:
    regex = compile_pattern(pattern)
    for id in matches:
        assert regex.match(id), (pattern, id)
    for id in misses:
        assert not regex.match(id), (pattern, id)


@pytest.fixture
def pattern_app(app: Flask, imagekit: ImageKit, media_root: Path) -> Flask:
    ids = {
        "myapp:profile:avatar": "avatar",
        "myapp:profile:banner": "banner",
        "myapp:other:x": "other",
        "blog:post:hero": "hero",
    }
    for id, folder in ids.items():
        names = [save_source(media_root, f"{folder}/{i}.jpg", SMALL) for i in range(2)]
        imagekit.register.generator(id, Small)
        imagekit.register.source_group(id, Group(names, folder))
    imagekit.register.generator("myapp:profile:nogroup", Small)
    return app


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        ((), {"avatar", "banner", "other", "hero"}),
        (("myapp",), {"avatar", "banner", "other"}),
        (("myapp:*:avatar",), {"avatar"}),
        (("**:hero",), {"hero"}),
        (("myapp:profile",), {"avatar", "banner"}),
        (("myapp:profile:banner",), {"banner"}),
        (("blog", "myapp:other"), {"hero", "other"}),
        (("*:*:x", "**:avatar"), {"other", "avatar"}),
    ],
)
def test_generate_patterns(
    pattern_app: Flask, media_root: Path, patterns: tuple[str, ...], expected: set[str]
) -> None:
    result = invoke(pattern_app, "generate", *patterns)
    assert result.exit_code == 0, result.output
    assert cache_dirs(media_root) == expected
    assert len(cache_files(media_root)) == 2 * len(expected)
    assert summary(result) == (2 * len(expected), 0, 0)


@pytest.mark.parametrize("patterns", [("nothing",), ("myapp:profile:nogroup",), ("my",)])
def test_generate_no_match(
    pattern_app: Flask, media_root: Path, patterns: tuple[str, ...]
) -> None:
    result = invoke(pattern_app, "generate", *patterns)
    assert result.exit_code == 0, result.output
    assert "nothing to generate" in result.output
    assert cache_files(media_root) == []


def test_generate_without_any_source_group(app: Flask, imagekit: ImageKit) -> None:
    imagekit.register.generator("myapp:thumb", Small)
    result = invoke(app, "generate")
    assert result.exit_code == 0, result.output
    assert "nothing to generate" in result.output


# Existing files, --force ---------------------------------------------------------------


def test_existing_files_left_alone_unless_forced(
    app: Flask, imagekit: ImageKit, media_root: Path, tmp_path: Path
) -> None:
    names = [save_source(media_root, f"p/{i}.jpg", SMALL) for i in range(3)]
    imagekit.register.generator("myapp:small", Small)
    imagekit.register.generator("myapp:fit", Fit)
    group = Group(names)
    imagekit.register.source_group("myapp:small", group)
    imagekit.register.source_group("myapp:fit", group)

    result = invoke(app, "generate")
    assert result.exit_code == 0, result.output
    assert summary(result) == (6, 0, 0)
    files = cache_files(media_root)
    assert len(files) == 6
    old = 1_000_000_000_000_000_000  # ns: 2001, so any rewrite is visible
    for name in files:
        os.utime(media_root / name, ns=(old, old))

    result = invoke(app, "generate")
    assert result.exit_code == 0, result.output
    assert summary(result) == (0, 6, 0)
    assert "already there" in result.stdout
    assert all((media_root / name).stat().st_mtime_ns == old for name in files)

    # Another app on the same media root (a new process: empty state cache).
    other = Flask("other", instance_path=str(tmp_path / "other-instance"))
    other.config.update(TESTING=True, IMAGEKIT_MEDIA_ROOT=str(media_root))
    other_kit = ImageKit(other)
    other_kit.register.generator("myapp:small", Small)
    other_kit.register.generator("myapp:fit", Fit)
    other_kit.register.source_group("myapp:small", group)
    other_kit.register.source_group("myapp:fit", group)
    result = invoke(other, "generate")
    assert result.exit_code == 0, result.output
    assert summary(result) == (0, 6, 0)
    assert all((media_root / name).stat().st_mtime_ns == old for name in files)

    result = invoke(app, "generate", "--force")
    assert result.exit_code == 0, result.output
    assert summary(result) == (6, 0, 0)
    assert cache_files(media_root) == files
    assert all((media_root / name).stat().st_mtime_ns != old for name in files)
    with Image.open(media_root / files[0]) as img:
        assert img.size in ((20, 10), (16, 11))

    result = invoke(app, "generate", "myapp:fit", "--force")
    assert summary(result) == (3, 0, 0)


def test_progress_lines_when_not_a_terminal(
    app: Flask, imagekit: ImageKit, media_root: Path
) -> None:
    names = [save_source(media_root, f"p/{i}.jpg", SMALL) for i in range(3)]
    imagekit.register.generator("myapp:small", Small)
    imagekit.register.source_group("myapp:small", CountedGroup(names))
    result = invoke(app, "generate")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert lines == [f"[{i + 1}/3] p/{i}.jpg: 1 generated, 0 already there, ok" for i in range(3)]
    assert summary(result) == (3, 0, 0)
    assert "Generated 3 files, 0 already there, 0 failed." in result.stdout


def test_singular_summary(app: Flask, imagekit: ImageKit, media_root: Path) -> None:
    name = save_source(media_root, "one.jpg", SMALL)
    imagekit.register.generator("myapp:small", Small)
    imagekit.register.source_group("myapp:small", Group([name]))
    result = invoke(app, "generate")
    assert "Generated 1 file, 0 already there, 0 failed." in result.stdout


# --jobs ------------------------------------------------------------------------------------


def make_jobs_app(tmp_path: Path, label: str, on_yield: t.Any = None) -> tuple[Flask, Path]:
    media_root = tmp_path / f"media-{label}"
    media_root.mkdir()
    app = Flask(f"jobs-{label}", instance_path=str(tmp_path / f"instance-{label}"))
    app.config.update(TESTING=True, IMAGEKIT_MEDIA_ROOT=str(media_root))
    kit = ImageKit(app)
    names = [save_source(media_root, f"src/{i:02d}.jpg", photo((60 + i, 40))) for i in range(10)]
    group = Group(names, label, on_yield=on_yield)
    for id, spec in (("myapp:small", Small), ("myapp:fit", Fit)):
        kit.register.generator(id, spec)
        kit.register.source_group(id, group)
    return app, media_root


def test_jobs_generate_the_same_files_as_serial(tmp_path: Path) -> None:
    serial_app, serial_root = make_jobs_app(tmp_path, "serial")
    jobs_app, jobs_root = make_jobs_app(tmp_path, "jobs")

    serial = invoke(serial_app, "generate")
    parallel = invoke(jobs_app, "generate", "--jobs", "2")
    assert serial.exit_code == 0, serial.output
    assert parallel.exit_code == 0, parallel.output
    assert summary(serial) == summary(parallel) == (20, 0, 0)
    files = cache_files(serial_root)
    assert len(files) == 20
    assert cache_files(jobs_root) == files
    for name in files:
        assert (serial_root / name).read_bytes() == (jobs_root / name).read_bytes(), name
    # The per-source progress lines cover every source once, in any order.
    progress = sorted(
        line.split("] ", 1)[1] for line in parallel.stdout.splitlines() if line.startswith("[")
    )
    assert progress == sorted(
        f"src/{i:02d}.jpg: 2 generated, 0 already there, ok" for i in range(10)
    )

    again = invoke(jobs_app, "generate", "-j", "2")
    assert summary(again) == (0, 20, 0)


def test_jobs_must_be_positive(app: Flask, imagekit: ImageKit) -> None:
    result = invoke(app, "generate", "--jobs", "0")
    assert result.exit_code == 2
    assert "--jobs" in result.output


def test_jobs_consume_sources_lazily(tmp_path: Path) -> None:
    """With --jobs, sources are submitted a few at a time, not all up front."""
    on_disk: list[int] = []
    holder: dict[str, Path] = {}

    def on_yield(index: int, name: str) -> None:
        on_disk.append(len(cache_files(holder["root"])))

    app, media_root = make_jobs_app(tmp_path, "lazy", on_yield=on_yield)
    holder["root"] = media_root
    result = invoke(app, "generate", "--jobs", "2")
    assert result.exit_code == 0, result.output
    assert len(on_disk) == 10
    # pending is bounded (jobs * 4 = 8): by the 10th source, some were generated.
    assert on_disk[9] >= 2, on_disk


# Failures ------------------------------------------------------------------------------


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_failures_are_listed_and_exit_1(
    app: Flask, imagekit: ImageKit, media_root: Path, jobs: str
) -> None:
    good = save_source(media_root, "good.jpg", SMALL)
    (media_root / "bad.jpg").write_bytes(b"this is not a JPEG at all")
    imagekit.register.generator("myapp:small", Small)
    imagekit.register.source_group("myapp:small", Group([good, "bad.jpg", "missing.jpg"]))

    result = invoke(app, "generate", "--jobs", jobs)
    assert result.exit_code == 1, result.output
    assert summary(result) == (1, 0, 2)
    assert "Generated 1 file, 0 already there, 2 failed." in result.stdout
    failed = [line for line in result.stderr.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 2, result.stderr
    assert "FAILED" not in result.stdout
    bad = next(line for line in failed if line.startswith("FAILED bad.jpg (myapp:small): "))
    missing = next(
        line for line in failed if line.startswith("FAILED missing.jpg (myapp:small): ")
    )
    assert "bad.jpg" in bad.split(": ", 1)[1]  # the reason says which file
    assert "not" in bad.lower()  # "... not recognised" or similar
    assert "does not exist" in missing
    assert "Traceback" not in result.output
    assert len(cache_files(media_root)) == 1
    # Nothing was left half-written.
    assert not list(media_root.rglob("*.tmp*"))


def test_failure_of_one_spec_does_not_stop_the_others(
    app: Flask, imagekit: ImageKit, media_root: Path
) -> None:
    class Broken(ImageSpec):
        format = "JPEG"

        @property
        def processors(self) -> list[t.Any]:
            msg = "boom in processors"
            raise RuntimeError(msg)

    name = save_source(media_root, "a.jpg", SMALL)
    group = Group([name])
    imagekit.register.generator("myapp:small", Small)
    imagekit.register.generator("myapp:broken", Broken)
    imagekit.register.source_group("myapp:small", group)
    imagekit.register.source_group("myapp:broken", group)
    result = invoke(app, "generate")
    assert result.exit_code == 1, result.output
    assert summary(result) == (1, 0, 1)
    assert "FAILED a.jpg (myapp:broken): " in result.stderr
    assert "boom in processors" in result.stderr
    assert len(cache_files(media_root)) == 1


def test_all_good_exit_0(app: Flask, imagekit: ImageKit, media_root: Path) -> None:
    name = save_source(media_root, "good.jpg", SMALL)
    imagekit.register.generator("myapp:small", Small)
    imagekit.register.source_group("myapp:small", Group([name]))
    result = invoke(app, "generate")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_unusable_item_from_a_group_is_a_listed_failure(
    app: Flask, imagekit: ImageKit, media_root: Path
) -> None:
    first = save_source(media_root, "first.jpg", SMALL)
    last = save_source(media_root, "last.jpg", SMALL)
    imagekit.register.generator("myapp:small", Small)
    imagekit.register.source_group("myapp:small", Group([first, 42, last]))
    result = invoke(app, "generate")
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1
    assert summary(result) == (2, 0, 1)
    failed = [line for line in result.stderr.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1, failed
    assert "42" in failed[0], failed
    assert "(myapp:small)" in failed[0], failed
    assert len(cache_files(media_root)) == 2


def test_source_group_that_cannot_list_is_a_listed_failure(
    app: Flask,
    imagekit: ImageKit,
    media_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    name = save_source(media_root, "fine.jpg", SMALL)
    imagekit.register.generator("web:hero", Small)
    imagekit.register.generator("myapp:profile:avatar_thumbnail", AvatarThumbnail)
    imagekit.register.source_group("web:hero", Group([name], "fine"))
    imagekit.register.source_group(
        "myapp:profile:avatar_thumbnail", JpegsInADirectory(str(tmp_path / "no-such-dir"))
    )
    result = invoke(app, "generate")
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1
    assert "no-such-dir" in result.stderr
    assert "myapp:profile:avatar_thumbnail" in result.stderr
    assert len(cache_files(media_root)) == 1  # the other group still ran


def test_jobs_handle_open_file_sources_like_serial(tmp_path: Path) -> None:
    import io

    from .conftest import encode

    class InMemory:
        def files(self) -> t.Iterator[t.IO[bytes]]:
            for i in range(3):
                buf = io.BytesIO(encode(photo((60 + i, 40))))
                buf.name = f"mem/{i}.jpg"
                yield buf

    outputs = {}
    for jobs in ("1", "2"):
        root = tmp_path / f"media-{jobs}"
        app = Flask(f"mem-{jobs}", instance_path=str(tmp_path / f"instance-{jobs}"))
        app.config.update(TESTING=True, IMAGEKIT_MEDIA_ROOT=str(root))
        kit = ImageKit(app)
        kit.register.generator("myapp:small", Small)
        kit.register.source_group("myapp:small", InMemory())
        result = invoke(app, "generate", "--jobs", jobs)
        outputs[jobs] = (result.exit_code, summary(result), cache_files(root))
    assert outputs["1"][:2] == (0, (3, 0, 0))
    assert outputs["2"] == outputs["1"]


# One decode per source ------------------------------------------------------------------


def test_each_source_decoded_once_for_all_its_specs(
    app: Flask, imagekit: ImageKit, media_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [save_source(media_root, f"s/{i}.jpg", photo((90, 60))) for i in range(3)]
    group = Group(names)
    for id, spec in (("myapp:small", Small), ("myapp:fit", Fit), ("myapp:wide", Wide)):
        imagekit.register.generator(id, spec)
        imagekit.register.source_group(id, group)

    opened: list[str] = []
    original = getattr(flask_imagekit.specs, "open_image")  # noqa: B009

    def spy(fp: t.Any, **kwargs: t.Any) -> Image.Image:
        opened.append(str(kwargs.get("name")))
        return original(fp, **kwargs)

    monkeypatch.setattr("flask_imagekit.specs.open_image", spy)
    pil_opens: list[t.Any] = []
    pil_open = Image.open

    def pil_spy(fp: t.Any, *args: t.Any, **kwargs: t.Any) -> Image.Image:
        pil_opens.append(getattr(fp, "name", None))
        return pil_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", pil_spy)

    result = invoke(app, "generate")
    assert result.exit_code == 0, result.output
    assert summary(result) == (9, 0, 0)
    assert sorted(opened) == sorted(names)  # once each
    assert group.yielded == 3  # files() was walked once, not once per id
    # Image.open on the sources themselves: once per source too (the rest read outputs).
    source_paths = {str(media_root / name) for name in names}
    assert sorted(p for p in pil_opens if p in source_paths) == sorted(source_paths)


def test_distinct_group_instances_are_walked_separately(
    app: Flask, imagekit: ImageKit, media_root: Path
) -> None:
    names = [save_source(media_root, f"s/{i}.jpg", SMALL) for i in range(2)]
    first, second = Group(names, "first"), Group(names, "second")
    imagekit.register.generator("myapp:small", Small)
    imagekit.register.generator("myapp:fit", Fit)
    imagekit.register.source_group("myapp:small", first)
    imagekit.register.source_group("myapp:fit", second)
    result = invoke(app, "generate")
    assert summary(result) == (4, 0, 0)
    assert (first.yielded, second.yielded) == (2, 2)


# Streaming ---------------------------------------------------------------------------------


def test_sources_are_consumed_lazily(app: Flask, imagekit: ImageKit, media_root: Path) -> None:
    names = [save_source(media_root, f"s/{i}.jpg", SMALL) for i in range(5)]
    on_disk: list[int] = []
    group = Group(names, on_yield=lambda index, name: on_disk.append(len(cache_files(media_root))))
    imagekit.register.generator("myapp:small", Small)
    imagekit.register.source_group("myapp:small", group)
    result = invoke(app, "generate")
    assert result.exit_code == 0, result.output
    # When the 3rd source is yielded, the first ones are already generated.
    assert on_disk[2] >= 1
    # Serially, exactly one source at a time.
    assert on_disk == [0, 1, 2, 3, 4]


# list -----------------------------------------------------------------------------------------


def test_list(app: Flask, imagekit: ImageKit, media_root: Path) -> None:
    imagekit.register.generator("myapp:profile:avatar", Small)
    imagekit.register.generator("myapp:profile:banner", Fit)
    imagekit.register.generator("myapp:lonely", Wide)
    imagekit.register.source_group(
        "myapp:profile:avatar", CountedGroup(["a", "b", "c"], "avatars")
    )
    lazy = Group(["x", "y"], "banners")
    imagekit.register.source_group("myapp:profile:banner", lazy)
    register.generator("global:spec", Small)  # the process-wide registry shows too

    result = invoke(app, "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "myapp:profile:avatar  Group('avatars')  3 sources" in lines
    assert "myapp:profile:banner  Group('banners')  2 sources" in lines
    assert "myapp:lonely  (no source group)" in lines
    assert "global:spec  (no source group)" in lines
    assert "imagekit:thumbnail  (no source group)" in lines
    assert cache_files(media_root) == []  # listing generates nothing


def test_list_shows_the_responsive_candidates_of_a_spec(
    app: Flask, imagekit: ImageKit, media_root: Path
) -> None:
    class Responsive(Small):
        responsive_widths = [100, 50]
        responsive_formats = ["AVIF", "WEBP"]

    imagekit.register.generator("myapp:responsive", Responsive)
    imagekit.register.source_group("myapp:responsive", Group(["a", "b"], "photos"))
    result = invoke(app, "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert (
        "myapp:responsive  Group('photos')  2 sources, each with candidates at 50, 100 px "
        "in AVIF, WEBP and its own format"
    ) in lines
    assert cache_files(media_root) == []


# The documentation's JpegsInADirectory ---------------------------------------------------


@contextlib.contextmanager
def no_resource_warnings() -> t.Iterator[None]:
    """Fail if a ResourceWarning (an unclosed file) is raised in the block."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
        gc.collect()
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks, [str(w.message) for w in leaks]


def test_resource_warning_detection_works(tmp_path: Path) -> None:
    """The check above is not blind: a leaked file is seen."""
    (tmp_path / "f").write_bytes(b"x")

    def leak() -> None:
        open(tmp_path / "f")  # noqa: SIM115

    with pytest.raises(AssertionError, match="unclosed file"), no_resource_warnings():
        leak()


def make_pics(directory: Path, count: int) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        save_source(directory, f"pic{i}.jpg", photo((200 + i, 150)))
        names.append(f"pic{i}.jpg")
    (directory / "notes.txt").write_text("not a jpeg")
    (directory / "other.png").write_bytes(b"")  # not *.jpg: ignored
    return names


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_jpegs_in_a_directory(
    app: Flask,
    imagekit: ImageKit,
    media_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    jobs: str,
) -> None:
    pics = tmp_path / "some" / "pics"
    names = make_pics(pics, 4)
    monkeypatch.chdir(tmp_path)  # the group chdirs; restored after the test
    register.generator("myapp:profile:avatar_thumbnail", AvatarThumbnail)
    register.source_group("myapp:profile:avatar_thumbnail", JpegsInADirectory(str(pics)))

    with no_resource_warnings():
        result = invoke(app, "generate", "--jobs", jobs)
    assert result.exit_code == 0, result.output
    assert summary(result) == (4, 0, 0)
    files = cache_files(media_root)
    assert len(files) == 4
    assert {name.split("/")[2] for name in files} == {n.removesuffix(".jpg") for n in names}
    for name in files:
        with Image.open(media_root / name) as img:
            assert (img.size, img.format) == ((100, 50), "JPEG")
    # Sources were not touched.
    assert sorted(p.name for p in pics.glob("*.jpg")) == names

    with no_resource_warnings():
        result = invoke(app, "generate")
        listing = invoke(app, "list")
    assert summary(result) == (0, 4, 0)
    assert re.search(
        r"^myapp:profile:avatar_thumbnail  <.*JpegsInADirectory object at .*>  4 sources$",
        listing.stdout,
        re.M,
    ), listing.output


def test_jpegs_in_a_directory_corrupt_picture(
    app: Flask,
    imagekit: ImageKit,
    media_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pics = tmp_path / "pics"
    make_pics(pics, 2)
    (pics / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    monkeypatch.chdir(tmp_path)
    imagekit.register.generator("myapp:profile:avatar_thumbnail", AvatarThumbnail)
    imagekit.register.source_group("myapp:profile:avatar_thumbnail", JpegsInADirectory(str(pics)))
    with no_resource_warnings():
        result = invoke(app, "generate")
    assert result.exit_code == 1, result.output
    assert summary(result) == (2, 0, 1)
    assert "FAILED broken.jpg (myapp:profile:avatar_thumbnail): " in result.stderr


# A real `flask` process ----------------------------------------------------------------------


def run_flask(
    media_root: Path, pics: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FLASK_", "CLIAPP_", "IMAGEKIT_")) and key != "PYTHONWARNINGS"
    }
    environ.update(CLIAPP_MEDIA_ROOT=str(media_root), CLIAPP_PICS_DIR=str(pics), **(env or {}))
    return subprocess.run(
        [
            sys.executable,
            "-W",
            "always::ResourceWarning",
            "-m",
            "flask",
            "--app",
            "tests.cliapp:create_app",
            "imagekit",
            *args,
        ],
        cwd=REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_flask_subprocess(tmp_path: Path) -> None:
    media_root = tmp_path / "media"
    pics = tmp_path / "pics"
    names = make_pics(pics, 3)

    done = run_flask(media_root, pics, "generate")
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "Generated 3 files, 0 already there, 0 failed." in done.stdout
    assert "ResourceWarning" not in done.stderr, done.stderr
    assert done.stderr == ""
    files = cache_files(media_root)
    assert len(files) == 3
    assert {name.split("/")[2] for name in files} == {n.removesuffix(".jpg") for n in names}
    for name in files:
        with Image.open(media_root / name) as img:
            assert (img.size, img.format) == ((100, 50), "JPEG")

    (pics / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    done = run_flask(media_root, pics, "generate")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Generated 0 files, 3 already there, 1 failed." in done.stdout
    assert "FAILED corrupt.jpg (myapp:profile:avatar_thumbnail): " in done.stderr
    assert "Traceback" not in done.stderr
    assert "ResourceWarning" not in done.stderr, done.stderr
    assert cache_files(media_root) == files

    listed = run_flask(media_root, pics, "list")
    assert listed.returncode == 0, listed.stderr
    assert re.search(
        r"^myapp:profile:avatar_thumbnail  <tests\.cliapp\.JpegsInADirectory object at .*>"
        r"  4 sources$",
        listed.stdout,
        re.M,
    ), listed.stdout


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("--start-method", "spawn"), {}),
        ((), {"IMAGEKIT_START_METHOD": "spawn"}),
    ],
)
def test_flask_subprocess_jobs_with_spawn(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str]
) -> None:
    """Spawned worker processes build the app again from --app: nothing comes through fork."""
    media_root = tmp_path / "media"
    pics = tmp_path / "pics"
    names = make_pics(pics, 5)

    done = run_flask(media_root, pics, "generate", "--jobs", "2", *args, env=env)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "Generated 5 files, 0 already there, 0 failed." in done.stdout
    assert done.stderr == ""
    files = cache_files(media_root)
    assert {name.split("/")[2] for name in files} == {n.removesuffix(".jpg") for n in names}
    for name in files:
        with Image.open(media_root / name) as img:
            assert (img.size, img.format) == ((100, 50), "JPEG")

    (pics / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    done = run_flask(media_root, pics, "generate", "-j", "2", "--force", *args, env=env)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Generated 5 files, 0 already there, 1 failed." in done.stdout
    assert "FAILED corrupt.jpg (myapp:profile:avatar_thumbnail): " in done.stderr
    assert "Traceback" not in done.stderr
    assert cache_files(media_root) == files


def test_spawn_needs_an_app_named_by_import_path(
    app: Flask, imagekit: ImageKit, media_root: Path
) -> None:
    name = save_source(media_root, "a.jpg", SMALL)
    imagekit.register.generator("myapp:small", Small)
    imagekit.register.source_group("myapp:small", Group([name]))
    # The test runner's app comes from a lambda, which no spawned process can import.
    result = invoke(app, "generate", "--jobs", "2", "--start-method", "spawn")
    assert result.exit_code == 1, result.output
    assert "--app" in result.stderr
    assert "IMAGEKIT_START_METHOD=fork" in result.stderr
    assert "Traceback" not in result.output
    assert cache_files(media_root) == []


def test_unknown_start_method_is_a_usage_error(
    app: Flask, imagekit: ImageKit, media_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = save_source(media_root, "a.jpg", SMALL)
    imagekit.register.generator("myapp:small", Small)
    imagekit.register.source_group("myapp:small", Group([name]))
    monkeypatch.setenv("IMAGEKIT_START_METHOD", "teleport")
    result = invoke(app, "generate", "--jobs", "2")
    assert result.exit_code == 2
    assert "--start-method" in result.output
    assert "teleport" in result.output


def test_default_start_method(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMAGEKIT_START_METHOD", raising=False)
    expected = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    assert generation.default_start_method() == expected
    monkeypatch.setenv("IMAGEKIT_START_METHOD", "spawn")
    assert generation.default_start_method() == "spawn"
    monkeypatch.setenv("IMAGEKIT_START_METHOD", "teleport")
    with pytest.raises(ImproperlyConfigured, match="IMAGEKIT_START_METHOD='teleport'"):
        generation.default_start_method()


def test_workers_that_cannot_load_the_app_stop_the_run(
    app: Flask, imagekit: ImageKit, media_root: Path
) -> None:
    names = [save_source(media_root, f"s/{i}.jpg", SMALL) for i in range(3)]
    imagekit.register.generator("myapp:small", Small)
    imagekit.register.source_group("myapp:small", Group(names))
    loader = generation.AppLoader("tests.cliapp:no_such_factory", cwd=str(REPO_ROOT))
    with app.app_context(), pytest.raises(GenerationError, match="worker process of --jobs"):
        generation.run(["myapp:small"], jobs=2, start_method="spawn", app_loader=loader)
    assert cache_files(media_root) == []
