"""Tests for flask_imagekit.storage: FileSystemStorage, FsspecStorage and the name rules."""

from __future__ import annotations

import io
import os
import re
import stat
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from PIL import Image
from sqlalchemy import Integer
from sqlalchemy.orm import DeclarativeBase, mapped_column
from werkzeug.datastructures import FileStorage

from flask_imagekit import ImageKit
from flask_imagekit.exceptions import StorageError, SuspiciousName
from flask_imagekit.models import ProcessedImageField
from flask_imagekit.processors import ResizeToFill
from flask_imagekit.storage import FileSystemStorage, FsspecStorage, Storage, clean_name
from flask_imagekit.storage.names import (
    alternative_name,
    fit_name,
    is_absolute_name,
    is_temporary_name,
    sanitize_component,
    sanitize_dirs,
    sanitize_extension,
    sanitize_stem,
    temp_basename,
    truncate_utf8,
)

STORAGE_KINDS = ["filesystem", "fsspec"]

HOSTILE_NAMES = [
    "../x",
    "a/../../x",
    "a/..",
    "..",
    "/etc/passwd",
    "//server/share/x",
    "C:\\x",
    "C:x",
    "x:y.jpg",
    "c:/x",
    "a\\..\\b",
    "\\\\server\\share",
    "a\x00b",
    "a\nb.jpg",
    "a\x7fb.jpg",
    "a\x85b.jpg",
    "x" * 256,
    "d/" + "x" * 256,
    "\u00e9" * 128,  # 256 bytes in UTF-8
    "\u00e9" * 300,
    ".",
    "./",
    "./.",
    "",
    "\udc80.jpg",
]

ALLOWED_NAMES = [
    "a.jpg",
    "CON.jpg",
    "con",
    "NUL.txt",
    "AUX",
    "dir/LPT1.png",
    "with space.jpg",
    "sub dir/with space.jpg",
    "\u00fcnic\u00f6de/\u65e5\u672c\u8a9e.jpg",
    "emoji \U0001f600.png",
    "hash#and?query&amp=1%20.jpg",
    "glob*chars?[ab].jpg",
    "[a].jpg",
    ".hidden",
    "...",
    "a..b.jpg",
    "x" * 255,
    "\u00e9" * 127,  # 254 bytes in UTF-8
    "deep/ly/nested/dir/file.webp",
]


def _memory_fs() -> Any:
    return fsspec.filesystem("memory")


def _memory_snapshot() -> tuple[frozenset[str], frozenset[str]]:
    fs = _memory_fs()
    return frozenset(fs.store), frozenset(fs.pseudo_dirs)


def _tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


@pytest.fixture
def memory_root() -> Iterator[str]:
    """A unique root in the process-global memory filesystem, removed afterwards."""
    root = f"/imagekit-test-{uuid.uuid4().hex}"
    yield root
    fs = _memory_fs()
    for key in [key for key in fs.store if key == root or key.startswith(f"{root}/")]:
        del fs.store[key]
    fs.pseudo_dirs[:] = [d for d in fs.pseudo_dirs if not (d == root or d.startswith(f"{root}/"))]


@pytest.fixture
def location(tmp_path: Path) -> Path:
    return tmp_path / "media"


@pytest.fixture(params=STORAGE_KINDS)
def storage(request: pytest.FixtureRequest, location: Path, memory_root: str) -> Storage:
    if request.param == "filesystem":
        return FileSystemStorage(location)
    return FsspecStorage(f"memory://{memory_root.lstrip('/')}")


class BrokenReader(io.BytesIO):
    """A stream that returns some data, then fails half way."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        self.calls += 1
        if self.calls == 1:
            return b"x" * 1000
        msg = "connection dropped"
        raise ConnectionAbortedError(msg)


class ValueErrorReader(io.BytesIO):
    """A stream that fails half way with a non-OSError."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        self.calls += 1
        if self.calls == 1:
            return b"partial"
        msg = "decoder exploded"
        raise ValueError(msg)


