"""Helpers for the end-to-end tests: the server process and UI steps (the REST client is
tests/support/api.py, shared by every test folder).

The server is the real ``python -m chorus`` (embedded mode: in-process arq worker, demo
model, SQLite store) started as a subprocess; the browser is Debian's chromium driven
through Playwright's sync API.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.support.api import User

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STAGES = ("plan", "draft", "review")
# Generous: CI machines are slow, and nothing here waits longer than it has to.
TIMEOUT_MS = 20_000
SESSION_ROUTE = re.compile(r"#/s/([A-Za-z0-9_-]+)$")


# --- the server --------------------------------------------------------------------------


class LiveServer:
    """``python -m chorus`` on a free port, with its own data dir and a Redis key prefix."""

    def __init__(self, port: int, data_dir: Path, env: dict[str, str]) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.data_dir = data_dir
        self.log_path = data_dir / "server.log"
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, within_s: float = 30.0) -> None:
        """Start the process and wait for /readyz."""
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "chorus"],
                cwd=REPO,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + within_s
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self._proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"the server was not ready within {within_s}s:\n{self.log()}")
            time.sleep(0.05)

    def stop(self, within_s: float = 20.0) -> int:
        """SIGTERM, wait for a graceful exit and return the exit code (killing if it hangs)."""
        assert self._proc is not None
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
        try:
            return self._proc.wait(within_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"the server did not exit within {within_s}s of SIGTERM:\n{self.log()}"
            ) from None

    def kill(self) -> None:
        """Kill the process (only when a graceful stop failed)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)

    def log(self, tail: int = 60) -> str:
        """The last lines of the server's output."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(lines[-tail:])

    def log_problems(self) -> list[str]:
        """Lines of the server's output that report an error or a traceback."""
        problems = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                if "Traceback" in line or "Error" in line:
                    problems.append(line)
                continue
            if isinstance(record, dict) and record.get("level") in ("ERROR", "CRITICAL"):
                problems.append(line)
        return problems


