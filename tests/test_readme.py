"""Every code block of README.rst runs: Python and Jinja here, commands here or elsewhere."""

from __future__ import annotations

import re
import sys
import types
import typing as t
from pathlib import Path

import pytest
from PIL import Image

README = Path(__file__).resolve().parents[1] / "README.rst"

# Commands whose real run is another test's job (named so a reader can find it).
COVERED_ELSEWHERE = {
    "make demo": "tests/test_example_app.py (python -m example_app.demo) and tests/browser",
    "make test": ".ci/run (this very suite)",
    "FLASK_APP=myapp rq worker": "tests/test_async.py (real rq workers, rqworker.Worker)",
    "celery -A worker worker": "test_the_celery_worker_block_runs_a_real_worker, below",
    "flask --app example_app": "tests/test_example_app.py (init-db, seed, generate)",
    "flask --app myapp imagekit generate --enqueue": "tests/test_async.py (Celery worker)",
}


def blocks() -> list[tuple[str, str]]:
    """(language, code) of every ``.. code-block::`` in README.rst, in order."""
    found = []
    lines = README.read_text().splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"\.\. code-block:: (\w+)", line)
        if not match:
            continue
        body: list[str] = []
        for following in lines[index + 2 :]:
            if following and not following.startswith("    "):
                break
            body.append(following[4:])
        found.append((match.group(1), "\n".join(body).strip() + "\n"))
    return found


def test_readme_has_the_two_commands_on_its_first_screen() -> None:
    first_screen = "\n".join(README.read_text().splitlines()[:25])
    assert "make demo" in first_screen
    assert "make test" in first_screen


def test_every_block_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: t.Any) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SECRET_KEY", "readme-tour")
    # A real module: SQLAlchemy resolves the models' annotations through it.
    module = types.ModuleType("readme_tour")
    module.__file__ = str(tmp_path / "readme_tour.py")
    monkeypatch.setitem(sys.modules, "readme_tour", module)
    namespace: dict[str, t.Any] = module.__dict__
    ran = {"python": 0, "jinja": 0, "console": 0}
    for language, code in blocks():
        if language == "python":
            exec(compile(code, str(README), "exec"), namespace)  # noqa: S102
        elif language == "jinja":
            render_jinja(namespace, code)
        elif language == "console":
            run_console(namespace, code, monkeypatch)
        else:
            pytest.fail(f"README block in an unexpected language: {language}")
        ran[language] += 1
    assert ran["python"] >= 8
    assert ran["jinja"] == 2
    assert ran["console"] >= 3
    output = capsys.readouterr().out
    assert "/media/CACHE/images/photos/bulldog/" in output
    assert "100 50" in output
    assert "portraits/me.jpg 160" in output
    lines = output.splitlines()
    # Responsive images: two <source>s and the output's size; a WebP srcset.
    assert lines.count("2 True") == 1
    assert "True True" in lines
    # On-request generation: the page did not make the file; the first GET did.
    assert "False" in lines
    assert "200 image/jpeg" in lines
    check_tour(namespace)


def render_jinja(namespace: dict[str, t.Any], code: str) -> None:
    app = namespace["app"]
    with app.test_request_context():
        profile = namespace["db"].session.get(namespace["Profile"], 1)
        html = app.jinja_env.from_string(code).render(profile=profile)
    assert "<img src=" in html
    assert 'alt="Me"' in html or "placeholder" in html or "width=" in html


def run_console(namespace: dict[str, t.Any], code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for line in code.splitlines():
        command = line.removeprefix("$ ").split("  #")[0].strip()
        if not command:
            continue
        if command.startswith("flask --app myapp imagekit") and "--enqueue" not in command:
            args = command.removeprefix("flask --app myapp ").split()
            args = [arg.strip('"') for arg in args]
            with monkeypatch.context() as patch:
                patch.chdir(Path.cwd())  # the seed's source group changes directory
                result = namespace["app"].test_cli_runner().invoke(args=args)
            assert result.exit_code == 0, result.output
            continue
        covered = [key for key in COVERED_ELSEWHERE if command.startswith(key)]
        assert covered, f"README command not exercised by any test: {command}"


def check_tour(namespace: dict[str, t.Any]) -> None:
    """What the tour promised is there: files, sizes, and the RQ configuration."""
    app = namespace["app"]
    media = Path(namespace["media"])
    cache_files = list((media / "CACHE" / "images").rglob("*.*"))
    assert cache_files
    with app.app_context():
        card = namespace["db"].session.get(namespace["Card"], 1)
        assert (card.thumbnail.width, card.thumbnail.height) == (64, 64)
        from flask_imagekit.cachefiles import ImageCacheFile

        poster = ImageCacheFile(namespace["Poster"](source="photos/bulldog.jpg"))
        assert poster.name.endswith(".webp")
        poster.generate()
        with Image.open(poster.path) as img:
            assert img.size == (300, 200)
    from flask import Flask

    from flask_imagekit import ImageKit
    from flask_imagekit.cachefiles.backends import RQ

    other = Flask("rq_app")
    namespace["configure_rq"](other)
    ImageKit(other)
    assert isinstance(other.extensions["imagekit"].state(other).cachefile_backend, RQ)
    with app.app_context():
        namespace["db"].session.remove()
        namespace["db"].engine.dispose()


def worker_block() -> str:
    """The README's complete Celery ``worker.py``."""
    found = [code for language, code in blocks() if code.startswith("# worker.py")]
    assert len(found) == 1
    return found[0]


@pytest.mark.redis
def test_the_celery_worker_block_runs_a_real_worker(redis_url: str, tmp_path: Path) -> None:
    import os
    import subprocess
    import time

    (tmp_path / "worker.py").write_text(worker_block())
    media = tmp_path / "media"
    (media / "photos").mkdir(parents=True)
    Image.new("RGB", (600, 400), "teal").save(media / "photos" / "a.jpg")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
    env.update(
        SECRET_KEY="readme-worker",
        REDIS_URL=redis_url,
        MEDIA_ROOT=str(media),
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(README.parent)]),
    )
    env.pop("PYTHONWARNINGS", None)
    bin_dir = Path(sys.executable).parent
    # The web side: the same module enqueues a job through the Celery backend.
    enqueue = (
        "from worker import flask_app\n"
        "from flask_imagekit.cachefiles import LazyGeneratedImageFile\n"
        "with flask_app.app_context():\n"
        "    f = LazyGeneratedImageFile('cards:thumbnail', source='photos/a.jpg')\n"
        "    assert not f\n"
        "    print(f.name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", enqueue],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    name = done.stdout.split()[-1]
    worker = subprocess.Popen(
        [
            str(bin_dir / "celery"),
            "-A",
            "worker",
            "worker",
            "--pool",
            "solo",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "WARNING",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (media / name).is_file():
            assert time.monotonic() < deadline, "the worker did not generate the file"
            assert worker.poll() is None, "the worker exited"
            time.sleep(0.1)
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=30)
    assert "Traceback" not in output, output
    with Image.open(media / name) as img:
        assert img.size == (120, 80)
