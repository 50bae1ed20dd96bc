"""GET /api/v1/sessions?q=…&sort=…: search over titles and message text, last-activity order."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.store.models import Message, utcnow
from tests.support.api import User, error_of, make_user

Client = TestClient[Any, web.Application]
SESSIONS = "/api/v1/sessions"


async def _create(client: Client, user: User, title: str) -> str:
    resp = await client.post(SESSIONS, json={"title": title}, headers=user.auth)
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["session_id"])


async def _list(client: Client, user: User, **params: str) -> tuple[list[str], int]:
    resp = await client.get(SESSIONS, params=params, headers=user.auth)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    return [s["session_id"] for s in body["items"]], body["total"]


async def test_search_titles_and_messages_of_the_caller_only(client: Client) -> None:
    ann, bob = await make_user(client, "ann"), await make_user(client, "bob")
    bread = await _create(client, ann, "Sourdough at home")
    trip = await _create(client, ann, "Weekend")
    await _create(client, ann, "Tea")
    await _create(client, bob, "Sourdough for Bob")
    message = Message(session_id=trip, user_id=ann.user["user_id"], role="user",
                      content="Bring the SOURDOUGH loaf")  # fmt: skip
    await client.app[keys.STORE].insert_message(message)

    found, total = await _list(client, ann, q="sourdough")
    assert (set(found), total) == ({bread, trip}, 2)
    assert await _list(client, ann, q="  loaf ") == ([trip], 1)
    assert await _list(client, ann, q="no such words") == ([], 0)
    assert (await _list(client, ann, q=""))[1] == 3  # blank: no search
    assert await _list(client, bob, q="loaf") == ([], 0)


async def test_sort_by_last_activity(client: Client) -> None:
    user = await make_user(client)
    first = await _create(client, user, "first")
    second = await _create(client, user, "second")
    assert (await _list(client, user))[0] == [second, first]
    await client.app[keys.STORE].update_session(
        user.user["user_id"], first, {"updated_at": utcnow()}
    )
    assert (await _list(client, user, sort="updated"))[0] == [first, second]
    assert (await _list(client, user, sort="started"))[0] == [second, first]


@pytest.mark.parametrize("query", ["q=" + "x" * 201, "sort=title"])
async def test_bad_search_is_422(client: Client, query: str) -> None:
    user = await make_user(client)
    resp = await client.get(f"{SESSIONS}?{query}", headers=user.auth)
    assert await error_of(resp) == (422, "invalid_request")
