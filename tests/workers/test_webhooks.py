"""Webhooks end to end: a real run on the demo model, a real worker delivering to a real
local receiver that checks the signature; retries, final answers, presence."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from arq import Retry
from redis.exceptions import RedisError

from server import keys
from server.config import Settings
from server.store.models import Webhook, WebhookDelivery
from tests.support.api import User, make_user
from tests.workers.conftest import start_run, wait_run
from tests.workers.webhook_support import Receiver, doc_verify, start_receiver
from workers.context import DEPS, WorkerDeps
from workers.inprocess import InProcessWorker
from workers.jobs import deliver_webhook
from workers.webhooks import WebhookSender

Client = TestClient[Any, web.Application]
verify = doc_verify()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver on a free local port."""
    receiver, server = await start_receiver()
    yield receiver
    await server.close()


@pytest.fixture
def run_settings(run_settings: Settings) -> Settings:
    """Retries without long waits (a backoff of milliseconds); ``stack`` runs with these."""
    return run_settings.replace(
        webhook_backoff_base_s=0.01, webhook_backoff_max_s=0.02, webhook_timeout_s=5.0,
        webhook_max_attempts=4,
    )  # fmt: skip


async def set_webhook(client: Client, user: User, url: str) -> str:
    """Set the user's webhook; return the generated secret."""
    resp = await client.put("/api/v1/webhook", json={"url": url}, headers=user.auth)
    assert resp.status == 200, await resp.text()
    secret: str = (await resp.json())["secret"]
    return secret


async def deliveries(client: Client, user: User) -> list[dict[str, Any]]:
    """The user's delivery log, newest first."""
    resp = await client.get("/api/v1/webhook/deliveries", headers=user.auth)
    assert resp.status == 200
    items: list[dict[str, Any]] = (await resp.json())["items"]
    return items


async def finished_delivery(client: Client, user: User, within_s: float = 20.0) -> dict[str, Any]:
    """Wait until the user's newest delivery is no longer pending; return it."""
    async with asyncio.timeout(within_s):
        while True:
            items = await deliveries(client, user)
            if items and items[0]["status"] != "pending":
                return items[0]
            await asyncio.sleep(0.02)


async def test_a_completed_run_is_posted_signed(stack: Client, receiver: Receiver) -> None:
    user = await make_user(stack)
    secret = await set_webhook(stack, user, receiver.url)
    started = await start_run(stack, user)
    run_id = started["run"]["run_id"]
    await wait_run(stack, user.auth, run_id)
    [got] = await receiver.wait_for(1)
    assert verify(secret, got.headers["X-Chorus-Signature"], got.body)
    assert not verify("whsec_another-secret-entirely", got.headers["X-Chorus-Signature"], got.body)
    assert not verify(secret, got.headers["X-Chorus-Signature"], got.body + b" ")
    body = json.loads(got.body)
    assert got.headers["X-Chorus-Event"] == body["event"] == "run.completed"
    assert got.headers["X-Chorus-Delivery"] == body["id"]
    assert body["data"]["run_id"] == run_id
    assert body["data"]["session_id"] == started["run"]["session_id"]
    assert body["data"]["status"] == "completed"
    delivery = await finished_delivery(stack, user)
    assert delivery["delivery_id"] == body["id"]
    assert delivery["body"] == got.body.decode()
    assert (delivery["status"], delivery["attempts"], delivery["status_code"]) == (
        "delivered", 1, 200,
    )  # fmt: skip
    assert [a["status_code"] for a in delivery["attempt_log"]] == [200]


async def test_a_failed_run_is_posted(stack: Client, receiver: Receiver) -> None:
    user = await make_user(stack)
    await set_webhook(stack, user, receiver.url)
    started = await start_run(stack, user, "[[fail:401]] please")
    run = await wait_run(stack, user.auth, started["run"]["run_id"])
    assert run["status"] == "failed"
    [got] = await receiver.wait_for(1)
    body = json.loads(got.body)
    assert body["event"] == "run.failed"
    assert body["data"]["error"] == run["error"]


