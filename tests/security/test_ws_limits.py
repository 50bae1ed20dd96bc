"""Part 3: WebSocket abuse limits — command rate, replay memory, sockets per user,
sockets authenticating, and a deadline on half-sent request headers."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType, WSServerHandshakeError

from server import keys
from server.ws.limits import CommandRate, SocketLimits
from server.ws.outbox import Outbox, Replay
from tests.security.conftest import UPGRADE, MakeSec, Sec, http_request

WS = "/api/v1/ws"


async def _ready(sec: Sec, token: str) -> ClientWebSocketResponse:
    ws = await sec.client.ws_connect(WS, headers={"Authorization": f"Bearer {token}"})
    assert (await ws.receive_json())["type"] == "ready"
    return ws


async def _close_code(ws: ClientWebSocketResponse) -> tuple[int, int]:
    """Read until the close frame; return (close code, results received before it)."""
    results = 0
    while True:
        msg = await ws.receive(timeout=10)
        if msg.type is WSMsgType.CLOSE:
            return int(msg.data), results
        if msg.type is WSMsgType.TEXT:
            results += json.loads(msg.data).get("type") == "result"
        else:
            raise AssertionError((msg.type, msg.data))


async def test_a_burst_of_5000_pings_is_closed_1008(sec: Sec) -> None:
    mallory = await sec.user()
    ws = await _ready(sec, mallory.token)
    for n in range(1, 5001):
        await ws.send_str(f'{{"id": {n}, "type": "ping"}}')
    code, answered = await _close_code(ws)
    assert code == 1008
    # The burst (200) and what the bucket refilled meanwhile were answered, not the flood.
    assert answered < 1000
    await ws.close()
    await sec.still_serving()


async def test_a_flood_of_binary_frames_counts_too(make_sec: MakeSec) -> None:
    sec = await make_sec(ws_rate_per_s=1.0, ws_rate_burst=5)
    ws = await _ready(sec, (await sec.user()).token)
    for _ in range(50):
        await ws.send_bytes(b"x")
    assert (await _close_code(ws))[0] == 1008
    await ws.close()
    await sec.still_serving()


def test_a_paced_client_is_answered_and_a_flood_is_not() -> None:
    now = [0.0]
    rate = CommandRate(per_s=2.0, burst=3, clock=lambda: now[0])
    assert [rate.allow() for _ in range(4)] == [True, True, True, False]
    for _ in range(100):  # two a second, for 50 seconds: always answered
        now[0] += 0.5
        assert rate.allow()
    assert [rate.allow() for _ in range(2)] == [False, False]
    now[0] += 100  # a long pause refills the burst, not more
    assert [rate.allow() for _ in range(4)] == [True, True, True, False]


async def test_a_newer_replay_of_a_session_supersedes_an_unsent_one() -> None:
    outbox = Outbox(limit=10, max_bytes=10_000)
    first = Replay("s1", [b"a" * 100] * 10)
    assert outbox.put(first) and outbox.queued_bytes == 1000
    for _ in range(300):
        assert outbox.put(Replay("s1", [b"b" * 100] * 10))
    assert (len(outbox), outbox.queued_bytes) == (1, 1000)  # one replay's worth, not 301
    assert outbox.put(Replay("s2", [b"c" * 100] * 10)) and outbox.queued_bytes == 2000
    assert (await outbox.get()).frames == [b"b" * 100] * 10  # the newest s1 replay


async def test_the_outbox_is_bounded_by_bytes_and_by_entries() -> None:
    outbox = Outbox(limit=3, max_bytes=1000)
    assert outbox.put(b"x" * 600)
    assert not outbox.put(Replay("s", [b"y" * 500]))  # would pass 1000 bytes
    assert outbox.put(b"x" * 400) and outbox.queued_bytes == 1000
    assert await outbox.get() == b"x" * 600 and outbox.queued_bytes == 400
    assert outbox.put(b"z") and outbox.put(b"z") and not outbox.put(b"z")  # 3 entries


async def test_a_replay_beyond_the_byte_limit_closes_1013(make_sec: MakeSec) -> None:
    sec = await make_sec(ws_queue_bytes=64 * 1024)
    mallory = await sec.user()
    created = await sec.client.post("/api/v1/sessions", json={}, headers=mallory.auth)
    session_id = (await created.json())["session_id"]
    bus = sec.app[keys.EVENT_BUS]
    for n in range(1000):  # ~200 KB of history
        await bus.publish(session_id, "stage.delta", {"stage": "draft", "text": f"{n:0100d}"})
    ws = await _ready(sec, mallory.token)
    await ws.send_json({"id": 1, "type": "subscribe", "session_id": session_id, "after_seq": 0})
    assert (await _close_code(ws))[0] == 1013
    await ws.close()
    await sec.still_serving()


def _text_frame(payload: bytes) -> bytes:
    """A client text frame (masked with a zero key, so the payload reads as sent)."""
    size = len(payload)
    length = bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + size.to_bytes(2, "big")
    return b"\x81" + length + b"\0\0\0\0" + payload


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await reader.readexactly(2)
    size = second & 0x7F
    if size >= 126:
        size = int.from_bytes(await reader.readexactly(2 if size == 126 else 8), "big")
    return first & 0x0F, await reader.readexactly(size)


async def _silent_socket(sec: Sec, token: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw WebSocket with a small receive buffer, upgraded, that reads only when told."""
    server = sec.client.server
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (server.host, server.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    auth = [(b"Authorization", f"Bearer {token}".encode())]
    writer.write(http_request("GET", WS, [*UPGRADE, *auth]))
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    return reader, writer


async def test_many_subscribes_of_a_long_session_hold_one_replay(make_sec: MakeSec) -> None:
    # 300 replays of ~300 KB: 90 MB if each were kept (the 16 MiB cap would close the
    # socket 1013). The raw socket reads nothing until the server has handled every
    # command, so its writer soon waits on a full socket and newer replays supersede
    # the queued one.
    sec = await make_sec(ws_rate_burst=400)
    mallory = await sec.user()
    session_ids = []
    for _ in range(2):
        created = await sec.client.post("/api/v1/sessions", json={}, headers=mallory.auth)
        session_ids.append((await created.json())["session_id"])
    bus = sec.app[keys.EVENT_BUS]
    for n in range(300):
        text = f"{n:01000d}"
        await bus.publish(session_ids[0], "stage.delta", {"stage": "draft", "text": text})
    watcher = await _ready(sec, mallory.token)
    await watcher.send_json({"id": 1, "type": "subscribe", "session_id": session_ids[1]})
    assert (await watcher.receive_json())["ok"] is True
    reader, writer = await _silent_socket(sec, mallory.token)
    frame = {"type": "subscribe", "session_id": session_ids[0], "after_seq": 0}
    for n in range(1, 301):
        writer.write(_text_frame(json.dumps({"id": n, **frame}).encode()))
    done = {"id": 301, "type": "send", "session_id": session_ids[1], "content": "done"}
    writer.write(_text_frame(json.dumps(done).encode()))
    await writer.drain()
    # The socket's commands run in order: once "done" is stored, all 300 were handled.
    event = await watcher.receive_json(timeout=30)
    assert event["name"] == "message.created", event
    events = results = 0
    async with asyncio.timeout(30):  # a bound on the wait, not a referee
        while results < 301:  # every command answered, the socket never closed
            opcode, payload = await _read_frame(reader)
            assert opcode in (1, 9), (opcode, payload[:100])  # text, or a heartbeat ping
            kind = json.loads(payload)["type"] if opcode == 1 else "ping"
            results += kind == "result"
            events += kind == "event"
    assert events < 100 * 300  # most replays were superseded before they were sent
    writer.close()
    await writer.wait_closed()
    await watcher.close()
    await sec.still_serving()


async def test_sockets_per_user_are_capped_with_1008(make_sec: MakeSec) -> None:
    sec = await make_sec(ws_max_per_user=2)
    mallory = await sec.user()
    held = [await _ready(sec, mallory.token) for _ in range(2)]
    extra = await sec.client.ws_connect(WS, headers=mallory.auth)
    assert (await _close_code(extra))[0] == 1008
    other = await _ready(sec, sec.bob.user.token)  # another user is not affected
    await other.close()
    await held[0].close()
    for ws in held[1:]:
        await ws.close()
    await sec.still_serving()


async def test_sockets_authenticating_are_capped_with_503(make_sec: MakeSec) -> None:
    sec = await make_sec(ws_max_pending=2)
    waiting = [await sec.client.ws_connect(WS) for _ in range(2)]  # no token yet
    with pytest.raises(WSServerHandshakeError) as refused:
        await sec.client.ws_connect(WS)
    assert refused.value.status == 503
    assert refused.value.headers is not None and refused.value.headers["Retry-After"] == "1"
    # One authenticates: its place is free again.
    await waiting[0].send_json({"type": "auth", "token": sec.bob.user.token})
    assert (await waiting[0].receive_json())["type"] == "ready"
    again = await sec.client.ws_connect(WS)
    for ws in (*waiting, again):
        await ws.close()
    await sec.still_serving()


def test_socket_limits_count_and_release() -> None:
    limits = SocketLimits(max_pending=1, max_per_user=1)
    assert limits.enter_pending() and not limits.enter_pending()
    limits.leave_pending()
    assert limits.enter_pending()
    assert limits.add_user_socket("u") and not limits.add_user_socket("u")
    assert limits.add_user_socket("v")
    limits.remove_user_socket("u")
    assert limits.user_sockets("u") == 0 and limits.add_user_socket("u")


async def test_a_half_sent_request_is_dropped_after_the_idle_timeout(make_sec: MakeSec) -> None:
    sec = await make_sec(http_idle_timeout_s=0.5)
    server = sec.client.server
    slow = []
    for _ in range(5):
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"GET /api/v1/ws HTTP/1.1\r\nHost: chorus.test\r\nUpgrade: webs")
        slow.append((reader, writer))
    for reader, writer in slow:
        async with asyncio.timeout(10):  # a bound on the wait; the server decides when
            assert await reader.read() == b""  # closed by the server, nothing answered
        writer.close()
        await writer.wait_closed()
    await sec.still_serving()
