"""Frames after auth: each malformed input gets its exact error frame or close code."""

from __future__ import annotations

from aiohttp import WSMsgType

from .conftest import Ws, recv, recv_close


def _error(cmd_id: int | None, code: str, message: str) -> dict[str, object]:
    return {"id": cmd_id, "type": "error", "error": {"code": code, "message": message}}


async def test_ping(ws_tools: Ws) -> None:
    ws = await ws_tools.connect(await ws_tools.user())
    reply = await ws_tools.call(ws, {"id": 1, "type": "ping"})
    assert reply == {"id": 1, "type": "result", "ok": True, "data": {}}
    await ws.close()


async def test_malformed_json_then_the_connection_keeps_working(ws_tools: Ws) -> None:
    ws = await ws_tools.connect(await ws_tools.user())
    await ws.send_str('{"id": 1, "type": "ping"')
    assert await recv(ws) == _error(None, "invalid_message", "frame is not valid JSON")
    reply = await ws_tools.call(ws, {"id": 2, "type": "ping"})
    assert reply == {"id": 2, "type": "result", "ok": True, "data": {}}
    await ws.close()


async def test_deeply_nested_json_is_invalid_message(ws_tools: Ws) -> None:
    ws = await ws_tools.connect(await ws_tools.user())
    await ws.send_str("[" * 30_000 + "]" * 30_000)
    assert await recv(ws) == _error(None, "invalid_message", "frame is nested too deeply")
    await ws.close()


async def test_non_object_frame_is_invalid_message(ws_tools: Ws) -> None:
    ws = await ws_tools.connect(await ws_tools.user())
    await ws.send_str("[1, 2]")
    assert await recv(ws) == _error(None, "invalid_message", "frame must be a JSON object")
    await ws.close()


async def test_binary_frame_is_invalid_message(ws_tools: Ws) -> None:
    ws = await ws_tools.connect(await ws_tools.user())
    await ws.send_bytes(b'{"id": 1, "type": "ping"}')
    assert await recv(ws) == _error(None, "invalid_message", "frames must be JSON text, not binary")
    reply = await ws_tools.call(ws, {"id": 1, "type": "ping"})
    assert reply["type"] == "result"
    await ws.close()


async def test_oversize_frame_closes_1009(ws_tools: Ws) -> None:
    ws = await ws_tools.connect(await ws_tools.user())
    head = '{"id": 1, "type": "ping", "pad": "'
    await ws.send_str(head + "x" * (64 * 1024 - len(head) - 1) + '"}')  # 64 KiB + 1 byte
    assert await recv_close(ws) == 1009


async def test_frame_of_exactly_64_kib_is_read(ws_tools: Ws) -> None:
    ws = await ws_tools.connect(await ws_tools.user())
    head = '{"id": 1, "type": "ping", "pad": "'
    await ws.send_str(head + "x" * (64 * 1024 - len(head) - 2) + '"}')
    reply = await recv(ws)  # read and validated: the pad field is not part of ping
    assert reply["id"] == 1 and reply["error"]["code"] == "invalid_message"
    await ws.close()


async def test_invalid_utf8_closes_1007(ws_tools: Ws) -> None:
    ws = await ws_tools.connect(await ws_tools.user())
    await ws.send_frame(b'{"id": 1, "type": "\xff\xfe"}', WSMsgType.TEXT)
    assert await recv_close(ws) == 1007


async def test_unknown_type_is_unknown_command(ws_tools: Ws) -> None:
    ws = await ws_tools.connect(await ws_tools.user())
    reply = await ws_tools.call(ws, {"id": 1, "type": "launch_missiles"})
    assert reply == _error(1, "unknown_command", "unknown command type")
    await ws.close()


async def test_missing_type_is_unknown_command(ws_tools: Ws) -> None:
    ws = await ws_tools.connect(await ws_tools.user())
    reply = await ws_tools.call(ws, {"id": 1})
    assert reply == _error(1, "unknown_command", "unknown command type")
    await ws.close()


async def test_missing_id_is_invalid_message(ws_tools: Ws) -> None:
    ws = await ws_tools.connect(await ws_tools.user())
    reply = await ws_tools.call(ws, {"type": "ping"})
    assert reply == _error(None, "invalid_message", "id: an integer is required")
    await ws.close()


async def test_non_integer_id_is_invalid_message(ws_tools: Ws) -> None:
    ws = await ws_tools.connect(await ws_tools.user())
    for bad in ("1", 1.5, True, None):
        reply = await ws_tools.call(ws, {"id": bad, "type": "ping"})
        assert reply == _error(None, "invalid_message", "id: an integer is required")
    await ws.close()


async def test_id_must_increase(ws_tools: Ws) -> None:
    ws = await ws_tools.connect(await ws_tools.user())
    assert (await ws_tools.call(ws, {"id": 5, "type": "ping"}))["type"] == "result"
    reply = await ws_tools.call(ws, {"id": 5, "type": "ping"})
    assert reply == _error(5, "invalid_message", "id: must be greater than the last one")
    assert (await ws_tools.call(ws, {"id": 6, "type": "ping"}))["type"] == "result"
    await ws.close()


async def test_schema_error_names_the_field(ws_tools: Ws) -> None:
    ws = await ws_tools.connect(await ws_tools.user())
    reply = await ws_tools.call(ws, {"id": 1, "type": "subscribe", "session_id": 42})
    assert reply["id"] == 1 and reply["type"] == "error"
    assert reply["error"]["code"] == "invalid_message"
    assert reply["error"]["message"].startswith("session_id:")
    await ws.close()


async def test_unknown_field_is_invalid_message(ws_tools: Ws) -> None:
    ws = await ws_tools.connect(await ws_tools.user())
    reply = await ws_tools.call(ws, {"id": 1, "type": "ping", "extra": {"$gt": ""}})
    assert reply["error"]["code"] == "invalid_message"
    assert reply["error"]["message"].startswith("extra:")
    await ws.close()


async def test_auth_frame_after_ready_is_unknown_command(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    ws = await ws_tools.connect(user)
    reply = await ws_tools.call(ws, {"id": 1, "type": "auth", "token": user.token})
    assert reply == _error(1, "unknown_command", "unknown command type")
    await ws.close()