async def test_5xx_is_retried_under_one_delivery_id(stack: Client, receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    user = await make_user(stack)
    secret = await set_webhook(stack, user, receiver.url)
    started = await start_run(stack, user)
    await wait_run(stack, user.auth, started["run"]["run_id"])
    got = await receiver.wait_for(3)
    delivery = await finished_delivery(stack, user)
    assert [r.status for r in got] == [500, 503, 200]
    assert {r.headers["X-Chorus-Delivery"] for r in got} == {delivery["delivery_id"]}
    assert {r.body for r in got} == {got[0].body}  # the same body, signed anew each time
    assert all(verify(secret, r.headers["X-Chorus-Signature"], r.body) for r in got)
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 3
    log = [(a["attempt"], a["status_code"], a["error"]) for a in delivery["attempt_log"]]
    assert log == [(1, 500, "HTTP 500"), (2, 503, "HTTP 503"), (3, 200, None)]


async def test_a_4xx_is_final(stack: Client, receiver: Receiver) -> None:
    receiver.statuses = [410, 200]
    user = await make_user(stack)
    await set_webhook(stack, user, receiver.url)
    resp = await stack.post("/api/v1/webhook/test", headers=user.auth)
    assert resp.status == 202
    queued = (await resp.json())["delivery"]
    assert (queued["event"], queued["status"], queued["attempts"]) == ("webhook.test", "pending", 0)
    delivery = await finished_delivery(stack, user)
    assert delivery["delivery_id"] == queued["delivery_id"]
    assert (delivery["status"], delivery["attempts"], delivery["status_code"]) == (
        "failed", 1, 410,
    )  # fmt: skip
    assert len(receiver.requests) == 1


async def test_retries_stop_at_max_attempts(stack: Client, receiver: Receiver) -> None:
    receiver.statuses = [500] * 10
    user = await make_user(stack)
    await set_webhook(stack, user, receiver.url)
    await stack.post("/api/v1/webhook/test", headers=user.auth)
    delivery = await finished_delivery(stack, user)
    assert (delivery["status"], delivery["attempts"]) == ("failed", 4)  # webhook_max_attempts
    assert [a["status_code"] for a in delivery["attempt_log"]] == [500] * 4
    assert len(receiver.requests) == 4


async def test_a_connection_error_is_retried(stack: Client, receiver: Receiver) -> None:
    user = await make_user(stack)
    # Nothing listens on the receiver's port once it is closed: connection refused.
    closed, server = await start_receiver()
    await server.close()
    await set_webhook(stack, user, closed.url)
    await stack.post("/api/v1/webhook/test", headers=user.auth)
    delivery = await finished_delivery(stack, user)
    assert (delivery["status"], delivery["attempts"], delivery["status_code"]) == (
        "failed",
        4,
        None,
    )
    assert all("Connect" in (a["error"] or "") for a in delivery["attempt_log"])


async def _frame(ws: Any, kind: str, key: str, value: object) -> dict[str, Any]:
    """Read frames until one of type ``kind`` whose ``key`` is ``value``; return it."""
    async with asyncio.timeout(20):
        while True:
            frame: dict[str, Any] = await ws.receive_json()
            if frame.get("type") == kind and frame.get(key) == value:
                return frame


async def test_no_webhook_while_a_socket_watches(stack: Client, receiver: Receiver) -> None:
    user = await make_user(stack)
    await set_webhook(stack, user, receiver.url)
    resp = await stack.post("/api/v1/sessions", json={}, headers=user.auth)
    sid = (await resp.json())["session_id"]
    ws = await stack.ws_connect("/api/v1/ws", headers=user.auth)
    assert (await ws.receive_json())["type"] == "ready"
    await ws.send_json({"id": 1, "type": "subscribe", "session_id": sid})
    assert (await ws.receive_json())["type"] == "result"
    await ws.send_json({"id": 2, "type": "send", "session_id": sid, "content": "hi"})
    # run.completed is published after the run's ending hook decided on the webhook.
    await _frame(ws, "event", "name", "run.completed")
    assert await deliveries(stack, user) == []
    await ws.send_json({"id": 3, "type": "unsubscribe", "session_id": sid})
    assert (await _frame(ws, "result", "id", 3))["data"] == {}
    # Answered: the socket no longer counts as watching. The next run notifies.
    resp = await stack.post(
        f"/api/v1/sessions/{sid}/messages", json={"content": "again"}, headers=user.auth
    )
    run_id = (await resp.json())["run"]["run_id"]
    await wait_run(stack, user.auth, run_id)
    [got] = await receiver.wait_for(1)
    assert json.loads(got.body)["data"]["run_id"] == run_id
    assert len(await deliveries(stack, user)) == 1
    await ws.close()


async def test_an_sse_stream_counts_as_watching(stack: Client, receiver: Receiver) -> None:
    user = await make_user(stack)
    await set_webhook(stack, user, receiver.url)
    resp = await stack.post("/api/v1/sessions", json={}, headers=user.auth)
    sid = (await resp.json())["session_id"]
    stream = await stack.get(f"/api/v1/sessions/{sid}/events", headers=user.auth)
    assert (await stream.content.readuntil(b"\n\n")).startswith(b"retry:")
    resp = await stack.post(
        f"/api/v1/sessions/{sid}/messages", json={"content": "hi"}, headers=user.auth
    )
    run_id = (await resp.json())["run"]["run_id"]
    async with asyncio.timeout(20):
        while b'"name":"run.completed"' not in await stream.content.readuntil(b"\n\n"):
            pass
    assert await deliveries(stack, user) == []
    stream.close()
    assert (await wait_run(stack, user.auth, run_id))["status"] == "completed"


async def test_awaiting_approval_notifies(stack: Client, receiver: Receiver) -> None:
    """The hook the approval branch calls when a run starts waiting (called directly here)."""
    user = await make_user(stack)
    await set_webhook(stack, user, receiver.url)
    started = await start_run(stack, user)
    await wait_run(stack, user.auth, started["run"]["run_id"])
    await receiver.wait_for(1)  # run.completed
    run = await stack.app[keys.STORE].get_run(started["run"]["run_id"])
    assert run is not None
    await stack.app[keys.RUN_SERVICE]._after_pause(run)
    got = (await receiver.wait_for(2))[1]
    body = json.loads(got.body)
    assert got.headers["X-Chorus-Event"] == body["event"] == "run.awaiting_approval"
    assert body["data"]["run_id"] == run.run_id


async def test_a_queued_delivery_waits_for_a_worker(
    app: Client, run_settings: Settings, receiver: Receiver
) -> None:
    """The delivery is a job in Redis: scheduled while no worker runs (as across a restart),
    it is made by the worker that starts later."""
    user = await make_user(app)
    await set_webhook(app, user, receiver.url)
    resp = await app.post("/api/v1/webhook/test", headers=user.auth)
    assert resp.status == 202
    assert (await deliveries(app, user))[0]["status"] == "pending"
    async with InProcessWorker(run_settings, app.app[keys.PIPELINES]):
        delivery = await finished_delivery(app, user)
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 1)
    assert len(receiver.requests) == 1