class NonSeekable(io.BytesIO):
    """A stream that cannot seek, like a socket or a pipe."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, size: int | None = -1) -> bytes:
        return self._data.read(size)


# ---------------------------------------------------------------- clean_name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.jpg", "a.jpg"),
        ("a//b", "a/b"),
        ("./a", "a"),
        ("a/./b", "a/b"),
        ("a///b//c.jpg", "a/b/c.jpg"),
        ("a/", "a"),
        ("CON.jpg", "CON.jpg"),
        ("a/b:c.jpg", "a/b:c.jpg"),
    ],
)
def test_clean_name_normalises(name: str, expected: str) -> None:
    assert clean_name(name) == expected


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_clean_name_rejects_hostile_names(name: str) -> None:
    with pytest.raises(SuspiciousName, match="Invalid storage name") as excinfo:
        clean_name(name)
    assert isinstance(excinfo.value, ValueError)
    assert isinstance(excinfo.value, StorageError)
    assert "relative name" in str(excinfo.value)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../x", "'..'"),
        ("/etc/passwd", "absolute"),
        ("C:x", "drive letter"),
        ("a\\b", "backslash"),
        ("a\x00b", "control character"),
        ("", "empty"),
        ("x" * 256, "256 bytes"),
    ],
)
def test_clean_name_says_why(name: str, reason: str) -> None:
    with pytest.raises(SuspiciousName, match=re.escape(reason)):
        clean_name(name)


@pytest.mark.parametrize("name", [None, b"a.jpg", 1, Path("a.jpg"), ["a"]])
def test_clean_name_rejects_non_str(name: Any) -> None:
    with pytest.raises(SuspiciousName, match="must be str"):
        clean_name(name)


def test_clean_name_keeps_rejecting_after_cache() -> None:
    for _ in range(3):
        with pytest.raises(SuspiciousName):
            clean_name("../x")
    assert clean_name("a//b") == clean_name("a//b") == "a/b"


# ------------------------------------------------------- shared behaviour


def test_storages_follow_protocol(storage: Storage) -> None:
    assert isinstance(storage, Storage)


def test_save_open_exists_size_delete_round_trip(storage: Storage) -> None:
    assert not storage.exists("photos/a.jpg")
    stored = storage.save("photos/a.jpg", b"hello")
    assert stored == "photos/a.jpg"
    assert storage.exists("photos/a.jpg")
    assert storage.size("photos/a.jpg") == 5
    with storage.open("photos/a.jpg") as f:
        assert f.read() == b"hello"
    storage.delete("photos/a.jpg")
    assert not storage.exists("photos/a.jpg")
    storage.delete("photos/a.jpg")  # missing is fine


def test_save_returns_normalised_name(storage: Storage) -> None:
    assert storage.save("./a//b.jpg", b"x") == "a/b.jpg"
    assert storage.exists("a/b.jpg")


def test_save_overwrites_by_default(storage: Storage) -> None:
    storage.save("a.jpg", b"old")
    assert storage.save("a.jpg", b"new!") == "a.jpg"
    with storage.open("a.jpg") as f:
        assert f.read() == b"new!"
    assert list(storage.walk()) == ["a.jpg"]


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(lambda: b"data" * 50_000, id="bytes"),
        pytest.param(lambda: bytearray(b"data" * 50_000), id="bytearray"),
        pytest.param(lambda: memoryview(b"data" * 50_000), id="memoryview"),
        pytest.param(lambda: io.BytesIO(b"data" * 50_000), id="bytesio"),
        pytest.param(lambda: NonSeekable(b"data" * 50_000), id="non-seekable"),
    ],
)
def test_save_content_types(storage: Storage, content: Any) -> None:
    storage.save("big.bin", content())
    with storage.open("big.bin") as f:
        assert f.read() == b"data" * 50_000


def test_save_rewinds_seekable_content(storage: Storage) -> None:
    buffer = io.BytesIO()
    buffer.write(b"written then not rewound")
    storage.save("a.bin", buffer)
    with storage.open("a.bin") as f:
        assert f.read() == b"written then not rewound"


def test_save_without_overwrite_picks_free_name(storage: Storage) -> None:
    assert storage.save("dir/photo.jpg", b"first", overwrite=False) == "dir/photo.jpg"
    second = storage.save("dir/photo.jpg", b"second", overwrite=False)
    third = storage.save("dir/photo.jpg", b"third", overwrite=False)
    assert re.fullmatch(r"dir/photo_[A-Za-z0-9]{7}\.jpg", second)
    assert re.fullmatch(r"dir/photo_[A-Za-z0-9]{7}\.jpg", third)
    assert len({"dir/photo.jpg", second, third}) == 3
    for name, expected in [("dir/photo.jpg", b"first"), (second, b"second"), (third, b"third")]:
        with storage.open(name) as f:
            assert f.read() == expected


def test_save_without_overwrite_no_extension(storage: Storage) -> None:
    storage.save("README", b"a")
    assert re.fullmatch(r"README_[A-Za-z0-9]{7}", storage.save("README", b"b", overwrite=False))


def test_save_without_overwrite_keeps_component_short(storage: Storage) -> None:
    long_name = "\u00e9" * 120 + ".jpg"  # 244 bytes
    storage.save(long_name, b"a")
    other = storage.save(long_name, b"b", overwrite=False)
    assert other != long_name
    assert other.endswith(".jpg")
    assert len(other.encode("utf-8")) <= 255
    assert clean_name(other) == other
    assert storage.exists(other)


def test_open_missing_raises_file_not_found(storage: Storage) -> None:
    with pytest.raises(FileNotFoundError):
        storage.open("missing.jpg")


def test_size_missing_raises_file_not_found(storage: Storage) -> None:
    with pytest.raises(FileNotFoundError):
        storage.size("missing.jpg")


def test_open_requires_binary_mode(storage: Storage) -> None:
    storage.save("a.txt", b"x")
    with pytest.raises(ValueError, match="binary mode"):
        storage.open("a.txt", "r")


def test_listdir_and_walk(storage: Storage) -> None:
    for name in ["top.jpg", "a/one.jpg", "a/two.jpg", "a/b/three.jpg", "c d/\u00fc.jpg"]:
        storage.save(name, name.encode())
    assert storage.listdir("") == (["a", "c d"], ["top.jpg"])
    assert storage.listdir("a") == (["b"], ["one.jpg", "two.jpg"])
    assert storage.listdir("a/") == (["b"], ["one.jpg", "two.jpg"])
    assert storage.listdir("a/b") == ([], ["three.jpg"])
    assert list(storage.walk()) == [
        "a/b/three.jpg",
        "a/one.jpg",
        "a/two.jpg",
        "c d/\u00fc.jpg",
        "top.jpg",
    ]
    assert list(storage.walk("a")) == ["a/b/three.jpg", "a/one.jpg", "a/two.jpg"]
    assert list(storage.walk("a/b")) == ["a/b/three.jpg"]
    assert list(storage.walk("missing")) == []
    assert list(storage.walk("top.jpg")) == []


def test_glob_characters_are_literal(storage: Storage) -> None:
    storage.save("ab.jpg", b"keep")
    storage.save("a?.jpg", b"literal")
    storage.delete("a?.jpg")
    storage.delete("a*.jpg")
    storage.delete("[a]b.jpg")
    assert list(storage.walk()) == ["ab.jpg"]
    storage.save("[a]b.jpg", b"brackets")
    with storage.open("ab.jpg") as f:
        assert f.read() == b"keep"
    with storage.open("[a]b.jpg") as f:
        assert f.read() == b"brackets"


def test_walk_order_matches_plain_sort(storage: Storage) -> None:
    names = ["a-b.jpg", "a.jpg", "a/x.jpg", "a/y/z.jpg", "ab/c.jpg", "B.jpg", "\u00e9.jpg"]
    for name in names:
        storage.save(name, b"x")
    assert list(storage.walk()) == sorted(names)


def test_listdir_missing_raises_file_not_found(storage: Storage) -> None:
    storage.save("a.jpg", b"x")
    with pytest.raises(FileNotFoundError):
        storage.listdir("missing")


@pytest.mark.parametrize("path", ["../", "/", "a/../..", "C:\\"])
def test_listdir_and_walk_reject_hostile_paths(storage: Storage, path: str) -> None:
    with pytest.raises(SuspiciousName):
        storage.listdir(path)
    with pytest.raises(SuspiciousName):
        list(storage.walk(path))


@pytest.mark.parametrize("name", ALLOWED_NAMES)
def test_allowed_names_round_trip(storage: Storage, name: str) -> None:
    assert storage.save(name, b"content") == name
    assert storage.exists(name)
    assert storage.size(name) == 7
    with storage.open(name) as f:
        assert f.read() == b"content"
    assert list(storage.walk()) == [name]
    storage.delete(name)
    assert not storage.exists(name)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.jpg", "/media/a.jpg"),
        ("dir/with space.jpg", "/media/dir/with%20space.jpg"),
        ("\u00fcnic\u00f6de.jpg", "/media/%C3%BCnic%C3%B6de.jpg"),
        ("a#b.jpg", "/media/a%23b.jpg"),
        ("a?b=c.jpg", "/media/a%3Fb%3Dc.jpg"),
        ("100%.jpg", "/media/100%25.jpg"),
        ("./a//b.jpg", "/media/a/b.jpg"),
    ],
)
def test_url_quotes_name(storage: Storage, name: str, expected: str) -> None:
    assert storage.url(name) == expected


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_url_rejects_hostile_names(storage: Storage, name: str) -> None:
    with pytest.raises(SuspiciousName):
        storage.url(name)


def test_atomic_save_failure_leaves_nothing(storage: Storage, tmp_path: Path) -> None:
    storage.save("keep.jpg", b"keep")
    before_disk = _tree(tmp_path)
    before_memory = _memory_snapshot()
    with pytest.raises(StorageError, match="broken.jpg"):
        storage.save("dir/broken.jpg", BrokenReader())
    with pytest.raises(ValueError, match="decoder exploded"):
        storage.save("keep.jpg", ValueErrorReader())
    assert not storage.exists("dir/broken.jpg")
    with storage.open("keep.jpg") as f:
        assert f.read() == b"keep"
    walked = list(storage.walk())
    assert walked == ["keep.jpg"]
    assert not any(".tmp-" in name for name in walked)
    after_disk = _tree(tmp_path)
    # Only the (empty) destination directory may have been created.
    assert after_disk - before_disk <= {os.path.join("media", "dir")}
    assert _memory_snapshot()[0] == before_memory[0]


def test_atomic_save_failure_without_overwrite(storage: Storage) -> None:
    storage.save("a.jpg", b"first")
    with pytest.raises(StorageError):
        storage.save("a.jpg", BrokenReader(), overwrite=False)
    assert list(storage.walk()) == ["a.jpg"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_rejected_everywhere(
    storage: Storage, tmp_path: Path, location: Path, name: str
) -> None:
    storage.save("existing.jpg", b"x")
    before_disk = _tree(tmp_path)
    before_parent = set(os.listdir(tmp_path.parent))
    before_memory = _memory_snapshot()

    with pytest.raises(SuspiciousName):
        storage.save(name, b"evil")
    with pytest.raises(SuspiciousName):
        storage.save(name, b"evil", overwrite=False)
    with pytest.raises(SuspiciousName):
        storage.open(name)
    with pytest.raises(SuspiciousName):
        storage.open(name, "wb")
    with pytest.raises(SuspiciousName):
        storage.exists(name)
    with pytest.raises(SuspiciousName):
        storage.delete(name)
    with pytest.raises(SuspiciousName):
        storage.size(name)
    with pytest.raises(SuspiciousName):
        storage.url(name)
    if isinstance(storage, FileSystemStorage):
        with pytest.raises(SuspiciousName):
            storage.path(name)

    assert _tree(tmp_path) == before_disk
    assert set(os.listdir(tmp_path.parent)) == before_parent
    assert _memory_snapshot() == before_memory
    assert list(storage.walk()) == ["existing.jpg"]


def test_saving_where_a_file_blocks_the_directory(storage: Storage) -> None:
    storage.save("f.jpg", b"x")
    with pytest.raises(StorageError, match="f.jpg"):
        storage.save("f.jpg/child.jpg", b"y")
    assert list(storage.walk()) == ["f.jpg"]


def test_concurrent_saves_without_overwrite_get_distinct_names(storage: Storage) -> None:
    names: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        stored = storage.save("same.jpg", f"content {i}".encode(), overwrite=False)
        with lock:
            names.append(stored)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if isinstance(storage, FileSystemStorage):
        # FsspecStorage can only check-then-write; the local storage claims names atomically.
        assert len(set(names)) == 16
        assert sorted(storage.walk()) == sorted(names)
        contents = set()
        for name in names:
            with storage.open(name) as f:
                contents.add(f.read())
        assert contents == {f"content {i}".encode() for i in range(16)}


# ------------------------------------------------------- FileSystemStorage


def test_filesystem_url_does_no_io(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    location = tmp_path / "does-not-exist"
    storage = FileSystemStorage(location, base_url="https://cdn.example.com/m")

    def forbidden(*args: object, **kwargs: object) -> None:
        msg = "url() must not do I/O"
        raise AssertionError(msg)

    for func in ["stat", "lstat", "scandir", "listdir", "open", "readlink", "makedirs"]:
        monkeypatch.setattr(os, func, forbidden)
    monkeypatch.setattr(os.path, "realpath", forbidden)
    monkeypatch.setattr(os.path, "exists", forbidden)
    monkeypatch.setattr("builtins.open", forbidden)
    assert (
        storage.url("missing dir/a b.jpg") == "https://cdn.example.com/m/missing%20dir/a%20b.jpg"
    )
    monkeypatch.undo()
    assert not location.exists()


def test_filesystem_files_and_dirs_modes(location: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        storage = FileSystemStorage(location)
        storage.save("a/b/c.jpg", b"x")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(location / "a" / "b" / "c.jpg").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(location / "a").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(location / "a" / "b").st_mode) == 0o755


def test_filesystem_save_uses_mkstemp_and_replace(
    location: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = FileSystemStorage(location)
    storage.save("a.jpg", b"old")
    seen: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        seen.append((src, dst))
        assert os.path.basename(src).startswith(".tmp-")
        assert os.path.dirname(src) == str(location)
        # Readers still see the old content until the rename happens.
        assert (location / "a.jpg").read_bytes() == b"old"
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    storage.save("a.jpg", b"new")
    assert len(seen) == 1
    assert seen[0][1] == str(location / "a.jpg")
    assert (location / "a.jpg").read_bytes() == b"new"


def test_filesystem_failure_in_replace_cleans_temp(
    location: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = FileSystemStorage(location)
    storage.save("a.jpg", b"old")

    def failing_replace(src: str, dst: str) -> None:
        raise PermissionError(13, "Permission denied", dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(StorageError, match=re.escape(str(location))) as excinfo:
        storage.save("a.jpg", b"new")
    assert isinstance(excinfo.value.__cause__, PermissionError)
    assert "a.jpg" in str(excinfo.value)
    assert sorted(os.listdir(location)) == ["a.jpg"]
    assert (location / "a.jpg").read_bytes() == b"old"


def test_filesystem_keyboard_interrupt_cleans_temp(location: Path) -> None:
    storage = FileSystemStorage(location)

    class Interrupting(io.BytesIO):
        def readable(self) -> bool:
            return True

        def read(self, size: int | None = -1) -> bytes:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        storage.save("a.jpg", Interrupting())
    assert os.listdir(location) == []


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_filesystem_symlink_escape_rejected(tmp_path: Path, location: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    location.mkdir()
    (location / "link").symlink_to(outside, target_is_directory=True)
    (location / "evil.jpg").symlink_to(outside / "created-through-link.jpg")
    storage = FileSystemStorage(location)
    before = _tree(tmp_path)

    for name in ["link/secret.txt", "link/new.jpg", "link", "evil.jpg"]:
        with pytest.raises(SuspiciousName, match="outside"):
            storage.path(name)
        with pytest.raises(SuspiciousName):
            storage.save(name, b"evil")
        with pytest.raises(SuspiciousName):
            storage.open(name)
        with pytest.raises(SuspiciousName):
            storage.size(name)
        with pytest.raises(SuspiciousName):
            storage.delete(name)
        with pytest.raises(SuspiciousName):
            storage.exists(name)
    with pytest.raises(SuspiciousName):
        storage.listdir("link")
    with pytest.raises(SuspiciousName):
        list(storage.walk("link"))

    assert _tree(tmp_path) == before
    assert (outside / "secret.txt").read_bytes() == b"secret"
    # walk() does not descend into the escaping symlinked directory.
    assert not any(name.startswith("link/") for name in storage.walk())


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_filesystem_symlink_inside_root_allowed(tmp_path: Path) -> None:
    location = tmp_path / "media"
    (location / "real").mkdir(parents=True)
    (location / "alias").symlink_to(location / "real", target_is_directory=True)
    storage = FileSystemStorage(location)
    storage.save("alias/a.jpg", b"x")
    assert (location / "real" / "a.jpg").read_bytes() == b"x"


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_filesystem_location_may_be_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    storage = FileSystemStorage(link)
    storage.save("a.jpg", b"x")
    assert (real / "a.jpg").read_bytes() == b"x"
    assert storage == FileSystemStorage(real)


def test_filesystem_path(location: Path) -> None:
    storage = FileSystemStorage(location)
    assert storage.path("a//b/c.jpg") == str(location / "a" / "b" / "c.jpg")


def test_filesystem_open_through_a_file_is_missing(location: Path) -> None:
    storage = FileSystemStorage(location)
    storage.save("f.jpg", b"x")
    with pytest.raises(FileNotFoundError):
        storage.open("f.jpg/child.jpg")
    with pytest.raises(FileNotFoundError):
        storage.size("f.jpg/child.jpg")
    assert not storage.exists("f.jpg/child.jpg")
    storage.delete("f.jpg/child.jpg")


def test_filesystem_open_for_writing_creates_dirs(location: Path) -> None:
    storage = FileSystemStorage(location)
    with storage.open("new/dir/a.bin", "wb") as f:
        f.write(b"abc")
    assert (location / "new" / "dir" / "a.bin").read_bytes() == b"abc"


def test_filesystem_oserror_wrapped(location: Path) -> None:
    storage = FileSystemStorage(location)
    storage.save("dir/a.jpg", b"x")
    with pytest.raises(StorageError, match="dir") as excinfo:
        storage.open("dir")  # a directory, not a file
    assert str(location) in str(excinfo.value)
    assert isinstance(excinfo.value.__cause__, OSError)


def test_filesystem_delete_empty_directory(location: Path) -> None:
    storage = FileSystemStorage(location)
    storage.save("dir/a.jpg", b"x")
    storage.delete("dir/a.jpg")
    storage.delete("dir")
    assert not (location / "dir").exists()


def test_filesystem_repr_eq_hash(tmp_path: Path) -> None:
    a = FileSystemStorage(tmp_path, base_url="/m")
    b = FileSystemStorage(str(tmp_path / "x" / ".."), base_url="/m/")
    c = FileSystemStorage(tmp_path, base_url="/other/")
    assert a.base_url == "/m/"
    assert a.location == str(tmp_path)
    assert a == b
    assert hash(a) == hash(b)
    assert a != c
    assert a != FileSystemStorage(tmp_path / "x", base_url="/m/")
    assert a != "not a storage"
    assert repr(a) == f"FileSystemStorage(location={str(tmp_path)!r}, base_url='/m/')"


def test_filesystem_does_not_create_location_eagerly(location: Path) -> None:
    storage = FileSystemStorage(location)
    assert storage.url("a.jpg") == "/media/a.jpg"
    assert not storage.exists("a.jpg")
    assert not location.exists()


# ---------------------------------------------------------- FsspecStorage


def test_fsspec_path_not_implemented(memory_root: str) -> None:
    storage = FsspecStorage(f"memory://{memory_root}")
    with pytest.raises(NotImplementedError, match="open"):
        storage.path("a.jpg")


def test_fsspec_url_does_no_io(memory_root: str) -> None:
    storage = FsspecStorage(f"memory://{memory_root}", base_url="https://cdn.example.com/")

    class Exploding:
        def __getattr__(self, name: str) -> object:
            msg = f"url() must not touch the filesystem ({name})"
            raise AssertionError(msg)

    storage.fs = Exploding()
    assert storage.url("a b/\u00fc#.jpg") == "https://cdn.example.com/a%20b/%C3%BC%23.jpg"


def test_fsspec_with_filesystem_instance_and_root(memory_root: str) -> None:
    fs = _memory_fs()
    storage = FsspecStorage(fs, root=memory_root + "/", base_url="/m/")
    assert storage.root == memory_root
    storage.save("a/b.jpg", b"x")
    assert fs.cat_file(f"{memory_root}/a/b.jpg") == b"x"
    assert list(storage.walk()) == ["a/b.jpg"]
    assert storage == FsspecStorage(f"memory://{memory_root}", base_url="/m/")
    assert hash(storage) == hash(FsspecStorage(f"memory://{memory_root}", base_url="/m/"))
    assert storage != FsspecStorage(f"memory://{memory_root}", base_url="/other/")
    assert "FsspecStorage(" in repr(storage)
    assert repr(memory_root) in repr(storage)


def test_fsspec_url_and_root_are_joined(memory_root: str) -> None:
    storage = FsspecStorage(f"memory://{memory_root}", root="sub")
    storage.save("a.jpg", b"x")
    assert _memory_fs().cat_file(f"{memory_root}/sub/a.jpg") == b"x"


def test_fsspec_storage_options_need_url() -> None:
    with pytest.raises(TypeError, match="URL"):
        FsspecStorage(_memory_fs(), anon=True)


def test_fsspec_temp_file_then_move(memory_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = FsspecStorage(f"memory://{memory_root}")
    moves: list[tuple[str, str]] = []
    real_mv = storage.fs.mv

    def spy(path1: str, path2: str, **kwargs: object) -> None:
        moves.append((path1, path2))
        real_mv(path1, path2, **kwargs)

    monkeypatch.setattr(storage.fs, "mv", spy)
    storage.save("dir/photo.jpg", b"x")
    ((temp, final),) = moves
    assert final == f"{memory_root}/dir/photo.jpg"
    assert re.fullmatch(re.escape(f"{memory_root}/dir/.tmp-") + r"[A-Za-z0-9]{7}-photo\.jpg", temp)
    assert list(storage.walk()) == ["dir/photo.jpg"]


def test_fsspec_temp_name_fits_component_limit(
    memory_root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = FsspecStorage(f"memory://{memory_root}")
    temps: list[str] = []
    real_mv = storage.fs.mv

    def spy(path1: str, path2: str, **kwargs: object) -> None:
        temps.append(path1)
        real_mv(path1, path2, **kwargs)

    monkeypatch.setattr(storage.fs, "mv", spy)
    name = "\u00e9" * 127
    storage.save(name, b"x")
    assert len(temps[0].rsplit("/", 1)[1].encode("utf-8")) <= 255
    assert storage.exists(name)


@pytest.mark.parametrize(("name", "method"), [("a.jpg", "mv"), ("a?.jpg", "cp_file")])
def test_fsspec_failed_move_removes_temp(
    memory_root: str, monkeypatch: pytest.MonkeyPatch, name: str, method: str
) -> None:
    storage = FsspecStorage(f"memory://{memory_root}")

    def failing_move(path1: str, path2: str, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", path2)

    monkeypatch.setattr(storage.fs, method, failing_move)
    with pytest.raises(StorageError, match=re.escape(name)) as excinfo:
        storage.save(name, b"x")
    assert "memory" in str(excinfo.value)
    monkeypatch.undo()
    assert list(storage.walk()) == []


def test_fsspec_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fsspec", None)
    monkeypatch.setitem(sys.modules, "fsspec.core", None)
    with pytest.raises(StorageError, match=re.escape("pip install imagekit-flask[fsspec]")):
        FsspecStorage("memory://x")


def test_fsspec_on_local_filesystem(tmp_path: Path) -> None:
    root = tmp_path / "local"
    storage = FsspecStorage(f"file://{root}")
    assert storage.save("a b/c.jpg", b"x") == "a b/c.jpg"
    assert (root / "a b" / "c.jpg").read_bytes() == b"x"
    assert list(storage.walk()) == ["a b/c.jpg"]
    assert storage.listdir("") == (["a b"], [])
    with pytest.raises(StorageError):
        storage.save("a b/d.jpg", BrokenReader())
    assert sorted(os.listdir(root / "a b")) == ["c.jpg"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_filesystem_walk_skips_escaping_symlinks(tmp_path: Path, location: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    storage = FileSystemStorage(location)
    storage.save("real.jpg", b"x")
    (location / "inside-link.jpg").symlink_to(location / "real.jpg")
    (location / "outside-link.txt").symlink_to(outside / "secret.txt")
    (location / "dir-link").symlink_to(outside, target_is_directory=True)
    assert list(storage.walk()) == ["inside-link.jpg", "real.jpg"]
    for name in storage.walk():
        storage.path(name)  # every walked name is usable


# ------------------------------------------------------- names from other worlds


@pytest.mark.parametrize(
    "name",
    [
        "file:/etc/hostname",
        "file:etc/hostname",
        "file:///etc/hostname",
        "FILE:/etc/hostname",
        "local:/etc/hostname",
        "s3:bucket/key.jpg",
        "s3://bucket/key.jpg",
        "memory://x.jpg",
        "http://evil.example/x.jpg",
        "data:image/png;base64,AAAA",
        "simplecache::file:///etc/hostname",
        "git+ssh:host/x",
        "ab:c.jpg",
        "x.jpg:stream",
        "./file:/etc/hostname",
        "~",
        "~/secret.jpg",
        "~root/.ssh/id_rsa",
        "./~/secret.jpg",
    ],
)
def test_clean_name_refuses_protocols_and_home(name: str) -> None:
    with pytest.raises(SuspiciousName, match="relative name") as excinfo:
        clean_name(name)
    assert "protocol" in str(excinfo.value) or "'~'" in str(excinfo.value)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("photos/file:x.jpg", "photos/file:x.jpg"),
        ("a/b:c.jpg", "a/b:c.jpg"),
        ("photos/~/x.jpg", "photos/~/x.jpg"),
        ("a~b.jpg", "a~b.jpg"),
        ("photos/x.jpg:stream", "photos/x.jpg:stream"),
    ],
)
def test_clean_name_keeps_colons_and_tildes_further_in(name: str, expected: str) -> None:
    assert clean_name(name) == expected


def test_clean_name_still_names_windows_drives() -> None:
    for name in ["C:x", "c:/x", "x:y.jpg"]:
        with pytest.raises(SuspiciousName, match="drive letter"):
            clean_name(name)


@pytest.mark.parametrize("kind", ["filesystem", "fsspec-local", "fsspec-local-root"])
def test_storages_refuse_protocols_and_home_on_the_local_disk(
    tmp_path: Path, location: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"secret")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    location.mkdir()
    storage: Storage
    if kind == "filesystem":
        storage = FileSystemStorage(location)
    elif kind == "fsspec-local":
        storage = FsspecStorage(fsspec.filesystem("file"))
    else:
        storage = FsspecStorage(fsspec.filesystem("file"), root=str(location))
    before = _tree(tmp_path)
    for name in [
        f"file:{secret}",
        f"file://{secret}",
        f"local:{secret}",
        f"local://{secret}",
        "file:secret.txt",
        "~/secret.txt",
        "~no-such-user-imagekit/secret.txt",
    ]:
        with pytest.raises(SuspiciousName):
            storage.open(name)
        with pytest.raises(SuspiciousName):
            storage.exists(name)
        with pytest.raises(SuspiciousName):
            storage.size(name)
        with pytest.raises(SuspiciousName):
            storage.save(name, b"evil")
        with pytest.raises(SuspiciousName):
            storage.delete(name)
    assert _tree(tmp_path) == before
    assert secret.read_bytes() == b"secret"


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_fsspec_local_symlink_out_of_root_is_refused(tmp_path: Path, location: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    location.mkdir()
    (location / "link").symlink_to(outside, target_is_directory=True)
    (location / "leak.txt").symlink_to(outside / "secret.txt")
    (location / "real.jpg").write_bytes(b"x")
    (location / "alias.jpg").symlink_to(location / "real.jpg")
    storage = FsspecStorage(f"file://{location}")
    for name in ["link/secret.txt", "leak.txt", "link/new.jpg"]:
        with pytest.raises(SuspiciousName, match="outside"):
            storage.open(name)
        with pytest.raises(SuspiciousName):
            storage.save(name, b"evil")
    assert not (outside / "new.jpg").exists()
    with storage.open("alias.jpg") as f:
        assert f.read() == b"x"


# ------------------------------------------------------------ name limits


def test_clean_name_limits_components_and_bytes() -> None:
    assert clean_name("a/" * 31 + "x.jpg") == "a/" * 31 + "x.jpg"
    with pytest.raises(SuspiciousName, match="32"):
        clean_name("a/" * 32 + "x.jpg")
    fits = "/".join(["x" * 255] * 3 + ["y" * 254]) + "/z"  # 1,024 bytes
    assert clean_name(fits) == fits
    with pytest.raises(SuspiciousName, match="1024 bytes"):
        clean_name(fits + "z")
    with pytest.raises(SuspiciousName, match="1024 bytes"):
        clean_name("/".join(["\u00e9" * 120] * 5))  # 524 characters, 1,204 bytes


@pytest.mark.parametrize(
    "name",
    [
        "a/" * 1500 + "x.jpg",
        "a/" * 33 + "x.jpg",
        ("b" * 254 + "/") * 8 + "x.jpg",
        "./" * 5000 + "x.jpg",
        "x/" * 100_000,
    ],
    ids=["1500-deep", "33-deep", "2KB", "dots", "huge"],
)
def test_deep_or_long_names_are_refused_by_every_storage(
    storage: Storage, tmp_path: Path, name: str
) -> None:
    before_disk = _tree(tmp_path)
    before_memory = _memory_snapshot()
    with pytest.raises(SuspiciousName, match="shorter"):
        storage.save(name, b"x")
    with pytest.raises(SuspiciousName):
        storage.save(name, io.BytesIO(b"x"), overwrite=False)
    with pytest.raises(SuspiciousName):
        storage.open(name, "wb")
    with pytest.raises(SuspiciousName):
        storage.exists(name)
    with pytest.raises(SuspiciousName):
        storage.url(name)
    with pytest.raises(SuspiciousName):
        storage.listdir(name)
    assert _tree(tmp_path) == before_disk
    assert _memory_snapshot() == before_memory


def test_deep_upload_to_of_a_processed_field_is_refused(tmp_path: Path) -> None:
    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)

    class Upload(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "deep_upload"
        id = mapped_column(Integer, primary_key=True)
        photo = ProcessedImageField(
            upload_to=lambda instance, filename: "a/" * 1500 + filename,
            processors=[ResizeToFill(8, 8)],
            format="JPEG",
            length=10_000,
        )

    media = tmp_path / "media"
    app = Flask("deep", instance_path=str(tmp_path / "instance"))
    app.config.update(
        TESTING=True, IMAGEKIT_MEDIA_ROOT=str(media), SQLALCHEMY_DATABASE_URI="sqlite://"
    )
    db.init_app(app)
    ImageKit(app, db=db)
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buffer, "PNG")
    upload = FileStorage(stream=io.BytesIO(buffer.getvalue()), filename="cat.png")
    with app.app_context():
        with pytest.raises(SuspiciousName, match="shorter"):
            Upload(photo=upload)
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()
    assert not media.exists() or list(media.rglob("*")) == []


# ------------------------------------------------------ temporary files


def test_temporary_files_are_never_listed(storage: Storage) -> None:
    storage.save("dir/a.jpg", b"x")
    storage.save("b.jpg", b"x")
    leftovers = [".tmp-k3j2h1g0", "dir/.tmp-Ab3dE5g-a.jpg", "dir/.tmp-x.jpg"]
    for name in leftovers:
        if isinstance(storage, FsspecStorage):
            storage.fs.pipe_file(f"{storage.root}/{name}", b"half")
        else:
            assert isinstance(storage, FileSystemStorage)
            Path(storage.location, name).write_bytes(b"half")
    assert list(storage.walk()) == ["b.jpg", "dir/a.jpg"]
    assert list(storage.walk("dir")) == ["dir/a.jpg"]
    assert storage.listdir("") == (["dir"], ["b.jpg"])
    assert storage.listdir("dir") == ([], ["a.jpg"])


# ---------------------------------------------------------- sanitisers


def test_public_names_stay_importable_from_the_package() -> None:
    import flask_imagekit.storage as storage

    for name in storage.__all__:
        assert getattr(storage, name) is not None
    assert storage.MAX_NAME_BYTES == 1024
    assert storage.MAX_NAME_COMPONENTS == 32
    assert storage.is_temporary_name(".tmp-x")


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("abc", 3, "abc"),
        ("abcd", 3, "abc"),
        ("\u00e9\u00e9", 3, "\u00e9"),  # 2-byte characters: never half a character
        ("\u6f22\u6f22", 5, "\u6f22"),
        ("\U0001f600", 3, ""),
        ("", 0, ""),
    ],
)
def test_truncate_utf8_cuts_whole_characters(text: str, limit: int, expected: str) -> None:
    assert truncate_utf8(text, limit) == expected


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        ("cat.jpg", "cat.jpg"),
        ("a\x00b\x1fc\x7fd\x85e\udcff", "a_b_c_d_e_"),
        ("CON", "_CON"),
        ("nul.tar.gz", "_nul.tar.gz"),
        ("Com1 .png", "_Com1 .png"),
        ("LPT\u00b9", "_LPT\u00b9"),
        ("CONSOLE", "CONSOLE"),
        ("x" * 300, "x" * 255),
    ],
)
def test_sanitize_component(part: str, expected: str) -> None:
    assert sanitize_component(part) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("photos/2024", ["photos", "2024"]),
        ("../../etc", ["etc"]),
        ("a/./b//c/..", ["a", "b", "c"]),
        ("C:\\Windows\\System32", ["Windows", "System32"]),
        ("", []),
        ("aux/x", ["_aux", "x"]),
    ],
)
def test_sanitize_dirs(path: str, expected: list[str]) -> None:
    assert sanitize_dirs(path) == expected


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        ("cat", "cat"),
        ("", "_"),
        (".", "_."),
        ("..", "_.."),
        (".tmp-x", "_.tmp-x"),
        ("prn", "_prn"),
    ],
)
def test_sanitize_stem(stem: str, expected: str) -> None:
    assert sanitize_stem(stem, 255) == expected
    assert not is_temporary_name(sanitize_stem(stem, 255))


@pytest.mark.parametrize(
    ("ext", "expected"),
    [(".jpg", ".jpg"), (".j/p\\g", ".jpg"), (".j\x00pg", ".jpg"), ("." + "e" * 16, "")],
)
def test_sanitize_extension(ext: str, expected: str) -> None:
    assert sanitize_extension(ext) == expected


@pytest.mark.parametrize(
    ("name", "absolute"),
    [("/a", True), ("C:x", True), ("c:\\x", True), ("\\\\server\\x", True), ("a/b", False)],
)
def test_is_absolute_name(name: str, absolute: bool) -> None:
    assert is_absolute_name(name) is absolute


def test_fit_name_drops_the_deepest_directories() -> None:
    assert fit_name("CACHE/images", ["a", "b"], "x.jpg") == "CACHE/images/a/b/x.jpg"
    assert fit_name("CACHE/images", [], "x.jpg") == "CACHE/images/x.jpg"
    assert fit_name("", ["a"], "x.jpg") == "a/x.jpg"
    deep = fit_name("c", [f"d{i}" for i in range(40)], "x.jpg")
    assert deep.split("/") == ["c", *[f"d{i}" for i in range(30)], "x.jpg"]
    wide = fit_name("c", ["y" * 255] * 5, "x.jpg")
    assert wide == "c/" + "/".join(["y" * 255] * 3) + "/x.jpg"
    for name in (deep, wide):
        assert clean_name(name) == name


def test_alternative_and_temporary_names_fit_one_component() -> None:
    long_name = "dir/" + "\u00e9" * 200 + ".jpg"
    other = alternative_name(long_name)
    assert other.startswith("dir/")
    assert other.endswith(".jpg")
    assert re.fullmatch(r"_[A-Za-z0-9]{7}\.jpg", other[-12:])
    assert clean_name(other) == other
    temp = temp_basename("\u00e9" * 200 + ".jpg")
    assert is_temporary_name(temp)
    assert len(temp.encode("utf-8")) <= 255
