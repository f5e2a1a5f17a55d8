"""Async jobs cross a trust boundary: what a scheduler sends, and what a worker accepts.

A scheduler only sends stored sources, and signs each payload with the app's
``SECRET_KEY``. A worker accepts only payloads whose signature verifies and whose
fields are what a scheduler sends: no paths, no module names, registered generator
ids. Every refusal and every failure is logged, and the lock the scheduler took is
released when the payload is trustworthy.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import os
import typing as t
from pathlib import Path

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from PIL import Image
from sqlalchemy.orm import DeclarativeBase
from werkzeug.datastructures import FileStorage

from flask_imagekit import ImageKit, ImageSpec, exceptions
from flask_imagekit.cachefiles import ImageCacheFile, LazyGeneratedImageFile
from flask_imagekit.cachefiles.backends import CacheFileState
from flask_imagekit.exceptions import ImageKitError, ImproperlyConfigured
from flask_imagekit.jobs import job_payload, run_job
from flask_imagekit.processors import ResizeToFill
from flask_imagekit.sources import SourceFile
from flask_imagekit.storage import FileSystemStorage

from .conftest import Recorder, card_model, encode, photo, save_source, sign_job

SECRET = "job-security-tests"
SOURCE = "pics/a.jpg"
JOB_LOGGER = "flask_imagekit.jobs"


class Thumb(ImageSpec):
    processors = [ResizeToFill(20, 10)]
    format = "JPEG"


class Hungry(ImageSpec):
    """A spec whose generation exhausts the worker's memory (a huge size, say)."""

    processors = [ResizeToFill(40000, 40000)]
    format = "PNG"

    def generate(self) -> t.Any:
        raise MemoryError


def sign(body: dict[str, t.Any], secret: str = SECRET) -> dict[str, t.Any]:
    """Sign ``body`` as a scheduler of this module's app does."""
    return sign_job(body, secret)


@pytest.fixture
def backend(app: Flask, media_root: Path) -> t.Iterator[Recorder]:
    recorder = Recorder()
    app.config.update(SECRET_KEY=SECRET, IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=recorder)
    imagekit = ImageKit(app)
    imagekit.register.generator("sec:thumb", Thumb)
    imagekit.register.generator("sec:hungry", Hungry)
    save_source(media_root, SOURCE)
    with app.app_context():
        yield recorder


def cache_files(media_root: Path) -> list[Path]:
    return [path for path in (media_root / "CACHE").rglob("*") if path.is_file()]


def lock_holder(file: ImageCacheFile) -> t.Any:
    backend = file.cachefile_backend
    return backend.state_cache(file).lock_holder(backend.get_lock_key(file))


def enqueued(backend: Recorder, generator_id: str = "sec:thumb") -> ImageCacheFile:
    """A file whose job the scheduler sent: its lock is held with the job's token."""
    file = LazyGeneratedImageFile(generator_id, source=SOURCE)
    assert backend.enqueue(file)
    assert lock_holder(file) == backend.sent[-1]["token"]
    return file


def assert_failure_recorded(
    backend: Recorder, file: ImageCacheFile, state: CacheFileState = CacheFileState.FAILED
) -> None:
    assert lock_holder(file) is None  # the scheduler's lock is released
    assert backend.get_state(file, check_if_unknown=False) is state
    sent = len(backend.sent)
    again = LazyGeneratedImageFile(file.generator_id or "", source=SOURCE)
    if state is CacheFileState.FAILED:
        # Debug mode (app.testing) raises the remembered failure; production renders
        # a placeholder (tests/test_robustness.py).
        with pytest.raises(ImageKitError, match="failed recently"):
            bool(again)
    else:
        assert not again
    assert len(backend.sent) == sent  # remembered: page views do not enqueue it again at once


# A. Only stored sources go to workers ------------------------------------------------


def _upload(tmp_path: Path) -> t.Any:
    return FileStorage(io.BytesIO(encode(photo((80, 60)))), filename=SOURCE)


def _binary_file(tmp_path: Path) -> t.Any:
    return io.BytesIO(encode(photo((80, 60))))


def _named_binary_file(tmp_path: Path) -> t.Any:
    path = tmp_path / "upload" / "a.jpg"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(encode(photo((80, 60))))
    return path.open("rb")


