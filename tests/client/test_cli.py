"""The ``chorus`` CLI as a user runs it: a real process against a real server."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from io import StringIO
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from chorus_client.models import Event
from chorus_client.stepper import Stepper

from server.app import create_app
from server.config import Settings
from tests.conftest import ClientFactory
from tests.support.api import make_user

Client = TestClient[Any, web.Application]
CLIENT_DIR = Path(__file__).resolve().parents[2] / "client"


async def chorus(*args: str, env: dict[str, str], stdin: bytes = b"") -> tuple[int, str, str]:
    """Run ``python -m chorus_client.cli ARGS``; return (exit status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chorus_client.cli", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(CLIENT_DIR), **env},
    )  # fmt: skip
    out, err = await proc.communicate(stdin)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _env(stack: Client, tmp_path: Path) -> dict[str, str]:
    user = await make_user(stack)
    resp = await stack.post("/api/v1/api-keys", json={"name": "cli"}, headers=user.auth)
    key = (await resp.json())["key"]
    return {"CHORUS_URL": str(stack.make_url("")), "CHORUS_API_KEY": key,
            "CHORUS_CONFIG": str(tmp_path / "config.json")}  # fmt: skip


async def test_chat_streams_the_answer_with_a_stage_stepper(stack: Client, tmp_path: Path) -> None:
    env = await _env(stack, tmp_path)
    status, out, err = await chorus("chat", "How", "do", "I", "brew", "tea?", env=env)
    assert status == 0, err
    lines = err.splitlines()
    assert lines[0].startswith("session ") and "pipeline default" in lines[0]
    started = [line for line in lines if line.endswith(" …")]
    assert started == ["[1/3] plan …", "[2/3] draft …", "[3/3] review …"]
    done = [line.split(" ✓")[0] for line in lines if " ✓ " in line and line.startswith("[")]
    assert done == ["[1/3] plan", "[2/3] draft", "[3/3] review"]
    assert lines[-1].startswith("✓ done · ")
    session_id = lines[0].split()[1]
    headers = {"Authorization": f"Bearer {env['CHORUS_API_KEY']}"}
    body = await (await stack.get(f"/api/v1/sessions/{session_id}", headers=headers)).json()
    assert body["title"] == "How do I brew tea?"
    assert out == body["messages"][-1]["content"] + "\n"


def test_the_stepper_tells_of_an_approval_gate() -> None:
    out, err = StringIO(), StringIO()
    stepper = Stepper(["plan", "draft"], out, err, all_stages=False)
    data = {"stage": "plan", "index": 0, "output": "1. tea"}
    for name, payload in (("run.awaiting_approval", data), ("run.approved", data),
                          ("run.cancelled", {"error": "rejected: no"})):  # fmt: skip
        stepper.show(Event("s", "e", 1, name, "r1", payload, "2026-01-01T00:00:00.000Z"))
    lines = err.getvalue().splitlines()
    assert lines[0].startswith("⏸ plan awaits your approval") and "/runs/r1/approve" in lines[0]
    assert lines[1:] == ["▶ plan approved", "✗ run cancelled: rejected: no"]
    assert stepper.status == "cancelled"


async def test_interactive_chat_continues_one_session(stack: Client, tmp_path: Path) -> None:
    env = await _env(stack, tmp_path)
    status, out, err = await chorus(
        "chat", "--pipeline", "chat", env=env, stdin=b"hello\n\nand again\n"
    )
    assert status == 0, err
    session_id = err.splitlines()[0].split()[1]
    headers = {"Authorization": f"Bearer {env['CHORUS_API_KEY']}"}
    body = await (await stack.get(f"/api/v1/sessions/{session_id}", headers=headers)).json()
    answers = [m["content"] for m in body["messages"] if m["role"] == "assistant"]
    assert [m["content"] for m in body["messages"] if m["role"] == "user"] == ["hello", "and again"]
    assert out == "".join(a + "\n" for a in answers)


async def test_sessions_and_usage(stack: Client, tmp_path: Path) -> None:
    env = await _env(stack, tmp_path)
    await chorus("chat", "--pipeline", "chat", "first question", env=env)
    status, out, err = await chorus("sessions", env=env)
    assert status == 0, err
    assert "first question" in out and "completed" in out and "chat" in out
    assert err.strip() == "1 of 1 sessions"
    headers = {"Authorization": f"Bearer {env['CHORUS_API_KEY']}"}
    usage = await (await stack.get("/api/v1/usage", headers=headers)).json()
    status, out, _err = await chorus("usage", env=env)
    assert status == 0
    assert out.splitlines()[0].startswith(
        f"total  {usage['prompt_tokens']} prompt  {usage['completion_tokens']} completion  1 calls"
    )
    resets = usage["budget"]["resets_at"]
    assert out.splitlines()[-1] == f"budget  unlimited tokens  unlimited USD  resets {resets}"


async def test_login_saves_a_token_and_errors_are_clear(stack: Client, tmp_path: Path) -> None:
    user = await make_user(stack)
    env = {"CHORUS_URL": str(stack.make_url("")), "CHORUS_CONFIG": str(tmp_path / "c.json")}
    status, _out, err = await chorus("login", "--email", user.email, "--password", "nope", env=env)
    assert status == 2 and "401 invalid_credentials" in err
    status, _out, err = await chorus(
        "login", "--email", user.email, "--password", user.password, env=env
    )
    assert status == 0, err
    assert (tmp_path / "c.json").stat().st_mode & 0o777 == 0o600
    status, out, _err = await chorus("keys", "create", "laptop", env=env)
    assert status == 0 and out.startswith("chk_")
    status, out, _err = await chorus("keys", "list", env=env)
    assert "laptop" in out and "active" in out


async def test_ctrl_c_cancels_the_run(
    aiohttp_client: ClientFactory, run_settings: Settings, tmp_path: Path
) -> None:
    app_client = await aiohttp_client(create_app(run_settings))  # no worker: the run waits
    env = await _env(app_client, tmp_path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chorus_client.cli", "chat", "--pipeline", "chat", "hello",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(CLIENT_DIR), **env},
    )  # fmt: skip
    assert proc.stderr is not None
    assert (await proc.stderr.readline()).startswith(b"session ")
    queued = (await proc.stderr.readline()).decode().split()  # the message is sent
    assert queued[0] == "run" and queued[2] == "queued"
    proc.send_signal(signal.SIGINT)
    _out, err = await proc.communicate()
    assert proc.returncode == 130, err
    headers = {"Authorization": f"Bearer {env['CHORUS_API_KEY']}"}
    run = await (await app_client.get(f"/api/v1/runs/{queued[1]}", headers=headers)).json()
    assert run["status"] == "cancelled"
