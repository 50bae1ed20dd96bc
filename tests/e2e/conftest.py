"""Fixtures of the end-to-end tests: chromium, one live server per module, browser contexts.

A module sets ``DEMO_TOKEN_DELAY_MS`` to pace its demo model (default 15 ms per token,
so a three-stage run streams for about two seconds), and ``SERVER_ENV`` (a dict) for
other settings of its server.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Error, Page, expect, sync_playwright

from server.redis_proc import RedisProcess, free_port
from tests.e2e.support import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    RECORDER_JS,
    TIMEOUT_MS,
    LiveServer,
    server_env,
)
from tests.support.api import LoopThread, SyncApi, User

DEFAULT_TOKEN_DELAY_MS = 15.0
DESKTOP = {"width": 1280, "height": 800}

expect.set_options(timeout=TIMEOUT_MS)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item, so fixtures can tell a failed test."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session", autouse=True)
def _chromium() -> str:
    """Debian's chromium: skip without it locally, fail without it in CI (CI must run these)."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    reason = f"{CHROMIUM} not found (apt-get install -y chromium); end-to-end tests need it"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser(_chromium: str) -> Iterator[Browser]:
    """A headless chromium per module (the system's binary; nothing is downloaded).

    Not per session: while Playwright's sync API is active the thread looks like it runs
    an event loop, which would break the asyncio tests that follow these.
    """
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def live_server(
    request: pytest.FixtureRequest, redis_server: RedisProcess, _chromium: str
) -> Iterator[LiveServer]:
    """``python -m chorus`` for one test module; it must exit cleanly (0) on SIGTERM."""
    delay = float(getattr(request.module, "DEMO_TOKEN_DELAY_MS", DEFAULT_TOKEN_DELAY_MS))
    with tempfile.TemporaryDirectory(prefix="chorus-e2e-") as tmp:
        data_dir = Path(tmp)
        port = free_port()
        env = server_env(port, data_dir, redis_server.url, delay)
        env.update(getattr(request.module, "SERVER_ENV", {}))
        server = LiveServer(port, data_dir, env)
        server.start()
        try:
            yield server
        finally:
            code = server.stop()
        assert code == 0, f"the server exited with {code}:\n{server.log()}"
        problems = server.log_problems()
        assert not problems, "the server logged errors:\n" + "\n".join(problems[:20])


@pytest.fixture(scope="session")
def api_loop() -> Iterator[LoopThread]:
    """The event loop the REST client runs on (a thread of its own: Playwright's sync API
    makes this thread look like it already runs one)."""
    with LoopThread.running() as loop:
        yield loop


@pytest.fixture
def api(live_server: LiveServer, api_loop: LoopThread) -> Iterator[SyncApi]:
    """An anonymous REST client of the live server (tests/support/api.py)."""
    client = SyncApi.open(api_loop, live_server.url)
    yield client
    client.close()


UserFactory = Callable[[str], User]


@pytest.fixture
def make_user(api: SyncApi) -> UserFactory:
    """Register a fresh user through the API (logged in: it has a token): ``make_user("ann")``."""
    return lambda label: api.sign_up(User.fresh(label))


ContextFactory = Callable[..., BrowserContext]


@pytest.fixture
def new_context(
    request: pytest.FixtureRequest, browser: Browser, live_server: LiveServer
) -> Iterator[ContextFactory]:
    """Make browser contexts (closed after the test); their pages must raise no JS error.

    Every page records what its run cards show (``support.Recording``). When the test
    fails, each open page is saved to artifacts/e2e-failures/ for a look.
    """
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    def watch(page: Page) -> None:
        page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))

    def factory(**options: Any) -> BrowserContext:
        options.setdefault("viewport", DESKTOP)
        context = browser.new_context(base_url=live_server.url, **options)
        context.set_default_timeout(TIMEOUT_MS)
        context.add_init_script(RECORDER_JS)
        context.on("page", watch)
        contexts.append(context)
        return context

    yield factory
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        _save_pages(request.node.name, contexts)
    for context in contexts:
        with contextlib.suppress(Error):
            context.close()
    assert not errors, "uncaught errors in the page:\n" + "\n".join(errors)


def _save_pages(test_name: str, contexts: list[BrowserContext]) -> None:
    folder = ARTIFACTS / "e2e-failures"
    folder.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
    for i, page in enumerate(p for c in contexts for p in c.pages):
        with contextlib.suppress(Error):
            page.screenshot(path=folder / f"{stem}-{i}.png")


@pytest.fixture
def page(new_context: ContextFactory) -> Page:
    """A page in a fresh desktop context (nobody signed in)."""
    return new_context().new_page()