def _path(tmp_path: Path) -> t.Any:
    path = tmp_path / "upload" / "a.jpg"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(encode(photo((80, 60))))
    return path


@pytest.mark.parametrize(
    "make_source",
    [_upload, _binary_file, _named_binary_file, _path],
    ids=["upload", "binary-file", "named-binary-file", "path"],
)
def test_async_backends_refuse_sources_that_are_not_stored(
    backend: Recorder, tmp_path: Path, make_source: t.Callable[[Path], t.Any]
) -> None:
    value = make_source(tmp_path)
    try:
        file = ImageCacheFile(Thumb(source=value), generator_id="sec:thumb")
        with pytest.raises(ImageKitError, match="[Ss]tore it first") as info:
            file.generate()
        assert isinstance(info.value, exceptions.UnstoredSource)
        with pytest.raises(ImageKitError, match="[Ss]tore it first"):
            job_payload(file)
        assert backend.sent == []
        assert lock_holder(file) is None
    finally:
        if hasattr(value, "close"):
            value.close()


def test_async_backends_refuse_sources_in_another_storage(
    backend: Recorder, tmp_path: Path
) -> None:
    other = FileSystemStorage(tmp_path / "other", "/other/")
    save_source(tmp_path / "other", SOURCE)
    file = ImageCacheFile(
        Thumb(source=SourceFile(SOURCE, storage=other)), generator_id="sec:thumb"
    )
    with pytest.raises(ImageKitError, match="IMAGEKIT_SOURCE_STORAGE") as info:
        file.generate()
    assert isinstance(info.value, exceptions.UnstoredSource)
    assert backend.sent == []


def test_stored_sources_are_enqueued_signed(backend: Recorder) -> None:
    file = LazyGeneratedImageFile("sec:thumb", source=SOURCE)
    assert not file
    (payload,) = backend.sent
    assert payload["source"]["name"] == SOURCE
    assert payload["generator_id"] == "sec:thumb"
    assert payload == sign(payload)  # the documented signature
    assert payload == json.loads(json.dumps(payload))  # JSON-safe as it is


def test_generate_enqueue_reports_sources_that_are_not_stored(
    backend: Recorder, app: Flask, tmp_path: Path
) -> None:
    pics = tmp_path / "pics"
    for index in range(2):
        save_source(pics, f"p{index}.jpg")

    class JpegsInADirectory:
        def __init__(self, dir: Path) -> None:
            self.dir = dir

        def files(self) -> t.Iterator[t.IO[str]]:
            for path in sorted(self.dir.glob("*.jpg")):
                yield path.open()  # text mode, as in django-imagekit's docs

    app.extensions["imagekit"].register.source_group("sec:thumb", JpegsInADirectory(pics))
    result = app.test_cli_runner().invoke(args=["imagekit", "generate", "--enqueue"])
    assert result.exit_code == 1
    assert "Enqueued 0 files, 0 already there, 2 failed." in result.output
    assert result.output.count("Store it first") == 2
    assert backend.sent == []


def test_enqueue_needs_a_secret_key(app: Flask, media_root: Path) -> None:
    # A spec's own async backend is only known at enqueue: the check is there too.
    recorder = Recorder()

    class OnWorkers(Thumb):
        cachefile_backend = recorder

    ImageKit(app).register.generator("sec:thumb", OnWorkers)
    save_source(media_root, SOURCE)
    with app.app_context():
        file = LazyGeneratedImageFile("sec:thumb", source=SOURCE)
        with pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
            file.generate()
        assert recorder.sent == []
        assert lock_holder(file) is None


def test_workers_need_a_secret_key(backend: Recorder, app: Flask) -> None:
    enqueued(backend)
    payload = backend.sent[-1]
    app.config["SECRET_KEY"] = None
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
        run_job(payload)


def test_workers_refuse_to_start_without_a_secret_key(app: Flask) -> None:
    from celery import Celery

    from flask_imagekit.jobs import init_celery

    ImageKit(app)
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
        init_celery(Celery("jobs-without-key"), flask_app=app)


def test_jobs_signed_with_a_fallback_key_still_run(backend: Recorder, app: Flask) -> None:
    file = enqueued(backend)
    payload = backend.sent[-1]
    app.config.update(SECRET_KEY="the new key", SECRET_KEY_FALLBACKS=[SECRET])
    assert run_job(payload) == "generated"
    assert lock_holder(file) is None


