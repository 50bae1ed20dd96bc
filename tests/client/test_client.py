"""chorus_client against a real server: REST calls, runs streamed over SSE, resume."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from chorus_client import ChorusClient, ChorusError, Event, HistoryLost, Subscribed

from server import keys
from server.app import create_app
from server.config import Settings
from server.sse.feed import SessionFeed
from tests.conftest import ClientFactory
from tests.support.api import User, make_user
from workers.inprocess import InProcessWorker

Client = TestClient[Any, web.Application]
Pair = tuple[ChorusClient, User]


async def test_login_errors_are_chorus_errors(stack: Client) -> None:
    user = await make_user(stack)
    async with ChorusClient(str(stack.make_url(""))) as client:
        with pytest.raises(ChorusError) as denied:
            await client.login(user.email, "wrong password")
    assert (denied.value.status, denied.value.code) == (401, "invalid_credentials")


async def test_run_streams_every_event_of_the_run(logged_in: Pair) -> None:
    client, _user = logged_in
    session = await client.create_session(title="tea")
    events = [e async for e in client.run(session["session_id"], "How do I brew tea?")]
    assert events[-1].name == "run.completed"
    seqs = [e.seq for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # contiguous
    run = await client.get_run(events[-1].run_id or "")
    answer = "".join(e.data["text"] for e in events
                     if e.name == "stage.delta" and e.data["stage"] == "review")  # fmt: skip
    assert answer == run["stages"][-1]["output"] == events[-1].data["message"]["content"]
    listed = await client.list_sessions()
    assert [s["session_id"] for s in listed["items"]] == [session["session_id"]]
    assert (await client.usage())["calls"] == 3


async def test_a_stream_ended_by_the_server_resumes_with_nothing_lost(
    logged_in: Pair, stack: Client
) -> None:
    client, _user = logged_in
    sid = (await client.create_session())["session_id"]
    events: list[Event] = []
    subscribed: list[Subscribed] = []
    stream = client.events(sid)
    subscribed.append(await anext(stream))  # type: ignore[arg-type]
    run_id = (await client.send(sid, "Tell me about rivers"))["run"]["run_id"]
    async with asyncio.timeout(30):
        async for item in stream:
            if isinstance(item, Subscribed):
                subscribed.append(item)
                continue
            events.append(item)
            if item.name == "stage.delta" and len(subscribed) == 1:
                # End every event stream server-side (as a restart would) mid-run.
                for sink in stack.app[keys.EVENT_HUB].sinks:
                    if isinstance(sink, SessionFeed):
                        sink.close_with("test")
            if item.name == "run.completed":
                break
    await stream.aclose()
    assert len(subscribed) == 2 and subscribed[1].recovered is True
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    run = await client.get_run(run_id)
    for stage in run["stages"]:
        text = "".join(e.data["text"] for e in events
                       if e.name == "stage.delta" and e.data["stage"] == stage["name"])  # fmt: skip
        assert text == stage["output"]


async def test_follow_run_raises_when_history_is_lost(logged_in: Pair) -> None:
    client, _user = logged_in
    session = await client.create_session()
    [e async for e in client.run(session["session_id"], "hi")]
    with pytest.raises(HistoryLost):
        async for _ in client.follow_run(session["session_id"], "r", last_event_id="old:1"):
            pass


async def test_cancel_then_retry(aiohttp_client: ClientFactory, run_settings: Settings) -> None:
    app_client = await aiohttp_client(create_app(run_settings))  # no worker yet
    user = await make_user(app_client)
    async with ChorusClient(str(app_client.make_url("")), token=user.token) as client:
        sid = (await client.create_session(pipeline="chat"))["session_id"]
        run_id = (await client.send(sid, "hello"))["run"]["run_id"]
        assert (await client.cancel(run_id))["status"] == "cancelled"
        assert (await client.retry(run_id))["status"] == "queued"
        async with InProcessWorker(run_settings, app_client.app[keys.PIPELINES]):
            followed = [e async for e in client.follow_run(sid, run_id)]
    assert followed[-1].name == "run.completed"


async def test_api_keys_through_the_client(logged_in: Pair, stack: Client) -> None:
    client, _user = logged_in
    created = await client.create_api_key("ci")
    async with ChorusClient(client.base_url, token=created["key"]) as keyed:
        assert (await keyed.me())["email"] == (await client.me())["email"]
        with pytest.raises(ChorusError) as refused:
            await keyed.list_api_keys()
        assert refused.value.status == 403
    await client.revoke_api_key(created["key_id"])
    assert (await client.list_api_keys())[0]["revoked_at"] is not None


async def test_events_of_a_session_not_ours_is_a_chorus_error(logged_in: Pair) -> None:
    client, _user = logged_in
    with pytest.raises(ChorusError) as missing:
        await anext(client.events("no-such-session"))
    assert (missing.value.status, missing.value.code) == (404, "not_found")


async def test_a_run_paused_at_a_gate_is_approved_or_rejected_through_the_client(
    logged_in: Pair,
) -> None:
    client, _user = logged_in
    sid = (await client.create_session(pipeline="reviewed"))["session_id"]
    stream = client.run(sid, "Plan a garden")
    names: list[str] = []
    async with asyncio.timeout(30):
        async for event in stream:
            names.append(event.name)
            if event.name == "run.awaiting_approval":
                approved = await client.approve(event.run_id or "", "1. Dig\n2. Plant")
                assert approved["stages"][0]["output"] == "1. Dig\n2. Plant"
    assert names[-1] == "run.completed"
    assert names.index("run.awaiting_approval") < names.index("run.approved")
    stream = client.run(sid, "And a pond?")
    async with asyncio.timeout(30):
        async for event in stream:
            if event.name == "run.awaiting_approval":
                rejected = await client.reject(event.run_id or "", "no pond")
                assert (rejected["status"], rejected["error"]) == ("cancelled", "rejected: no pond")
            last = event
    assert last.name == "run.cancelled" and last.data == {"error": "rejected: no pond"}
    with pytest.raises(ChorusError) as refused:
        await client.approve(last.run_id or "")
    assert (refused.value.status, refused.value.code) == (409, "not_awaiting_approval")


async def test_send_while_busy_queues_and_run_refuses(
    aiohttp_client: ClientFactory, run_settings: Settings
) -> None:
    """No worker: the first run stays queued, so the session stays busy."""
    app = await aiohttp_client(create_app(run_settings))
    user = await make_user(app)
    async with ChorusClient(str(app.make_url(""))) as client:
        await client.login(user.email, user.password)
        sid = (await client.create_session())["session_id"]
        assert (await client.send(sid, "first"))["outcome"] == "started"
        queued = await client.send(sid, "second")
        assert queued["outcome"] == "queued" and queued["run"] is None
        cancelled = await client.cancel_queued(sid, queued["message"]["message_id"])
        assert cancelled["status"] == "cancelled"
        with pytest.raises(ChorusError) as busy:
            await anext(client.run(sid, "third"))
        assert (busy.value.status, busy.value.code) == (409, "session_busy")
