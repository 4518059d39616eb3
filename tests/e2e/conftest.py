"""Browser tests of the web client: Playwright driving Debian's Chromium against a live server.

They run in the SQLite pass of `make test` only: in the PostgreSQL + Redis pass (DATABASE_URL
or REDIS_URL set) they are deselected, as they start a server of their own on SQLite and would
only repeat themselves. Without /usr/bin/chromium they are skipped, unless REQUIRE_SERVICES=1,
which turns that skip into a failure (CI installs Chromium, so it always runs them).
`pytest -m "not e2e"` leaves them out.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from testkit.proxy import TcpProxy
from testkit.pytest_plugin import unavailable
from testkit.servers import REPO_DIR, ServerProcess
from testkit.upstream import FakeUpstream, echo

from .live import PASSWORD, start_live_server

HERE = Path(__file__).resolve().parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
]
TIMEOUT_MS = 15_000


def _is_e2e(item: pytest.Item) -> bool:
    return HERE in Path(str(item.path)).resolve().parents


def _services_pass() -> bool:
    return bool(settings.DATABASE_URL or settings.REDIS_URL)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if _is_e2e(item)]
    for item in ours:
        item.add_marker(pytest.mark.e2e)
    # Without Chromium they stay selected, so that REQUIRE_SERVICES=1 can fail them here.
    if ours and _services_pass() and CHROMIUM.exists():
        config.hook.pytest_deselected(items=ours)
        items[:] = [item for item in items if not _is_e2e(item)]


@pytest.fixture(scope="module", autouse=True)
def _close_thread_connections() -> None:
    """Nothing to close: the browser tests use no database in this process (and the shared
    fixture's event loop could not run while Playwright's counts as running)."""


# Package scope, not session: while Playwright's sync API is started, its event loop counts as
# running in this thread, which would break the sync ORM and the async tests collected after.
@pytest.fixture(scope="package")
def playwright_api() -> Iterator[Any]:
    if not CHROMIUM.exists():
        unavailable(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("browser tests need the playwright package (pip install -e '.[dev]')")
    manager = sync_playwright().start()
    yield manager
    manager.stop()


@pytest.fixture(scope="package")
def browser(playwright_api: Any) -> Iterator[Any]:
    chromium = playwright_api.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture(scope="package")
def upstream() -> Iterator[FakeUpstream]:
    """The provider: replies that a test scripts with `on(word, ...)`, an echo otherwise."""
    fake = FakeUpstream(respond=echo).start_in_thread()
    yield fake
    fake.stop_thread()


@pytest.fixture(scope="package")
def web_server(browser: Any, upstream: FakeUpstream) -> Iterator[ServerProcess]:
    with tempfile.TemporaryDirectory(prefix="e2e-") as workdir:
        server = start_live_server(Path(workdir), upstream)
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where a test's screenshots go: docs/ (the ones the README shows) with
    UPDATE_SCREENSHOTS=1, else the test's own temporary folder."""
    return REPO_DIR / "docs" if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path


def fits(page: Any) -> None:
    """Nothing on the page is wider than its window."""
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{page.url} is {width}px wide"


@pytest.fixture
def shoot(shots: Path) -> Callable[..., None]:
    """Check that a person's page fits its window, then take its screenshot as `<name>.png`."""

    def take(who: Person, name: str, **options: Any) -> None:
        fits(who.page)
        path = shots / f"{name}.png"
        who.page.screenshot(path=str(path), **options)
        assert path.stat().st_size > 5000

    return take


@pytest.fixture
def proxy(web_server: ServerProcess) -> Iterator[TcpProxy]:
    """A proxy in front of the live server, to drop a browser's socket."""
    cuttable = TcpProxy(web_server.port).start()
    yield cuttable
    cuttable.stop()


@pytest.fixture(autouse=True)
def _server_log_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    server = request.node.funcargs.get("web_server") if hasattr(request.node, "funcargs") else None
    if report is not None and report.failed and server is not None:
        print(f"--- server log ---\n{server.log_tail()}")  # noqa: T201 - shown with the failure


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report


_counter = iter(range(1, 1_000_000))


def unique(prefix: str) -> str:
    return f"{prefix}{os.getpid() % 1000}x{next(_counter)}"


@dataclass
class Person:
    """A signed-in user with a browser context of their own."""

    username: str
    context: Any
    page: Any
    base_url: str
    dialogs: list[str]
    errors: list[str]

    def api(self, method: str, path: str, body: Any = None) -> Any:
        response = self.context.request.fetch(
            f"{self.base_url}{path}",
            method=method,
            headers={"Content-Type": "application/json", "Origin": self.base_url},
            data=json.dumps(body) if body is not None else None,
        )
        data = response.json()
        assert response.ok, data
        return data

    def goto(self, path: str) -> None:
        self.page.goto(f"{self.base_url}{path}")

    def open_chat(self, path: str) -> None:
        """Open a room or AI session page and wait until its socket is up."""
        self.goto(path)
        self.page.wait_for_selector('#conn-status[data-state="open"]')


def room_of(owner: Person, name: str, *members: Person) -> dict[str, Any]:
    """A room `owner` makes (through the API) with `members` added."""
    room = owner.api("POST", "/api/chat/rooms/", {"name": name})["room"]
    for member in members:
        owner.api(
            "POST", f"/api/chat/rooms/{room['id']}/participants/", {"username": member.username}
        )
    return room


@pytest.fixture
def person(browser: Any, web_server: ServerProcess) -> Iterator[Callable[..., Person]]:
    made: list[Person] = []

    def make(
        prefix: str = "user",
        *,
        locale: str = "ko-KR",
        base_url: str | None = None,
        signed_up: bool = True,
        username: str | None = None,
        **context_options: Any,
    ) -> Person:
        base = base_url or web_server.base_url
        context_options.setdefault("viewport", {"width": 1280, "height": 800})
        context = browser.new_context(locale=locale, **context_options)
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        who = Person(username or unique(prefix), context, page, base, [], [])
        # Any dialog at all would be script run from a payload: record it and dismiss it.
        page.on("dialog", lambda d: (who.dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: who.errors.append(str(e)))
        # The browser reports what the page's Content-Security-Policy refused on the console.
        page.on(
            "console",
            lambda m: (
                who.errors.append(m.text)
                if m.type == "error"
                and ("Content Security Policy" in m.text or "Trusted" in m.text)
                else None
            ),
        )
        if signed_up:
            who.api("POST", "/api/auth/signup/", {"username": who.username, "password": PASSWORD})
        made.append(who)
        return who

    yield make
    for who in made:
        with contextlib.suppress(Exception):
            who.context.close()