# B. Workers accept only what a scheduler sends ---------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """An image outside the media root that a forged job would like thumbnailed."""
    path = tmp_path / "outside" / "secret.jpg"
    path.parent.mkdir()
    path.write_bytes(encode(photo((90, 70))))
    return path


def test_unsigned_payload_naming_a_file_outside_the_root_is_refused(
    backend: Recorder, media_root: Path, outside: Path, caplog: pytest.LogCaptureFixture
) -> None:
    forged = {
        "generator_id": "sec:thumb",
        "source": {"name": "x.jpg", "path": str(outside), "instance": None, "attname": None},
        "kwargs": {},
        "name": "CACHE/images/x.jpg",
        "force": True,
        "token": "t",
    }
    with caplog.at_level(logging.ERROR, JOB_LOGGER):
        with pytest.raises(ImageKitError, match="signature") as info:
            run_job(forged)
    assert isinstance(info.value, exceptions.JobRefused)
    assert cache_files(media_root) == []
    assert "refused" in caplog.text.lower()


@pytest.mark.parametrize(
    "payload",
    [None, "pics/a.jpg", [1, 2], {"evil": 1}, {"signature": "x"}, {}],
    ids=["null", "string", "list", "evil", "signature-only", "empty"],
)
def test_payloads_that_are_not_jobs_are_refused(backend: Recorder, payload: t.Any) -> None:
    with pytest.raises(ImageKitError) as info:
        run_job(payload)
    assert isinstance(info.value, exceptions.JobRefused)


def test_payload_signed_with_another_key_is_refused(backend: Recorder, media_root: Path) -> None:
    file = enqueued(backend)
    forged = sign(backend.sent[-1], secret="another key")
    with pytest.raises(ImageKitError, match="signature"):
        run_job(forged)
    assert cache_files(media_root) == []
    # An unverified payload cannot release a lock, whatever token it names.
    assert lock_holder(file) == forged["token"]


def test_tampered_payload_is_refused_and_the_real_one_still_runs(
    backend: Recorder, media_root: Path, outside: Path
) -> None:
    file = enqueued(backend)
    payload = backend.sent[-1]
    tampered = copy.deepcopy(payload)
    tampered["source"]["name"] = "pics/other.jpg"
    with pytest.raises(ImageKitError, match="signature"):
        run_job(tampered)
    assert lock_holder(file) == payload["token"]
    assert run_job(payload) == "generated"
    assert lock_holder(file) is None
    with Image.open(file.path) as img:
        assert img.size == (20, 10)


def _set(path: tuple[str, ...], value: t.Any) -> t.Callable[[dict[str, t.Any]], None]:
    def mutate(body: dict[str, t.Any]) -> None:
        target = body
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _drop(key: str) -> t.Callable[[dict[str, t.Any]], None]:
    def mutate(body: dict[str, t.Any]) -> None:
        del body[key]

    return mutate


BAD_BODIES = {
    "source-path": _set(("source", "path"), "OUTSIDE"),
    "module-reference": _set(("source", "instance"), ["os", "system", [1]]),
    "unknown-top-level-key": _set(("evil",), 1),
    "bare-string-source": _set(("source",), SOURCE),
    "source-without-name": _set(("source",), {}),
    "source-name-not-str": _set(("source", "name"), ["pics", "a.jpg"]),
    "source-name-escaping": _set(("source", "name"), "../outside/secret.jpg"),
    "source-name-absolute": _set(("source", "name"), "/outside/secret.jpg"),
    "unknown-generator": _set(("generator_id",), "sec:nope"),
    "generator-id-not-str": _set(("generator_id",), 1),
    "kwargs-not-a-dict": _set(("kwargs",), [1]),
    "kwargs-naming-a-source": _set(("kwargs",), {"source": "../outside/secret.jpg"}),
    "kwargs-too-deep": _set(("kwargs",), {"x": json.loads("[" * 40 + "]" * 40)}),
    "kwargs-with-a-bad-key": _set(("kwargs",), {"not an argument": 1}),
    "force-not-bool": _set(("force",), "yes"),
    "unmapped-model": _set(("source", "model"), {"entity": "Nope", "identity": [1]}),
    "missing-key": _drop("force"),
}