def server_env(port: int, data_dir: Path, redis_url: str, token_delay_ms: float) -> dict[str, str]:
    """The environment of one test server."""
    env = {k: v for k, v in os.environ.items() if k not in _SERVER_KNOBS}
    env.update(
        PORT=str(port),
        DATA_DIR=str(data_dir),
        REDIS_URL=redis_url,
        # Keys of this server only: other tests share the Redis of this test run.
        REDIS_KEY_PREFIX=f"e2e{secrets.token_hex(4)}",
        BCRYPT_ROUNDS="4",
        DEMO_TOKEN_DELAY_MS=str(token_delay_ms),
        # Every test signs up fresh users from 127.0.0.1; keep the login limits out of the way.
        RATE_LOGIN_PER_IP="10000",
        RATE_LOGIN_PER_EMAIL="1000",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    return env


# Settings the developer's shell might carry that would change what is under test.
_SERVER_KNOBS = frozenset(
    {
        "ENV", "HOST", "MONGODB_URL", "SECRET_KEY", "ALLOWED_ORIGINS", "PIPELINES_FILE",
        "EMBEDDED_WORKER", "DEMO_MODEL_URL", "UI_API_BASE", "OPENAI_API_KEY", "DOUBLE_TEXTING",
    }
)  # fmt: skip


# --- signing in (the REST client: tests/support/api.py) ------------------------------------


def sign_in_context(context: BrowserContext, user: User) -> None:
    """Log the browser context in through the API (sets its session cookie)."""
    resp = context.request.post(
        "/api/v1/auth/login", data={"email": user.email, "password": user.password}
    )
    assert resp.ok, resp.text()


def signed_in_page(
    new_context: Callable[..., BrowserContext], user: User, **options: object
) -> Page:
    """A page of a new context (``options`` for the context) where the user is signed in,
    at /, online."""
    context = new_context(**options)
    sign_in_context(context, user)
    page = context.new_page()
    page.goto("/")
    expect(tid(page, "conn-status")).to_have_attribute("data-state", "online")
    return page


# --- UI steps -------------------------------------------------------------------------------


def tid(scope: Page | Locator, testid: str) -> Locator:
    """The elements with a data-testid."""
    return scope.get_by_test_id(testid)


def ui_register(page: Page, user: User) -> None:
    """Create an account through the sign-in screen (which signs the user in)."""
    expect(tid(page, "auth-view")).to_be_visible()
    tid(page, "tab-register").click()
    expect(tid(page, "register-form")).to_be_visible()
    tid(page, "register-name").fill(user.name)
    tid(page, "register-email").fill(user.email)
    tid(page, "register-password").fill(user.password)
    tid(page, "register-submit").click()
    expect(tid(page, "app-view")).to_be_visible()
    expect(tid(page, "user-email")).to_have_text(user.email)


def ui_login(page: Page, user: User) -> None:
    """Sign in through the sign-in screen."""
    expect(tid(page, "login-form")).to_be_visible()
    tid(page, "login-email").fill(user.email)
    tid(page, "login-password").fill(user.password)
    tid(page, "login-submit").click()
    expect(tid(page, "app-view")).to_be_visible()
    expect(tid(page, "auth-view")).to_be_hidden()
    expect(tid(page, "user-email")).to_have_text(user.email)


def session_id_of(page: Page) -> str:
    """The id of the session the page shows (from its #/s/<id> route)."""
    expect(page).to_have_url(SESSION_ROUTE)
    match = SESSION_ROUTE.search(page.url)
    assert match is not None
    return match.group(1)


def ui_new_session(page: Page, title: str = "", pipeline: str | None = None) -> str:
    """Create a session through the dialog; return its id once it is open and ready."""
    tid(page, "new-session").click()
    dialog = tid(page, "new-session-dialog")
    expect(dialog).to_be_visible()
    select = tid(dialog, "pipeline-select")
    expect(select.locator('option[value="default"]')).to_have_count(1)
    expect(select).to_be_enabled()
    if pipeline is not None:
        select.select_option(pipeline)
        expect(tid(dialog, "pipeline-description")).not_to_be_empty()
    if title:
        tid(dialog, "new-session-title").fill(title)
    tid(dialog, "new-session-create").click()
    expect(dialog).to_be_hidden()
    session_id = session_id_of(page)
    expect(tid(page, "chat")).to_be_visible()
    expect(tid(page, "conversation-loading")).to_be_hidden()
    if pipeline is not None:
        expect(tid(page, "conversation-pipeline")).to_have_text(f"pipeline: {pipeline}")
    expect(tid(page, "composer")).to_have_attribute("data-state", "ready")
    return session_id


def ui_send(page: Page, text: str) -> None:
    """Write a message and send it; return once it shows in the conversation."""
    box = tid(page, "composer-input")
    expect(box).to_be_enabled()
    box.fill(text)
    tid(page, "send").click()
    expect(
        tid(page, "message").and_(page.locator('[data-role="user"]')).filter(has_text=text)
    ).to_have_count(1)


def wait_streaming(page: Page, stage: str | None = None) -> str:
    """Wait until the latest run card streams text (of stage, if given); return the stage.

    Checked on every animation frame, so even a stage that streams for a moment is seen.
    """
    handle = page.wait_for_function(
        """(stage) => {
            const card = [...document.querySelectorAll('[data-testid="run"]')].at(-1);
            const stream = card && card.querySelector('[data-testid="stream"]');
            if (!stream || stream.hidden || (stage && stream.dataset.stage !== stage)) return false;
            const text = stream.querySelector('[data-testid="stream-text"]').textContent;
            return text ? stream.dataset.stage : false;
        }""",
        arg=stage,
    )
    return str(handle.json_value())


def stage_el(scope: Page | Locator, name: str) -> Locator:
    """A run card's stepper entry for one stage."""
    return scope.locator(f'[data-testid="stage"][data-stage="{name}"]')


def answers(page: Page) -> Locator:
    """The assistant messages of the open conversation."""
    return tid(page, "message").and_(page.locator('[data-role="assistant"]'))


def user_messages(page: Page) -> Locator:
    """The user messages of the open conversation."""
    return tid(page, "message").and_(page.locator('[data-role="user"]'))


def shown_stage_outputs(answer: Locator) -> dict[str, str]:
    """Open an answer's stage details; return each stage's output text as shown, in order."""
    summary = tid(answer, "run-details-summary")
    expect(summary).to_be_visible()
    summary.click()
    expect(tid(answer, "run-details")).to_have_attribute("open", "")
    items = tid(answer, "stage-output")
    expect(items.first).to_be_visible()
    shown = {}
    for i in range(items.count()):
        item = items.nth(i)
        item.locator("summary").click()
        expect(item).to_have_attribute("open", "")
        text = tid(item, "stage-output-text")
        expect(text).to_be_visible()
        shown[str(item.get_attribute("data-stage"))] = markdown_source(text)
    return shown


def markdown_source(el: Locator) -> str:
    """The markdown text a rendered view (stream, stage output, stopped text) shows."""
    return str(el.evaluate("(el) => el.source ?? ''"))


# --- recording what the page showed ---------------------------------------------------------

# Installed in every page before its scripts run: a MutationObserver notes each distinct
# state of every run card's stages and streaming text, so a test can check what was on
# screen between two of its own looks (a stage may run for well under a second).
RECORDER_JS = """
(() => {
  const rec = { stages: [], streams: [], runs: [], announced: [] };
  window.__e2e = rec;
  const last = new Map();
  const note = (list, key, value, extra) => {
    if (last.get(key) === value) return;
    last.set(key, value);
    list.push({ ...extra, value, t: performance.now() });
  };
  const scan = () => {
    const said = document.querySelector('[data-testid="announcer"]')?.textContent;
    if (said) note(rec.announced, "announcer", said, {});
    for (const run of document.querySelectorAll('[data-testid="run"]')) {
      const runId = run.dataset.runId;
      note(rec.runs, `run:${runId}`, run.dataset.status, { run: runId });
      for (const st of run.querySelectorAll('[data-testid="stage"]')) {
        const key = `stage:${runId}:${st.dataset.stage}`;
        note(rec.stages, key, st.dataset.status, { run: runId, stage: st.dataset.stage });
      }
      const stream = run.querySelector('[data-testid="stream"]');
      // The markdown source the live view renders (it shows HTML, not the raw text).
      const text = stream && !stream.hidden
        ? stream.querySelector('[data-testid="stream-text"]').source || "" : "";
      if (text) {
        const key = `stream:${runId}:${stream.dataset.stage}`;
        note(rec.streams, key, text, { run: runId, stage: stream.dataset.stage });
      }
    }
  };
  new MutationObserver(scan).observe(document, {
    subtree: true, childList: true, attributes: true, characterData: true,
  });
})();
"""


@dataclass
class Recording:
    """What the recorder saw in one page load."""

    stages: list[dict[str, Any]]
    streams: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    announced: list[dict[str, Any]]

    @classmethod
    def of(cls, page: Page) -> Recording:
        """Read the page's recording (since its last load)."""
        rec = page.evaluate("() => window.__e2e")
        return cls(rec["stages"], rec["streams"], rec["runs"], rec["announced"])

    def announcements(self) -> list[str]:
        """What the screen-reader region said, in order."""
        return [e["value"] for e in self.announced]

    def stage_statuses(self, run_id: str, stage: str) -> list[str]:
        """The statuses a stage showed, in order (consecutive repeats collapsed)."""
        return [e["value"] for e in self.stages if e["run"] == run_id and e["stage"] == stage]

    def stream_texts(self, run_id: str, stage: str) -> list[str]:
        """Each distinct streaming text shown for a stage, in order."""
        return [e["value"] for e in self.streams if e["run"] == run_id and e["stage"] == stage]

    def run_statuses(self, run_id: str) -> list[str]:
        """The statuses the run card showed, in order."""
        return [e["value"] for e in self.runs if e["run"] == run_id]
