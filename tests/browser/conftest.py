"""Fixtures for the browser tests: headless Chromium, and the example app served for real.

They need the ``playwright`` package and Debian's ``chromium`` (Playwright's own
browser downloads are not used). Without them the tests skip, except under
``CI=true``, where they fail.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import typing as t
from pathlib import Path

import pytest

from ..conftest import IN_CI

if t.TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

#: The Chromium binary (Debian's ``chromium`` package); ``CHROMIUM_PATH`` overrides it.
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PROJECT_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 60.0
_URL = re.compile(r"Serving the example app on (http://127\.0\.0\.1:\d+/)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives headless Chromium through Playwright")


def require_browser() -> None:
    """Skip when Playwright or Chromium is missing; under CI=true, fail instead."""
    missing = []
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package (pip install playwright)")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    if not missing:
        return
    msg = f"browser tests need {' and '.join(missing)}"
    if IN_CI:
        pytest.fail(f"{msg}, and CI=true requires them")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def browser() -> t.Iterator[Browser]:
    """Headless Chromium, launched once for the session."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=30_000
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> t.Iterator[Page]:
    """A fresh browser context (no cookies) and page, 1280 px wide."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@dataclasses.dataclass
class LiveServer:
    """The example app served by ``python -m example_app.demo`` in a subprocess."""

    url: str
    instance: Path
    output: list[str]


@pytest.fixture(scope="module")
def live_server(
    browser: Browser, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> t.Iterator[LiveServer]:
    """Run the demo (tables, seeded photos, the banners generated) into a tmp folder; serve it.

    One server per test module, seeded with the module's ``SEED_COUNT`` photos
    (default 2). The app gets a free port (``--port 0``); its SQLite database
    and media files live under the test's tmp folder.
    """
    count = getattr(request.module, "SEED_COUNT", 2)
    root = tmp_path_factory.mktemp("example_app")
    instance = root / "instance"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "PYTHONUNBUFFERED": "1"}
    env.pop("DATABASE_URL", None)
    command = [sys.executable, "-m", "example_app.demo", "--instance", str(instance)]
    command += ["--count", str(count), "--port", "0"]
    process = subprocess.Popen(
        command,
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read, name="example-app-output", daemon=True)
    reader.start()
    try:
        url = _wait_for_url(lines, output)
        yield LiveServer(url=url, instance=instance, output=output)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # the demo stops serving cleanly on Ctrl+C
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        reader.join(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def _wait_for_url(lines: queue.Queue[str | None], output: list[str]) -> str:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        remaining = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(remaining, 0.01))
        except queue.Empty:
            line = ""
        if line is None or remaining <= 0:
            why = "exited" if line is None else f"did not serve within {STARTUP_TIMEOUT:.0f} s"
            pytest.fail(f"python -m example_app.demo {why}:\n{''.join(output)}")
        match = _URL.search(line)
        if match:
            return match.group(1)