@pytest.mark.parametrize("mutate", list(BAD_BODIES.values()), ids=list(BAD_BODIES))
def test_signed_payloads_that_break_the_schema_are_refused_and_recorded(
    backend: Recorder,
    media_root: Path,
    outside: Path,
    caplog: pytest.LogCaptureFixture,
    mutate: t.Callable[[dict[str, t.Any]], None],
) -> None:
    file = enqueued(backend)
    body = copy.deepcopy(backend.sent[-1])
    mutate(body)
    body = json.loads(json.dumps(body).replace('"OUTSIDE"', json.dumps(str(outside))))
    with caplog.at_level(logging.ERROR, JOB_LOGGER):
        with pytest.raises(ImageKitError) as info:
            run_job(sign(body))
    assert isinstance(info.value, exceptions.JobRefused)
    assert "refused" in caplog.text.lower()
    assert cache_files(media_root) == []
    assert_failure_recorded(backend, file)


def test_signed_payload_with_a_bad_token_is_refused(backend: Recorder, media_root: Path) -> None:
    file = enqueued(backend)
    body = dict(backend.sent[-1], token=5)
    with pytest.raises(ImageKitError) as info:
        run_job(sign(body))
    assert isinstance(info.value, exceptions.JobRefused)
    assert cache_files(media_root) == []
    assert lock_holder(file) is not None  # no trustworthy token: the lock expires on its own


