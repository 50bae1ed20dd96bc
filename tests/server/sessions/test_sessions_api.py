"""The sessions resource over HTTP: CRUD, pagination, isolation between users, bad input."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.store.models import Message, Run, StageState
from tests.support.api import User, error_of, make_user

Client = TestClient[Any, web.Application]
SESSIONS = "/api/v1/sessions"


async def _create(client: Client, user: User, **body: Any) -> dict[str, Any]:
    resp = await client.post(SESSIONS, json=body, headers=user.auth)
    assert resp.status == 201, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def test_create_and_get(client: Client) -> None:
    user = await make_user(client)
    created = await _create(client, user, title="First", pipeline="chat")
    assert created["title"] == "First"
    assert created["pipeline"] == "chat"
    assert created["status"] == "idle"
    resp = await client.get(f"{SESSIONS}/{created['session_id']}", headers=user.auth)
    assert resp.status == 200
    body = await resp.json()
    assert body["session_id"] == created["session_id"]
    assert body["messages"] == []
    assert body["active_run"] is None


async def test_create_defaults_to_default_pipeline(client: Client) -> None:
    user = await make_user(client)
    assert (await _create(client, user))["pipeline"] == "default"


async def test_get_shows_recent_messages_and_active_run(client: Client) -> None:
    user = await make_user(client)
    session = await _create(client, user)
    store = client.app[keys.STORE]
    uid, sid = user.user["user_id"], session["session_id"]
    msg = Message(session_id=sid, user_id=uid, role="user", content="hello")
    await store.insert_message(msg)
    run = Run(session_id=sid, user_id=uid, pipeline="chat", input_message_id=msg.message_id,
              stages=[StageState(name="chat", agent="chat")])  # fmt: skip
    await store.insert_run(run)
    await store.update_session(uid, sid, {"active_run_id": run.run_id, "status": "queued"})
    body = await (await client.get(f"{SESSIONS}/{sid}", headers=user.auth)).json()
    assert [m["content"] for m in body["messages"]] == ["hello"]
    assert body["active_run"]["run_id"] == run.run_id
    assert body["active_run"]["stages"][0]["status"] == "pending"


async def test_list_newest_first_with_exact_total(client: Client) -> None:
    user = await make_user(client)
    ids = []
    for i in range(5):
        ids.append((await _create(client, user, title=f"s{i}"))["session_id"])
        await asyncio.sleep(0.002)
    resp = await client.get(f"{SESSIONS}?limit=2&skip=1", headers=user.auth)
    body = await resp.json()
    assert body["total"] == 5
    assert body["limit"] == 2 and body["skip"] == 1
    assert [s["session_id"] for s in body["items"]] == [ids[3], ids[2]]


async def test_list_status_filter_paginates_the_filtered_result(client: Client) -> None:
    user = await make_user(client)
    store = client.app[keys.STORE]
    for i in range(6):
        s = await _create(client, user, title=f"s{i}")
        if i % 2:
            await store.update_session(user.user["user_id"], s["session_id"], {"status": "failed"})
    body = await (await client.get(f"{SESSIONS}?status=failed&limit=2", headers=user.auth)).json()
    assert body["total"] == 3
    assert len(body["items"]) == 2
    assert {s["status"] for s in body["items"]} == {"failed"}


async def test_rename(client: Client) -> None:
    user = await make_user(client)
    sid = (await _create(client, user, title="old"))["session_id"]
    resp = await client.patch(f"{SESSIONS}/{sid}", json={"title": "new"}, headers=user.auth)
    assert resp.status == 200
    assert (await resp.json())["title"] == "new"


async def test_delete_removes_messages_and_runs(client: Client) -> None:
    user = await make_user(client)
    sid = (await _create(client, user))["session_id"]
    store = client.app[keys.STORE]
    uid = user.user["user_id"]
    msg = Message(session_id=sid, user_id=uid, role="user", content="bye")
    await store.insert_message(msg)
    run = Run(session_id=sid, user_id=uid, pipeline="chat", input_message_id=msg.message_id,
              stages=[StageState(name="chat", agent="chat")])  # fmt: skip
    await store.insert_run(run)
    assert (await client.delete(f"{SESSIONS}/{sid}", headers=user.auth)).status == 204
    assert await error_of(await client.get(f"{SESSIONS}/{sid}", headers=user.auth)) == (
        404, "not_found",
    )  # fmt: skip
    assert await store.get_run(run.run_id) is None
    assert await store.list_messages(uid, sid, limit=10) == []


async def test_messages_paginated(client: Client) -> None:
    user = await make_user(client)
    sid = (await _create(client, user))["session_id"]
    store = client.app[keys.STORE]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(5):
        await store.insert_message(
            Message(session_id=sid, user_id=user.user["user_id"], role="user", content=f"m{i}",
                    created_at=start + timedelta(seconds=i))
        )  # fmt: skip
    first = await (await client.get(f"{SESSIONS}/{sid}/messages?limit=2", headers=user.auth)).json()
    assert [m["content"] for m in first["items"]] == ["m3", "m4"]
    before = first["next_before"]
    resp = await client.get(
        f"{SESSIONS}/{sid}/messages", params={"limit": "2", "before": before}, headers=user.auth
    )
    second = await resp.json()
    assert [m["content"] for m in second["items"]] == ["m1", "m2"]


async def test_pages_never_skip_messages_sharing_a_timestamp(client: Client) -> None:
    # Seven messages in one millisecond: a created_at cursor alone would lose some.
    user = await make_user(client)
    sid = (await _create(client, user))["session_id"]
    store = client.app[keys.STORE]
    when = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(7):
        await store.insert_message(
            Message(session_id=sid, user_id=user.user["user_id"], role="user", content=f"m{i}",
                    created_at=when)
        )  # fmt: skip
    seen: list[str] = []
    params = {"limit": "3"}
    while True:
        page = await (
            await client.get(f"{SESSIONS}/{sid}/messages", params=params, headers=user.auth)
        ).json()
        seen = [m["message_id"] for m in page["items"]] + seen
        if page["next_before"] is None:
            break
        params = {"limit": "3", "before": page["next_before"],
                  "before_id": page["next_before_id"]}  # fmt: skip
    assert len(seen) == len(set(seen)) == 7
    assert seen == sorted(seen)  # one order: (created_at, message_id)


async def test_users_cannot_see_each_other(client: Client) -> None:
    ann, bob = await make_user(client, "ann"), await make_user(client, "bob")
    sid = (await _create(client, ann, title="private"))["session_id"]
    listing = await (await client.get(SESSIONS, headers=bob.auth)).json()
    assert listing["total"] == 0 and listing["items"] == []
    attempts = [
        client.get(f"{SESSIONS}/{sid}", headers=bob.auth),
        client.patch(f"{SESSIONS}/{sid}", json={"title": "mine"}, headers=bob.auth),
        client.delete(f"{SESSIONS}/{sid}", headers=bob.auth),
        client.get(f"{SESSIONS}/{sid}/messages", headers=bob.auth),
    ]
    for attempt in attempts:
        assert await error_of(await attempt) == (404, "not_found")
    body = await (await client.get(f"{SESSIONS}/{sid}", headers=ann.auth)).json()
    assert body["title"] == "private"


async def test_unknown_session_is_404(client: Client) -> None:
    user = await make_user(client)
    resp = await client.get(f"{SESSIONS}/doesnotexist", headers=user.auth)
    assert await error_of(resp) == (404, "not_found")


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=101", "limit=abc", "skip=-1", "status=weird", "limit=1&bogus=2",
     "skip=1.5"],
)  # fmt: skip
async def test_bad_pagination_is_422(client: Client, query: str) -> None:
    user = await make_user(client)
    resp = await client.get(f"{SESSIONS}?{query}", headers=user.auth)
    assert await error_of(resp) == (422, "invalid_request")


@pytest.mark.parametrize(
    "body",
    [{"title": 5}, {"title": {"$ne": None}}, {"pipeline": "nope"}, {"title": "x" * 201},
     {"title": "ok", "owner": "someone"}, {"pipeline": {"$gt": ""}}],
    ids=["int-title", "operator-title", "unknown-pipeline", "long-title", "extra-field",
         "operator-pipeline"],
)  # fmt: skip
async def test_create_bad_input_is_422(client: Client, body: dict[str, Any]) -> None:
    user = await make_user(client)
    resp = await client.post(SESSIONS, json=body, headers=user.auth)
    assert await error_of(resp) == (422, "invalid_request")


async def test_rename_bad_input(client: Client) -> None:
    user = await make_user(client)
    sid = (await _create(client, user))["session_id"]
    for body in ({}, {"title": None}, {"title": "a", "status": "completed"}):
        resp = await client.patch(f"{SESSIONS}/{sid}", json=body, headers=user.auth)
        assert await error_of(resp) == (422, "invalid_request")
    resp = await client.patch(
        f"{SESSIONS}/{sid}", data=b"{", headers={**user.auth, "Content-Type": "application/json"}
    )
    assert await error_of(resp) == (400, "invalid_json")


async def test_messages_bad_query(client: Client) -> None:
    user = await make_user(client)
    sid = (await _create(client, user))["session_id"]
    for query in ("limit=0", "before=yesterday", "limit=201"):
        resp = await client.get(f"{SESSIONS}/{sid}/messages?{query}", headers=user.auth)
        assert await error_of(resp) == (422, "invalid_request")


async def test_sessions_require_auth(client: Client) -> None:
    for method, path in (("GET", SESSIONS), ("POST", SESSIONS), ("GET", f"{SESSIONS}/x")):
        resp = await client.request(method, path, json={} if method == "POST" else None)
        assert await error_of(resp) == (401, "unauthorized")


async def test_oversize_session_body_is_413(client: Client) -> None:
    user = await make_user(client)
    data = b'{"title": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    resp = await client.post(
        SESSIONS, data=io.BytesIO(data), headers={**user.auth, "Content-Type": "application/json"}
    )
    assert await error_of(resp) == (413, "payload_too_large")
