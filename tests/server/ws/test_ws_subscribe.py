"""subscribe / unsubscribe: ownership, live events, lossless resume, recovered: false."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import ClientWebSocketResponse

from server import keys

from .conftest import Ws, recv


async def _events(ws: ClientWebSocketResponse, count: int) -> list[dict[str, Any]]:
    frames = [await recv(ws) for _ in range(count)]
    assert all(f["type"] == "event" for f in frames), frames
    return frames


async def _assert_quiet(ws_tools: Ws, ws: ClientWebSocketResponse, cmd_id: int) -> None:
    """The next frame is the answer to a ping: nothing else was queued before it."""
    reply = await ws_tools.call(ws, {"id": cmd_id, "type": "ping"})
    assert reply == {"id": cmd_id, "type": "result", "ok": True, "data": {}}


async def test_subscribe_fresh_session(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    session_id = await ws_tools.session(user)
    ws = await ws_tools.connect(user)
    reply = await ws_tools.call(ws, {"id": 1, "type": "subscribe", "session_id": session_id})
    assert reply["id"] == 1 and reply["type"] == "result" and reply["ok"] is True
    data = reply["data"]
    assert data["last_seq"] == 0 and data["recovered"] is True
    assert isinstance(data["epoch"], str) and data["epoch"]
    await ws.close()


async def test_subscribe_other_users_session_is_not_found(ws_tools: Ws) -> None:
    owner, other = await ws_tools.user("owner"), await ws_tools.user("other")
    session_id = await ws_tools.session(owner)
    ws = await ws_tools.connect(other)
    reply = await ws_tools.call(ws, {"id": 1, "type": "subscribe", "session_id": session_id})
    assert reply == {
        "id": 1, "type": "error", "error": {"code": "not_found", "message": "Session not found"}
    }  # fmt: skip
    await ws.close()


async def test_subscribe_missing_session_is_not_found(ws_tools: Ws) -> None:
    ws = await ws_tools.connect(await ws_tools.user())
    reply = await ws_tools.call(ws, {"id": 1, "type": "subscribe", "session_id": "nope"})
    assert reply["error"] == {"code": "not_found", "message": "Session not found"}
    await ws.close()


async def test_live_events_follow_the_result(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    session_id = await ws_tools.session(user)
    ws = await ws_tools.connect(user)
    result = await ws_tools.call(ws, {"id": 1, "type": "subscribe", "session_id": session_id})
    await ws_tools.publish(session_id, 3)
    events = await _events(ws, 3)
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert [e["data"]["text"] for e in events] == ["0", "1", "2"]
    first = events[0]
    assert first["session_id"] == session_id and first["epoch"] == result["data"]["epoch"]
    assert first["name"] == "stage.delta" and first["run_id"] is None and "ts" in first
    await ws.close()


async def test_resume_replays_missed_events_then_live(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    session_id = await ws_tools.session(user)
    await ws_tools.publish(session_id, 10)
    _, epoch = await ws_tools.client.app[keys.EVENT_BUS].head(session_id)
    ws = await ws_tools.connect(user)
    reply = await ws_tools.call(
        ws, {"id": 1, "type": "subscribe", "session_id": session_id, "after_seq": 4,
             "epoch": epoch}
    )  # fmt: skip
    assert reply["data"] == {"last_seq": 10, "epoch": epoch, "recovered": True}
    assert [e["seq"] for e in await _events(ws, 6)] == [5, 6, 7, 8, 9, 10]
    await ws_tools.publish(session_id, 3, start=10)
    assert [e["seq"] for e in await _events(ws, 3)] == [11, 12, 13]
    await _assert_quiet(ws_tools, ws, 2)
    await ws.close()


async def test_resume_while_a_publisher_runs_has_no_gap_and_no_duplicate(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    session_id = await ws_tools.session(user)
    await ws_tools.publish(session_id, 200)
    ws = await ws_tools.connect(user)
    publisher = asyncio.create_task(ws_tools.publish(session_id, 300, start=200))
    await asyncio.sleep(0)  # let the publisher start before the subscribe is read
    reply = await ws_tools.call(
        ws, {"id": 1, "type": "subscribe", "session_id": session_id, "after_seq": 50}
    )
    assert reply["data"]["recovered"] is True
    assert 200 <= reply["data"]["last_seq"] < 500  # the replay raced the publisher
    await publisher
    events = await _events(ws, 450)
    assert [e["seq"] for e in events] == list(range(51, 501))
    assert [e["data"]["text"] for e in events] == [str(i) for i in range(50, 500)]
    await _assert_quiet(ws_tools, ws, 2)
    await ws.close()


async def test_trimmed_history_is_not_recovered_then_live_continues(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    session_id = await ws_tools.session(user)
    await ws_tools.publish(session_id, 10)
    app = ws_tools.client.app
    _, epoch = await app[keys.EVENT_BUS].head(session_id)
    await app[keys.REDIS].xtrim(
        app[keys.REDIS_KEYS].session_stream(session_id), maxlen=3, approximate=False
    )
    ws = await ws_tools.connect(user)
    reply = await ws_tools.call(
        ws, {"id": 1, "type": "subscribe", "session_id": session_id, "after_seq": 2,
             "epoch": epoch}
    )  # fmt: skip
    assert reply["data"] == {"last_seq": 10, "epoch": epoch, "recovered": False}
    await ws_tools.publish(session_id, 1, start=10)
    assert [e["seq"] for e in await _events(ws, 1)] == [11]
    await ws.close()


async def test_wrong_epoch_is_not_recovered(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    session_id = await ws_tools.session(user)
    await ws_tools.publish(session_id, 5)
    _, epoch = await ws_tools.client.app[keys.EVENT_BUS].head(session_id)
    ws = await ws_tools.connect(user)
    reply = await ws_tools.call(
        ws, {"id": 1, "type": "subscribe", "session_id": session_id, "after_seq": 2,
             "epoch": "not-the-epoch"}
    )  # fmt: skip
    assert reply["data"] == {"last_seq": 5, "epoch": epoch, "recovered": False}
    await _assert_quiet(ws_tools, ws, 2)
    await ws.close()


async def test_lost_counter_is_a_new_epoch_and_not_recovered(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    session_id = await ws_tools.session(user)
    await ws_tools.publish(session_id, 5)
    app = ws_tools.client.app
    _, old_epoch = await app[keys.EVENT_BUS].head(session_id)
    rkeys = app[keys.REDIS_KEYS]
    await app[keys.REDIS].delete(rkeys.session_seq(session_id), rkeys.session_stream(session_id))
    ws = await ws_tools.connect(user)
    reply = await ws_tools.call(
        ws, {"id": 1, "type": "subscribe", "session_id": session_id, "after_seq": 5,
             "epoch": old_epoch}
    )  # fmt: skip
    data = reply["data"]
    assert data["recovered"] is False and data["last_seq"] == 0 and data["epoch"] != old_epoch
    await ws.close()


async def test_after_seq_beyond_the_head_is_not_recovered(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    session_id = await ws_tools.session(user)
    await ws_tools.publish(session_id, 2)
    ws = await ws_tools.connect(user)
    reply = await ws_tools.call(
        ws, {"id": 1, "type": "subscribe", "session_id": session_id, "after_seq": 9}
    )
    assert reply["data"]["recovered"] is False and reply["data"]["last_seq"] == 2
    await ws.close()


async def test_negative_after_seq_is_invalid_message(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    session_id = await ws_tools.session(user)
    ws = await ws_tools.connect(user)
    reply = await ws_tools.call(
        ws, {"id": 1, "type": "subscribe", "session_id": session_id, "after_seq": -1}
    )
    assert reply["error"]["code"] == "invalid_message"
    assert reply["error"]["message"].startswith("after_seq:")
    await ws.close()


async def test_unsubscribe_stops_events(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    session_id = await ws_tools.session(user)
    ws = await ws_tools.connect(user)
    await ws_tools.call(ws, {"id": 1, "type": "subscribe", "session_id": session_id})
    reply = await ws_tools.call(ws, {"id": 2, "type": "unsubscribe", "session_id": session_id})
    assert reply == {"id": 2, "type": "result", "ok": True, "data": {}}
    await ws_tools.publish(session_id, 2)
    await _assert_quiet(ws_tools, ws, 3)
    await ws.close()


async def test_subscribing_again_does_not_duplicate_live_events(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    session_id = await ws_tools.session(user)
    ws = await ws_tools.connect(user)
    await ws_tools.call(ws, {"id": 1, "type": "subscribe", "session_id": session_id})
    await ws_tools.call(ws, {"id": 2, "type": "subscribe", "session_id": session_id})
    await ws_tools.publish(session_id, 1)
    assert [e["seq"] for e in await _events(ws, 1)] == [1]
    await _assert_quiet(ws_tools, ws, 3)
    await ws.close()


async def test_two_sockets_share_a_session_and_leave_independently(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    session_id = await ws_tools.session(user)
    first, second = await ws_tools.connect(user), await ws_tools.connect(user)
    for ws in (first, second):
        await ws_tools.call(ws, {"id": 1, "type": "subscribe", "session_id": session_id})
    await ws_tools.publish(session_id, 1)
    assert [e["seq"] for e in await _events(first, 1)] == [1]
    assert [e["seq"] for e in await _events(second, 1)] == [1]
    await first.close()
    await ws_tools.publish(session_id, 1, start=1)
    assert [e["seq"] for e in await _events(second, 1)] == [2]
    await second.close()


async def test_events_of_other_sessions_are_not_delivered(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    mine, other = await ws_tools.session(user), await ws_tools.session(user)
    ws = await ws_tools.connect(user)
    await ws_tools.call(ws, {"id": 1, "type": "subscribe", "session_id": mine})
    await ws_tools.publish(other, 2)
    await ws_tools.publish(mine, 1)
    event = (await _events(ws, 1))[0]
    assert event["session_id"] == mine and event["seq"] == 1
    await ws.close()