def test_kwargs_the_generator_does_not_take_are_a_recorded_failure(
    backend: Recorder, media_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    file = enqueued(backend)
    body = dict(backend.sent[-1], kwargs={"evil": 1})
    with caplog.at_level(logging.ERROR, JOB_LOGGER):
        assert run_job(sign(body)) == "failed"
    assert "evil" in caplog.text
    assert cache_files(media_root) == []
    assert_failure_recorded(backend, file)


def test_a_generation_out_of_memory_is_a_recorded_failure(
    backend: Recorder, media_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    file = enqueued(backend, "sec:hungry")
    with caplog.at_level(logging.ERROR, JOB_LOGGER):
        assert run_job(backend.sent[-1]) == "failed"
    assert "MemoryError" in caplog.text
    assert cache_files(media_root) == []
    assert_failure_recorded(backend, file)


def test_a_payload_without_a_source_for_a_spec_that_needs_one_is_missing(
    backend: Recorder, media_root: Path
) -> None:
    file = enqueued(backend)
    body = dict(backend.sent[-1], source=None)
    assert run_job(sign(body)) == "missing"
    assert cache_files(media_root) == []
    assert_failure_recorded(backend, file, CacheFileState.DOES_NOT_EXIST)


# Model rows travel as a mapped entity of the app, never as a module path -------------


@pytest.fixture
def db(app: Flask, tmp_path: Path) -> t.Iterator[SQLAlchemy]:
    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    db.init_app(app)
    yield db
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_rows_travel_as_mapped_entities_not_module_paths(
    app: Flask, db: SQLAlchemy, media_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder()
    app.config.update(SECRET_KEY=SECRET, IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=recorder)

    Card = card_model(db)  # noqa: N806
    ImageKit(app, db=db)
    save_source(media_root, SOURCE)
    with app.app_context():
        db.create_all()
        card = Card(size=12, picture=SOURCE)
        db.session.add(card)
        db.session.commit()
        assert not card.thumb  # enqueued
        (payload,) = recorder.sent
        text = json.dumps(payload)
        assert "path" not in payload["source"]
        assert __name__ not in text
        assert Card.__module__ not in text
        assert payload["source"]["model"] == {"entity": "Card", "identity": [card.id]}
        name = card.thumb.name
        db.session.remove()

        def no_imports(name: str, *args: t.Any, **kwargs: t.Any) -> t.Any:
            msg = f"a job imported {name!r}"
            raise AssertionError(msg)

        monkeypatch.setattr("importlib.import_module", no_imports)
        assert run_job(payload) == "generated"
        monkeypatch.undo()
        with Image.open(media_root / name) as img:
            assert img.size == (12, 12)


# A real RQ worker -------------------------------------------------------------------


@pytest.fixture
def rq_env(redis_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    media = tmp_path / "media"
    save_source(media, "pics/p0.jpg", photo((400, 300)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IK_", "FLASK_"))}
    env.update(
        IK_MEDIA=str(media),
        IK_REDIS=redis_url,
        IK_QUEUE=f"ik-{request.node.name}"[:60],
        IK_BACKEND="rq",
        PYTHONPATH=str(Path(__file__).resolve().parents[1]),
        FLASK_APP="tests.asyncapp:create_app",
    )
    env.pop("PYTHONWARNINGS", None)
    return env


@pytest.mark.redis
def test_rq_worker_refuses_forged_jobs_and_records_them(
    rq_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, outside: Path
) -> None:
    from rq.job import Job
    from rq.registry import FailedJobRegistry

    from .test_async import load_app, rq_burst

    app = load_app(rq_env, monkeypatch)
    media = Path(rq_env["IK_MEDIA"])
    with app.app_context():
        file = LazyGeneratedImageFile("async:thumb", source="pics/p0.jpg")
        backend = file.cachefile_backend
        assert backend.enqueue(file)
        queue = backend.queue
        payload = queue.jobs[0].args[0]
        queue.empty()
        token = payload["token"]
        assert lock_holder(file) == token

        # Pushed onto the queue directly, as anyone with access to Redis could.
        unsigned = {k: v for k, v in payload.items() if k != "signature"}
        unsigned["source"] = {"name": "x.jpg", "path": str(outside)}
        tampered = copy.deepcopy(payload)
        tampered["source"]["name"] = "pics/../../outside/secret.jpg"
        forged = [
            queue.enqueue("flask_imagekit.jobs.rq_generate", body, result_ttl=0)
            for body in (unsigned, tampered)
        ]
    result = rq_burst(rq_env)
    assert result.returncode == 0, result.stderr
    with app.app_context():
        failed = FailedJobRegistry(queue=queue)
        assert sorted(failed.get_job_ids()) == sorted(job.id for job in forged)
        for job in forged:
            fetched = Job.fetch(job.id, connection=queue.connection, serializer=queue.serializer)
            latest = fetched.latest_result()
            assert latest is not None
            assert "JobRefused" in (latest.exc_string or "")
        assert not (media / "CACHE").exists()
        # Unverified payloads release nothing: the scheduler's lock is still held.
        assert lock_holder(file) == token

        # A payload signed with the app's key but not what a scheduler sends (a
        # path in it) is refused too; its token is trustworthy, so the lock goes.
        signed = copy.deepcopy(payload)
        signed["source"]["path"] = str(outside)
        job = queue.enqueue(
            "flask_imagekit.jobs.rq_generate", sign(signed, app.secret_key), result_ttl=0
        )
    result = rq_burst(rq_env)
    assert result.returncode == 0, result.stderr
    assert "refused" in result.stderr.lower()
    with app.app_context():
        assert job.id in FailedJobRegistry(queue=queue).get_job_ids()
        assert not (media / "CACHE").exists()
        assert lock_holder(file) is None
        assert backend.get_state(file, check_if_unknown=False) is CacheFileState.FAILED
        assert not LazyGeneratedImageFile("async:thumb", source="pics/p0.jpg")
        assert queue.count == 0  # the failure is remembered: no new job per page view


@pytest.mark.redis
def test_rq_worker_still_generates_signed_jobs(
    rq_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from .test_async import load_app, rq_burst

    app = load_app(rq_env, monkeypatch)
    with app.app_context():
        file = LazyGeneratedImageFile("async:thumb", source="pics/p0.jpg")
        assert not file
    result = rq_burst(rq_env)
    assert result.returncode == 0, result.stderr
    with app.app_context():
        file = LazyGeneratedImageFile("async:thumb", source="pics/p0.jpg")
        assert file
        assert (file.width, file.height) == (60, 40)


def test_an_async_default_backend_needs_a_secret_key_at_start_up(tmp_path: Path) -> None:
    from flask_imagekit.cachefiles.backends import RQ

    app = Flask("nokey", instance_path=str(tmp_path / "instance"))
    app.config.update(IMAGEKIT_MEDIA_ROOT=str(tmp_path), IMAGEKIT_DEFAULT_CACHEFILE_BACKEND=RQ())
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
        ImageKit(app)


def test_payload_names_stay_importable_from_jobs() -> None:
    from flask_imagekit import jobs, payloads

    assert jobs.job_payload is payloads.job_payload
    assert jobs.CELERY_TASK_NAME == payloads.CELERY_TASK_NAME == "flask_imagekit.generate"
