"""Browser tests: Playwright driving Debian's Chromium (`apt-get install chromium`; no browser
download) against a real `reskernel serve` with its own data directory. Each test fails on any
console error (a Content-Security-Policy violation is one), page error or failed request it did
not expect. Screenshots go to one folder per test run, named at the end of the run (or set
RESKERNEL_SCREENSHOTS).

The page's policy forbids eval: `wait_for_function` takes a function (`"() => ..."`), which
Playwright evaluates once, not a bare expression, which it would evaluate again at each poll."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS: list[Path] = []

if not Path(CHROMIUM).exists():
    pytest.skip("no chromium: apt-get install chromium (.ci/run does)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")


def pytest_terminal_summary(terminalreporter):
    if SHOTS:
        terminalreporter.write_line(f"browser screenshots: {SHOTS[0]}")


@pytest.fixture(scope="session")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("RESKERNEL_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    SHOTS.append(folder)
    print(f"browser screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def server_environment() -> dict[str, str]:
    """Settings of the module's server beyond its data directory (a test module overrides this)."""
    return {}


@pytest.fixture(scope="module")
def server(tmp_path_factory, server_environment) -> str:
    """Base URL of `reskernel serve` on a free port, with its own data directory."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RESKERNEL_DATA_DIR": str(tmp_path_factory.mktemp("browser-store")), **server_environment}
    process = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--log-level",
                                "warning"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            assert process.poll() is None, "reskernel serve exited"
        assert time.monotonic() < deadline, "reskernel serve did not become ready"
        time.sleep(0.2)
    yield base
    process.send_signal(signal.SIGTERM)
    process.wait(60)


@pytest.fixture(scope="module")
def browser():
    """Module-scoped: Playwright's sync API runs an event loop in this thread while it is open,
    which the suite's async tests (anyio) cannot share."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


class Watch:
    """What went wrong in a page: console errors, uncaught exceptions, failed requests, HTTP errors.
    `allow(status)` expects responses with that status, `expect(text)` console errors that contain
    `text` (errors the test provokes on purpose)."""

    def __init__(self, page):
        self.problems: list[str] = []
        self.allowed: set[int] = set()
        self.expected: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("requestfailed", lambda request: self.problems.append(f"failed: {request.url} {request.failure}"))
        page.on("response", self._response)

    def allow(self, status: int) -> None:
        self.allowed.add(status)

    def expect(self, text: str) -> None:
        self.expected.append(text)

    def _console(self, message) -> None:
        if message.type != "error":
            return
        status = re.search(r"status of (\d{3})", message.text)
        if (status and int(status.group(1)) in self.allowed) or any(text in message.text for text in self.expected):
            return
        self.problems.append(f"console error: {message.text}")

    def _response(self, response) -> None:
        if response.status >= 400 and response.status not in self.allowed:
            self.problems.append(f"HTTP {response.status}: {response.url}")


@pytest.fixture
def new_page(browser, server):
    """Opens laptop-sized pages, each in a fresh context (no shared cache or storage); the test
    fails on any problem any of them had."""
    opened = []

    def open_page():
        context = browser.new_context(viewport={"width": 1366, "height": 900}, base_url=server, accept_downloads=True)
        page = context.new_page()
        page.watch = Watch(page)
        opened.append((context, page))
        return page

    yield open_page
    for context, _ in opened:
        context.close()
    problems = [problem for _, page in opened for problem in page.watch.problems]
    assert not problems, problems


@pytest.fixture
def page(new_page):
    return new_page()
