"""Property tests (hypothesis): any bytes, text or JSON thrown at any route's headers,
query and body, or at the WebSocket frame parser, is answered with a well-formed 4xx or
error frame — never a 500, a dropped server or a closed socket — and bob's data stays.

Example counts are kept modest (``make test`` runs the whole suite); raise them locally
with ``HYPOTHESIS_EXAMPLES=2000 .venv/bin/pytest tests/security/test_properties.py``.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote, quote_from_bytes

import pytest
from aiohttp import WSMsgType
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from server.config import Limits
from server.ws.commands import COMMANDS
from tests.security.conftest import MakeSec, Sec, http_request

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "60"))
PROPERTY = settings(
    max_examples=EXAMPLES, deadline=None, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
HEADER_NAMES = [b"Authorization", b"Cookie", b"Origin", b"X-Requested-With", b"Content-Type",
                b"X-Request-ID", b"X-Forwarded-For", b"Accept", b"Upgrade"]  # fmt: skip

# Header bytes: anything but what ends a header line (the parser's business, not ours),
# often behind the prefix that gets a value past the first check (a scheme, a cookie name).
header_value = st.builds(
    lambda prefix, rest: prefix + rest.translate(None, b"\r\n\0"),
    st.sampled_from([b"", b"Bearer ", b"chorus_session=", b"http://"]),
    st.binary(max_size=80),
)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=12,
)  # fmt: skip
body = st.one_of(
    st.binary(max_size=200),
    json_value.map(lambda v: json.dumps(v).encode()),
    st.sampled_from([10, 999, 10_000, 20_000]).map(lambda n: b"[" * n + b"]" * n),
    st.sampled_from([b'{"email": "\\ud800@x.test", "password": "\\udfffxxxxxxxx"}',
                     b'{"title": "\\ud800", "content": "\\udc00"}']),
)  # fmt: skip
path_value = st.one_of(
    st.text(min_size=1, max_size=30).map(lambda t: quote(t, safe="", errors="surrogatepass")),
    st.binary(min_size=1, max_size=20).map(lambda b: quote_from_bytes(b, safe="")),
)
query = st.lists(st.tuples(st.binary(max_size=15), st.binary(max_size=30)), max_size=3).map(
    lambda pairs: "&".join(
        f"{quote_from_bytes(k, safe='')}={quote_from_bytes(v, safe='')}" for k, v in pairs
    )
)


def _routes(sec: Sec) -> list[tuple[str, str]]:
    found = []
    for route in sec.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("formatter") or info.get("path")
        if path and route.method != "HEAD":
            found.append((route.method, path))
    return sorted(set(found))


def _well_formed(resp_status: int, headers: dict[str, str], body_bytes: bytes, path: str) -> None:
    assert resp_status < 500, (resp_status, body_bytes[:300])
    if resp_status >= 400 and path.startswith("/api/") and "x-request-id" in headers:
        error = json.loads(body_bytes)["error"]  # the app's envelope
        assert isinstance(error["code"], str) and isinstance(error["message"], str)


@pytest.fixture
def state() -> dict[str, Any]:
    """What the examples of one test share (hypothesis builds function fixtures once)."""
    return {}


@PROPERTY
@given(data=st.data())
async def test_any_request_gets_a_well_formed_answer(
    make_sec: MakeSec, state: dict[str, Any], data: st.DataObject
) -> None:
    if "sec" not in state:  # bob's checks after every example must not use up his budget
        state["sec"] = await make_sec(limits=Limits(api_per_user=1_000_000))
        state["mallory"] = await state["sec"].user()
    sec: Sec = state["sec"]
    mallory = state["mallory"]
    method, template = data.draw(st.sampled_from(_routes(sec)), label="route")
    ids = st.sampled_from([sec.bob.session_id, "0" * 24]) | path_value
    path = template
    for name in ("session_id", "run_id", "path"):
        path = path.replace("{" + name + "}", data.draw(ids, label=name))
    target = path + ("?" + data.draw(query, label="query") if data.draw(st.booleans()) else "")
    headers = data.draw(st.lists(st.tuples(st.sampled_from(HEADER_NAMES), header_value),
                                 max_size=4), label="headers")  # fmt: skip
    if data.draw(st.booleans(), label="json"):  # first, so its body is read as JSON
        headers.insert(0, (b"Content-Type", b"application/json"))
    if data.draw(st.booleans(), label="as mallory"):
        headers.insert(0, (b"Authorization", f"Bearer {mallory.token}".encode()))
    raw = http_request(method, target, headers, data.draw(body, label="body"))
    resp = await sec.raw(raw)
    _well_formed(resp.status, resp.headers, resp.body, path)
    await sec.still_serving()


def _commands() -> st.SearchStrategy[Any]:
    """Frames shaped like commands (known types, fields of any type) and anything else."""
    fields = st.dictionaries(
        st.sampled_from(["session_id", "run_id", "content", "after_seq", "epoch", "token", "x"]),
        json_value, max_size=4,
    )  # fmt: skip
    typed = st.builds(
        lambda kind, extra, cid: {**extra, "type": kind, "id": cid},
        st.sampled_from([*COMMANDS, "auth", "", "nope"]) | st.text(max_size=40),
        fields, st.integers(-5, 10**12) | json_value,
    )  # fmt: skip
    return typed | json_value


frame_text = st.one_of(
    _commands().map(json.dumps),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=200),
    st.sampled_from([10, 999, 10_000, 20_000]).map(lambda n: "{" * n),
    st.just('{"id": 1, "type": "send", "session_id": "a", "content": "\\ud800"}'),
)


@PROPERTY
@given(frame=frame_text | st.binary(max_size=100))
@example(frame="[" * 20_000)  # the known classes always run, whatever else is drawn
@example(frame='{"id": 1, "type": "send", "session_id": "a", "content": "\\ud800"}')
@example(frame=b"\xff\xfe")
async def test_any_frame_gets_a_well_formed_answer(
    make_sec: MakeSec, state: dict[str, Any], frame: str | bytes
) -> None:
    # One server and socket for every example (built on first use), as a flooding client has.
    if "ws" not in state:
        sec = await make_sec(ws_rate_burst=100_000, limits=Limits(api_per_user=1_000_000))
        user = await sec.user()
        ws = await sec.client.ws_connect("/api/v1/ws", headers=user.auth)
        assert (await ws.receive_json())["type"] == "ready"
        state.update(sec=sec, ws=ws, next_id=1)
    sec, ws = state["sec"], state["ws"]
    sent_id = None
    if isinstance(frame, bytes):
        await ws.send_bytes(frame)
    else:
        await ws.send_str(frame)
        try:
            decoded = json.loads(frame)
        except (ValueError, RecursionError):
            decoded = None
        if isinstance(decoded, dict) and type(decoded.get("id")) is int:
            sent_id = decoded["id"]
    ping_id = max(state["next_id"], (sent_id or 0) + 1)
    state["next_id"] = ping_id + 1
    await ws.send_json({"id": ping_id, "type": "ping"})
    while True:  # every frame well formed, until the ping's answer
        msg = await ws.receive(timeout=10)
        assert msg.type is WSMsgType.TEXT, (msg.type, msg.data)  # never closed
        reply = json.loads(msg.data)
        assert reply["type"] in ("result", "error", "event"), reply
        if reply["type"] == "error":
            assert isinstance(reply["error"]["code"], str), reply
            assert reply["error"]["code"] != "internal_error", reply
        if reply.get("id") == ping_id:
            assert reply["type"] == "result", reply
            break
    await sec.still_serving()
