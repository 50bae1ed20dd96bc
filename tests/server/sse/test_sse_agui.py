"""?format=ag-ui: a real run's events as AG-UI events, under the same resumable ids."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from server.sse.agui import to_ag_ui
from tests.server.sse.conftest import open_stream
from tests.support.api import make_user
from tests.workers.conftest import demo, run_settings, stack, wait_run

Client = TestClient[Any, web.Application]
__all__ = ["demo", "run_settings", "stack"]


async def test_a_run_streams_as_ag_ui_events(stack: Client) -> None:
    user = await make_user(stack)
    created = await stack.post("/api/v1/sessions", json={}, headers=user.auth)
    sid = (await created.json())["session_id"]
    stream = await open_stream(stack, sid, user.auth, format="ag-ui")
    await stream.subscribed()
    sent = await stack.post(
        f"/api/v1/sessions/{sid}/messages", json={"content": "Why is the sky blue?"},
        headers=user.auth,
    )  # fmt: skip
    run_id = (await sent.json())["run"]["run_id"]
    events, ids = [], []
    while not events or events[-1]["type"] not in ("RUN_FINISHED", "RUN_ERROR"):
        sse = await stream.next()
        events.append(json.loads(sse.data))
        ids.append(sse.id)
    stream.drop()
    run = await wait_run(stack, user.auth, run_id)
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["CUSTOM", "CUSTOM"]  # message.created, run.queued
    assert [e["name"] for e in events[:2]] == ["chorus.message.created", "chorus.run.queued"]
    assert kinds[2] == "RUN_STARTED"
    assert events[2] == {"type": "RUN_STARTED", "threadId": sid, "runId": run_id}
    steps = [e["stepName"] for e in events if e["type"] == "STEP_STARTED"]
    assert steps == ["plan", "draft", "review"]
    assert [e["stepName"] for e in events if e["type"] == "STEP_FINISHED"] == steps
    for stage in run["stages"]:
        message_id = f"{run_id}:{stage['name']}"
        text = "".join(e["delta"] for e in events if e.get("messageId") == message_id
                       and e["type"] == "TEXT_MESSAGE_CONTENT")  # fmt: skip
        assert text == stage["output"]
        mine = [e["type"] for e in events if e.get("messageId") == message_id]
        assert mine[0] == "TEXT_MESSAGE_START" and mine[-1] == "TEXT_MESSAGE_END"
    finished = events[-1]
    assert finished["type"] == "RUN_FINISHED" and finished["outcome"] == "success"
    assert finished["result"]["message"]["content"] == run["stages"][-1]["output"]
    seqs = [int(i.rsplit(":", 1)[1]) for i in ids]
    assert seqs == sorted(seqs) and seqs[0] == 1  # resumable ids, in order


def _event(name: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"session_id": "s", "run_id": "r", "epoch": "e", "seq": 1, "name": name, "data": data}


def test_failures_and_cancels_are_run_errors() -> None:
    assert to_ag_ui(_event("run.failed", {"error": "all providers down"})) == [
        {"type": "RUN_ERROR", "message": "all providers down", "code": "run_failed"}
    ]
    assert to_ag_ui(_event("run.cancelled", {}))[0]["code"] == "run_cancelled"
    assert to_ag_ui(_event("stage.delta", {"stage": "plan", "text": ""})) == []
    retry = to_ag_ui(_event("stage.retrying", {"stage": "plan", "attempt": 2}))
    assert retry == [{"type": "CUSTOM", "name": "chorus.stage.retrying",
                      "value": {"stage": "plan", "attempt": 2}}]  # fmt: skip


def test_a_pause_for_approval_is_an_interrupt() -> None:
    data = {"stage": "plan", "index": 0, "output": "1. tea", "since": "2026-01-01T00:00:00.000Z"}
    assert to_ag_ui(_event("run.awaiting_approval", data)) == [
        {"type": "RUN_FINISHED", "threadId": "s", "runId": "r", "outcome": "interrupt",
         "interrupt": {"id": "r:plan", "reason": "human_approval", "payload": data}}
    ]  # fmt: skip
    approved = to_ag_ui(_event("run.approved", {"stage": "plan", "index": 0}))
    assert approved[0]["name"] == "chorus.run.approved"
    rejected = to_ag_ui(_event("run.cancelled", {"error": "rejected: no"}))
    assert rejected == [{"type": "RUN_ERROR", "message": "rejected: no", "code": "run_cancelled"}]