async def _one_attempt(app: Client, settings: Settings, url: str) -> WebhookDelivery:
    """Make one attempt of a fresh delivery to ``url`` with these settings; return it after."""
    store = app.app[keys.STORE]
    await store.put_webhook(Webhook(user_id="ann", url=url, secret="s" * 20))
    delivery = WebhookDelivery(user_id="ann", event="webhook.test", body="{}")
    await store.insert_webhook_delivery(delivery)
    sender = WebhookSender(store, settings)
    try:
        await sender.attempt(delivery.delivery_id)
    finally:
        await sender.close()
    after = await store.get_webhook_delivery(delivery.delivery_id)
    assert after is not None
    return after


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
async def test_private_addresses_can_be_refused(
    app: Client, run_settings: Settings, receiver: Receiver, host: str
) -> None:
    strict = run_settings.replace(webhook_allow_private=False)
    url = receiver.url.replace("127.0.0.1", host)
    delivery = await _one_attempt(app, strict, url)
    assert (delivery.status, delivery.attempts, delivery.status_code) == ("failed", 1, None)
    assert delivery.error is not None and "public address" in delivery.error
    assert receiver.requests == []
    allowed = await _one_attempt(app, run_settings, receiver.url)  # the development default
    assert allowed.status == "delivered"


async def test_a_timeout_is_retried(app: Client, run_settings: Settings) -> None:
    never = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await never.wait()
        return web.Response()

    slow = web.Application()
    slow.router.add_post("/hook", hang)
    server = TestServer(slow, host="127.0.0.1")
    await server.start_server()
    try:
        quick = run_settings.replace(webhook_timeout_s=0.2)
        delivery = await _one_attempt(app, quick, str(server.make_url("/hook")))
    finally:
        never.set()
        await server.close()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.error == "timed out after 0.2 s"
    assert delivery.next_attempt_at is not None


async def test_a_store_or_redis_error_retries_the_job(
    worker: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not the receiver's failure: no attempt is counted, the job itself is retried."""
    assert worker.webhooks is not None

    async def broken(delivery_id: str) -> float | None:
        raise RedisError("connection lost")

    monkeypatch.setattr(worker.webhooks, "attempt", broken)
    with pytest.raises(Retry) as retried:
        await deliver_webhook({DEPS: worker, "job_try": 2}, "some-delivery")
    assert retried.value.defer_score is not None
