"""send / cancel: the RunService's results and its exceptions mapped to error codes.

Most tests install a fake RunService to check the mapping alone;
``test_real_manager_send_and_cancel`` runs against the real one.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, web

from server import keys
from server.app import create_app
from server.config import Settings
from server.errors import InvalidRequest, NotFound, RateLimited, SessionBusy
from server.runs.service import Posted
from server.store.models import Message, Run, User
from tests.conftest import ClientFactory

from .conftest import Ws, recv


class FakeRunService:
    """Records calls; answers with fresh documents or raises ``error``."""

    def __init__(self) -> None:
        self.error: Exception | None = None
        self.calls: list[tuple[str, ...]] = []
        self.runs: dict[str, Run] = {}
        self.policies: list[str | None] = []

    async def post_message(
        self,
        user: User,
        session_id: str,
        content: str,
        double_texting: str | None = None,
        *,
        edit_of: str | None = None,
    ) -> Posted:
        self.calls.append(
            ("send", user.user_id, session_id, content, *([edit_of] if edit_of else []))
        )
        self.policies.append(double_texting)
        if self.error is not None:
            raise self.error
        message = Message(session_id=session_id, user_id=user.user_id, role="user", content=content)
        run = Run(
            session_id=session_id, user_id=user.user_id, pipeline="chat",
            input_message_id=message.message_id, stages=[],
        )  # fmt: skip
        self.runs[run.run_id] = run
        return Posted(message, run, "started")

    async def cancel_run(self, user: User, run_id: str) -> Run:
        self.calls.append(("cancel", user.user_id, run_id))
        if self.error is not None:
            raise self.error
        run = self.runs.get(run_id)
        if run is None or run.user_id != user.user_id:
            raise NotFound("run not found")
        return run.model_copy(update={"status": "cancelled"})


@pytest.fixture
async def faked(aiohttp_client: ClientFactory, settings: Settings) -> tuple[Ws, FakeRunService]:
    """A test client whose app uses a FakeRunService."""
    app = create_app(settings)
    manager = FakeRunService()

    async def install(app: web.Application) -> None:
        # on_startup runs after the cleanup contexts: this replaces any real manager.
        app[keys.RUN_SERVICE] = manager

    app.on_startup.append(install)
    return Ws(await aiohttp_client(app)), manager


async def test_send_returns_message_and_run(faked: tuple[Ws, FakeRunService]) -> None:
    tools, manager = faked
    user = await tools.user()
    ws = await tools.connect(user)
    reply = await tools.call(ws, {"id": 1, "type": "send", "session_id": "s1", "content": "hi"})
    assert reply["id"] == 1 and reply["type"] == "result" and reply["ok"] is True
    message, run = reply["data"]["message"], reply["data"]["run"]
    assert message["content"] == "hi" and message["role"] == "user"
    assert run["status"] == "queued" and run["input_message_id"] == message["message_id"]
    assert manager.calls == [("send", user.user["user_id"], "s1", "hi")]
    await ws.close()


async def test_cancel_returns_run(faked: tuple[Ws, FakeRunService]) -> None:
    tools, _manager = faked
    ws = await tools.connect(await tools.user())
    sent = await tools.call(ws, {"id": 1, "type": "send", "session_id": "s1", "content": "hi"})
    run_id = sent["data"]["run"]["run_id"]
    reply = await tools.call(ws, {"id": 2, "type": "cancel", "run_id": run_id})
    assert reply["id"] == 2 and reply["ok"] is True
    assert reply["data"]["run"]["run_id"] == run_id
    assert reply["data"]["run"]["status"] == "cancelled"
    await ws.close()


async def test_cancel_unknown_run_is_not_found(faked: tuple[Ws, FakeRunService]) -> None:
    tools, _manager = faked
    ws = await tools.connect(await tools.user())
    reply = await tools.call(ws, {"id": 1, "type": "cancel", "run_id": "nope"})
    assert reply == {
        "id": 1, "type": "error", "error": {"code": "not_found", "message": "Run not found"}
    }  # fmt: skip
    await ws.close()


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (SessionBusy("this session already has an active run"), "session_busy"),
        (RateLimited("too many requests"), "rate_limited"),
        (NotFound("session not found"), "not_found"),
        (InvalidRequest("content: must not be blank"), "invalid_message"),
    ],
)
async def test_manager_errors_become_codes(
    faked: tuple[Ws, FakeRunService], error: Exception, code: str
) -> None:
    tools, manager = faked
    manager.error = error
    ws = await tools.connect(await tools.user())
    reply = await tools.call(ws, {"id": 1, "type": "send", "session_id": "s1", "content": "hi"})
    assert reply == {"id": 1, "type": "error", "error": {"code": code, "message": str(error)}}
    await ws.close()


async def test_unexpected_error_is_internal_error_and_logged(
    faked: tuple[Ws, FakeRunService], caplog: pytest.LogCaptureFixture
) -> None:
    tools, manager = faked
    manager.error = RuntimeError("secret detail")
    ws = await tools.connect(await tools.user())
    with caplog.at_level(logging.ERROR, logger="chorus.ws"):
        reply = await tools.call(ws, {"id": 1, "type": "send", "session_id": "s", "content": "x"})
    assert reply == {
        "id": 1, "type": "error",
        "error": {"code": "internal_error", "message": "internal server error"},
    }  # fmt: skip
    logged = [r for r in caplog.records if r.name == "chorus.ws"]
    assert logged and logged[0].exc_info is not None
    assert "secret detail" in str(logged[0].exc_info[1])
    assert (await tools.call(ws, {"id": 2, "type": "ping"}))["type"] == "result"
    await ws.close()


async def test_blank_content_is_refused_before_the_manager(
    faked: tuple[Ws, FakeRunService],
) -> None:
    tools, manager = faked
    ws = await tools.connect(await tools.user())
    reply = await tools.call(ws, {"id": 1, "type": "send", "session_id": "s1", "content": ""})
    assert reply["error"]["code"] == "invalid_message"
    assert reply["error"]["message"].startswith("content:")
    assert manager.calls == []
    await ws.close()


async def _until_result(ws: ClientWebSocketResponse, cmd_id: int) -> tuple[dict[str, Any], list]:
    events: list[dict[str, Any]] = []
    while True:
        frame = await recv(ws)
        if frame.get("id") == cmd_id:
            return frame, events
        events.append(frame)


async def test_real_manager_send_and_cancel(ws_tools: Ws) -> None:
    """The real RunService wired by create_app: send, busy, cancel over one socket."""
    user = await ws_tools.user()
    resp = await ws_tools.client.post("/api/v1/sessions", json={}, headers=user.auth)
    assert resp.status == 201, await resp.text()
    session_id = (await resp.json())["session_id"]
    ws = await ws_tools.connect(user)
    await ws_tools.call(ws, {"id": 1, "type": "subscribe", "session_id": session_id})
    await ws.send_json({"id": 2, "type": "send", "session_id": session_id, "content": "hello"})
    sent, events = await _until_result(ws, 2)
    assert sent["ok"] is True and sent["data"]["message"]["content"] == "hello"
    run_id = sent["data"]["run"]["run_id"]
    await ws.send_json(
        {"id": 3, "type": "send", "session_id": session_id, "content": "again",
         "double_texting": "reject"}
    )  # fmt: skip
    busy, more = await _until_result(ws, 3)
    assert busy["error"]["code"] == "session_busy"
    await ws.send_json({"id": 4, "type": "cancel", "run_id": run_id})
    cancelled, rest = await _until_result(ws, 4)
    assert cancelled["data"]["run"]["run_id"] == run_id
    names = [e["name"] for e in events + more + rest]
    assert names[:2] == ["message.created", "run.queued"]
    seqs = [e["seq"] for e in events + more + rest]
    assert seqs == list(range(1, len(seqs) + 1))
    await ws.close()


async def test_real_manager_queues_a_send_and_cancels_it(ws_tools: Ws) -> None:
    """Double texting over the socket: the same policies and answers as REST."""
    user = await ws_tools.user()
    resp = await ws_tools.client.post("/api/v1/sessions", json={}, headers=user.auth)
    session_id = (await resp.json())["session_id"]
    ws = await ws_tools.connect(user)
    await ws_tools.call(ws, {"id": 1, "type": "subscribe", "session_id": session_id})
    await ws.send_json({"id": 2, "type": "send", "session_id": session_id, "content": "one"})
    started, _ = await _until_result(ws, 2)
    assert started["data"]["outcome"] == "started"
    await ws.send_json({"id": 3, "type": "send", "session_id": session_id, "content": "two"})
    queued, events = await _until_result(ws, 3)
    assert queued["data"]["outcome"] == "queued" and queued["data"]["run"] is None
    message_id = queued["data"]["message"]["message_id"]
    cancel = {"type": "cancel_queued", "session_id": session_id, "message_id": message_id}
    await ws.send_json({"id": 4, **cancel})
    cancelled, later = await _until_result(ws, 4)
    assert cancelled["data"]["message"]["status"] == "cancelled"
    await ws.send_json({"id": 5, **cancel})
    again, more = await _until_result(ws, 5)
    assert again["error"]["code"] == "message_not_queued"
    bad = {"id": 6, "type": "send", "session_id": session_id, "content": "x",
           "double_texting": "later"}  # fmt: skip
    await ws.send_json(bad)
    refused, rest = await _until_result(ws, 6)
    assert refused["error"]["code"] == "invalid_message"
    assert refused["error"]["message"].startswith("double_texting:")
    names = [e["name"] for e in events + later + more + rest]
    assert names.count("message.queued") == 1 and names.count("message.cancelled") == 1
    await ws.send_json({"id": 7, "type": "cancel", "run_id": started["data"]["run"]["run_id"]})
    await _until_result(ws, 7)
    await ws.close()
