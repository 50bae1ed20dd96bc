"""GET /api/v1/sessions/{id}/events: the WebSocket's events and resume rules, over SSE."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.sse.feed import SessionFeed
from server.sse.routes import close_streams
from tests.conftest import ALLOWED_ORIGIN
from tests.server.sse.conftest import open_stream
from tests.server.ws.conftest import Ws
from tests.support.api import error_of

Client = TestClient[Any, web.Application]


async def test_fresh_stream_says_subscribed_then_live_events(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    sid = await ws_tools.session(user)
    stream = await open_stream(ws_tools.client, sid, user.auth)
    info = await stream.subscribed()
    assert info["last_seq"] == 0 and info["recovered"] is True and info["epoch"]
    await ws_tools.publish(sid, 3)
    events = await stream.events(3)
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert [e["data"]["text"] for e in events] == ["0", "1", "2"]
    assert events[0]["type"] == "event" and events[0]["session_id"] == sid
    assert events[0]["epoch"] == info["epoch"]
    stream.drop()


async def test_last_event_id_replays_missed_events_then_live(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    sid = await ws_tools.session(user)
    await ws_tools.publish(sid, 10)
    _, epoch = await ws_tools.client.app[keys.EVENT_BUS].head(sid)
    headers = user.auth | {"Last-Event-ID": f"{epoch}:4"}
    stream = await open_stream(ws_tools.client, sid, headers)
    assert await stream.subscribed() == {"last_seq": 10, "epoch": epoch, "recovered": True}
    assert [e["seq"] for e in await stream.events(6)] == [5, 6, 7, 8, 9, 10]
    await ws_tools.publish(sid, 3, start=10)
    assert [e["seq"] for e in await stream.events(3)] == [11, 12, 13]
    stream.drop()


async def test_query_parameter_stands_in_for_the_header(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    sid = await ws_tools.session(user)
    await ws_tools.publish(sid, 5)
    _, epoch = await ws_tools.client.app[keys.EVENT_BUS].head(sid)
    stream = await open_stream(ws_tools.client, sid, user.auth, last_event_id=f"{epoch}:3")
    assert (await stream.subscribed())["recovered"] is True
    assert [e["seq"] for e in await stream.events(2)] == [4, 5]
    stream.drop()


async def test_dropped_stream_resumes_with_nothing_lost_or_doubled(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    sid = await ws_tools.session(user)
    await ws_tools.publish(sid, 100)
    stream = await open_stream(ws_tools.client, sid, user.auth, last_event_id="")
    await stream.subscribed()
    publisher = asyncio.create_task(ws_tools.publish(sid, 300, start=100))
    seen = await stream.events(20)  # live events, while the publisher runs
    stream.drop()
    last_id = stream.parser.last_id
    assert last_id is not None and last_id.endswith(f":{seen[-1]['seq']}")
    resumed = await open_stream(ws_tools.client, sid, user.auth | {"Last-Event-ID": last_id})
    info = await resumed.subscribed()
    assert info["recovered"] is True
    await publisher
    rest = await resumed.events(400 - seen[-1]["seq"])
    everything = seen + rest
    assert [e["seq"] for e in everything] == list(range(seen[0]["seq"], 401))
    assert [e["data"]["text"] for e in everything] == [
        str(i - 1) for i in range(seen[0]["seq"], 401)
    ]
    await ws_tools.publish(sid, 1, start=400)
    assert [e["seq"] for e in await resumed.events(1)] == [401]  # then live, no repeat
    resumed.drop()


async def test_trimmed_history_is_not_recovered_then_live_continues(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    sid = await ws_tools.session(user)
    await ws_tools.publish(sid, 10)
    app = ws_tools.client.app
    _, epoch = await app[keys.EVENT_BUS].head(sid)
    await app[keys.REDIS].xtrim(app[keys.REDIS_KEYS].session_stream(sid), maxlen=3,
                                approximate=False)  # fmt: skip
    stream = await open_stream(ws_tools.client, sid, user.auth | {"Last-Event-ID": f"{epoch}:2"})
    assert await stream.subscribed() == {"last_seq": 10, "epoch": epoch, "recovered": False}
    await ws_tools.publish(sid, 1, start=10)
    assert [e["seq"] for e in await stream.events(1)] == [11]
    stream.drop()


async def test_wrong_epoch_is_not_recovered(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    sid = await ws_tools.session(user)
    await ws_tools.publish(sid, 4)
    stream = await open_stream(ws_tools.client, sid, user.auth | {"Last-Event-ID": "old:2"})
    info = await stream.subscribed()
    assert info["recovered"] is False and info["last_seq"] == 4
    stream.drop()


async def test_bad_requests_are_clear_errors(ws_tools: Ws) -> None:
    ann, bob = await ws_tools.user("ann"), await ws_tools.user("bob")
    sid = await ws_tools.session(ann)
    path = f"/api/v1/sessions/{sid}/events"
    client = ws_tools.client
    client.session.cookie_jar.clear()  # the logins left bob's session cookie
    assert await error_of(await client.get(path)) == (401, "unauthorized")
    assert await error_of(await client.get(path, headers=bob.auth)) == (404, "not_found")
    for bad in ("nocolon", "e:x", ":4", "e:-1"):
        resp = await client.get(path, headers=ann.auth | {"Last-Event-ID": bad})
        assert await error_of(resp) == (422, "invalid_request"), bad
    resp = await client.get(path, headers=ann.auth, params={"format": "xml"})
    assert await error_of(resp) == (422, "invalid_request")


async def test_cookie_authenticates_a_stream_from_allowed_origins(ws_tools: Ws) -> None:
    user = await ws_tools.user()  # the login set the session cookie on this client
    sid = await ws_tools.session(user)
    stream = await open_stream(ws_tools.client, sid, {"Origin": ALLOWED_ORIGIN})
    assert (await stream.subscribed())["recovered"] is True
    stream.drop()
    path = f"/api/v1/sessions/{sid}/events"
    foreign = await ws_tools.client.get(path, headers={"Origin": "https://evil.example"})
    assert await error_of(foreign) == (403, "forbidden")
    bearer = await open_stream(ws_tools.client, sid, user.auth | {"Origin": "https://x.example"})
    bearer.drop()  # a bearer token is not sent by browsers on their own: any origin


async def test_heartbeats_keep_an_idle_stream_alive(make_ws: Any) -> None:
    tools = await make_ws(sse_heartbeat_s=0.01)
    user = await tools.user()
    sid = await tools.session(user)
    stream = await open_stream(tools.client, sid, user.auth)
    await stream.subscribed()
    async with asyncio.timeout(5):
        line = b""
        while not line.startswith(b":"):
            line = await stream.resp.content.readline()
    assert line == b": ping\n"
    stream.drop()


async def test_logout_ends_the_stream(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    sid = await ws_tools.session(user)
    stream = await open_stream(ws_tools.client, sid, user.auth)
    await stream.subscribed()
    resp = await ws_tools.client.post("/api/v1/auth/logout", headers=user.auth)
    assert resp.status == 204
    async with asyncio.timeout(5):
        rest = await stream.resp.content.read()
    assert rest == b""  # the server ended the response


class _CountingFeed(SessionFeed):
    """A feed that says when it has been pushed ``n`` live events."""

    def __init__(self, *args: Any, n: int) -> None:
        super().__init__(*args)
        self.pushed = 0
        self.all_pushed = asyncio.Event()
        self._n = n

    def push(self, frame: bytes) -> None:
        super().push(frame)
        self.pushed += 1
        if self.pushed == self._n:
            self.all_pushed.set()


async def test_a_reader_too_slow_for_the_buffer_reads_the_rest_from_the_log(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    sid = await ws_tools.session(user)
    await ws_tools.publish(sid, 2)
    feed = _CountingFeed(ws_tools.client.app, sid, 4, n=32)
    await feed.open(None, None)
    await ws_tools.publish(sid, 32, start=2)
    # 32 live events met a buffer of 4: it overflowed (every 5th push empties it), and
    # the last two stayed buffered, so the replay overlaps them.
    await feed.all_pushed.wait()
    events = await feed.next(1.0)
    assert [e["seq"] for e in events] == list(range(3, 35))
    feed.close()


async def test_an_event_published_between_replay_and_live_is_delivered_once(
    ws_tools: Ws, monkeypatch: Any
) -> None:
    user = await ws_tools.user()
    sid = await ws_tools.session(user)
    await ws_tools.publish(sid, 3)
    app = ws_tools.client.app
    bus = app[keys.EVENT_BUS]
    feed = SessionFeed(app, sid, 100)
    # A second subscriber of the same channel: the hub hands each event to every
    # subscriber in one pass, so once the probe has it, the feed's buffer has it too.
    probe = _CountingFeed(app, sid, 100, n=1)
    await probe.open(None, None)
    real_replay = bus.replay

    async def replay_then_publish(*args: Any) -> Any:
        replay = await real_replay(*args)
        await ws_tools.publish(sid, 1, start=3)  # after the replay was read...
        async with asyncio.timeout(5):
            await probe.all_pushed.wait()  # ...and buffered by the live subscription
        return replay

    monkeypatch.setattr(bus, "replay", replay_then_publish)
    replay = await feed.open(1, replay_epoch := (await bus.head(sid))[1])
    assert replay.recovered and replay.epoch == replay_epoch
    assert [e["seq"] for e in await feed.next(1.0)] == [2, 3, 4]
    feed.close()
    probe.close()


async def test_shutdown_ends_every_stream(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    sid = await ws_tools.session(user)
    stream = await open_stream(ws_tools.client, sid, user.auth)
    await stream.subscribed()
    await close_streams(ws_tools.client.app)
    async with asyncio.timeout(5):
        rest = await stream.resp.content.read()
    assert rest == b""
