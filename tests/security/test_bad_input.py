"""Part 1: bad input of every kind is a clean 4xx with its code, never a 500.

Each case names what it throws and the exact answer; after the group, bob is served
and his data is unchanged.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import ALLOWED_ORIGIN
from tests.security.conftest import UPGRADE, Sec, http_request

BAD_BYTES = b"\xff\xfe\xc3("
DEEP = b'{"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"


def _json(value: Any) -> bytes:
    """JSON text kept as written (``\\ud800`` stays an escape, as an attacker sends it)."""
    if isinstance(value, bytes):
        return value
    return value.encode() if isinstance(value, str) else json.dumps(value).encode()


# (case id, method, path, headers); each is answered 400 invalid_header.
HEADER_CASES = [
    ("authorization-not-utf8", "GET", "/api/v1/auth/me",
     [(b"Authorization", b"Bearer " + BAD_BYTES)]),
    ("cookie-not-utf8", "GET", "/api/v1/auth/me", [(b"Cookie", b"chorus_session=" + BAD_BYTES)]),
    ("origin-not-utf8", "POST", "/api/v1/auth/logout",
     [(b"Origin", BAD_BYTES), (b"X-Requested-With", b"x")]),
    ("ws-authorization-not-utf8", "GET", "/api/v1/ws",
     [(b"Authorization", b"Bearer " + BAD_BYTES), *UPGRADE]),
    ("ws-cookie-not-utf8", "GET", "/api/v1/ws",
     [(b"Cookie", b"chorus_session=" + BAD_BYTES), *UPGRADE]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [case[1:] for case in HEADER_CASES],
    ids=[case[0] for case in HEADER_CASES],
)
async def test_undecodable_headers_are_400(
    sec: Sec, method: str, path: str, headers: list[tuple[bytes, bytes]]
) -> None:
    resp = await sec.raw(http_request(method, path, headers))
    assert (resp.status, resp.error_code()) == (400, "invalid_header")
    await sec.still_serving()


async def test_undecodable_host_on_the_ui_is_400(sec: Sec) -> None:
    resp = await sec.raw(http_request("GET", "/", host=b"evil" + BAD_BYTES))
    assert (resp.status, resp.error_code()) == (400, "invalid_header")
    await sec.still_serving()


# (case id, path, body, expected status, expected code); each body sent as raw JSON text.
REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
BODY_CASES = [
    ("register-email-lone-surrogate", REGISTER,
     '{"email": "a\\ud800@example.test", "password": "longenough"}', 400, "invalid_json"),
    ("register-name-lone-surrogate", REGISTER,
     '{"email": "a@example.test", "password": "longenough", "name": "\\udfff"}',
     400, "invalid_json"),
    ("login-password-lone-surrogate", LOGIN,
     '{"email": "a@example.test", "password": "long\\ud800enough"}', 400, "invalid_json"),
    ("login-key-lone-surrogate", LOGIN, '{"\\ud800": 1}', 400, "invalid_json"),
    ("register-deep-json", REGISTER, DEEP, 400, "invalid_json"),
    ("login-deep-json", LOGIN, DEEP, 400, "invalid_json"),
    ("register-not-utf8-body", REGISTER, b'{"email": "' + BAD_BYTES + b'"}', 400, "invalid_json"),
    ("login-password-73-bytes", LOGIN,
     {"email": "bob@example.test", "password": "x" * 73}, 401, "invalid_credentials"),
    ("login-password-1000-bytes", LOGIN,
     {"email": "bob@example.test", "password": "é" * 500}, 401, "invalid_credentials"),
    ("register-password-73-bytes", REGISTER,
     {"email": "new@example.test", "password": "x" * 73}, 422, "invalid_request"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [case[1:] for case in BODY_CASES],
    ids=[case[0] for case in BODY_CASES],
)
async def test_bad_bodies_without_logging_in(
    sec: Sec, path: str, body: Any, status: int, code: str
) -> None:
    resp = await sec.client.post(
        path, data=_json(body), headers={"Content-Type": "application/json"}
    )
    assert (resp.status, (await resp.json())["error"]["code"]) == (status, code)
    await sec.still_serving()


async def test_a_password_over_72_bytes_never_logs_in(sec: Sec) -> None:
    # bcrypt reads only 72 bytes: a longer password sharing them must still be refused.
    email, password = "long@example.test", "p" * 72
    resp = await sec.client.post(REGISTER, json={"email": email, "password": password})
    assert resp.status == 201
    assert (await sec.client.post(LOGIN, json={"email": email, "password": password})).status == 200
    sec.client.session.cookie_jar.clear()
    resp = await sec.client.post(LOGIN, json={"email": email, "password": password + "x"})
    assert (resp.status, (await resp.json())["error"]["code"]) == (401, "invalid_credentials")
    await sec.still_serving()


AUTHED_ROUTES = [
    ("create-session", "POST", "/api/v1/sessions"),
    ("rename-session", "PATCH", "/api/v1/sessions/{sid}"),
    ("post-message", "POST", "/api/v1/sessions/{sid}/messages"),
]


@pytest.mark.parametrize(("method", "path"), [r[1:] for r in AUTHED_ROUTES],
                         ids=[r[0] for r in AUTHED_ROUTES])  # fmt: skip
@pytest.mark.parametrize(
    "body",
    [DEEP, '{"title": "\\ud800", "content": "\\ud800"}'],
    ids=["deep-json", "lone-surrogate"],
)
async def test_bad_bodies_on_authenticated_routes_are_400(
    sec: Sec, method: str, path: str, body: Any
) -> None:
    mallory = await sec.user()
    created = await sec.client.post("/api/v1/sessions", json={}, headers=mallory.auth)
    sid = (await created.json())["session_id"]
    resp = await sec.client.request(
        method, path.format(sid=sid), data=_json(body),
        headers={**mallory.auth, "Content-Type": "application/json"},
    )  # fmt: skip
    assert (resp.status, (await resp.json())["error"]["code"]) == (400, "invalid_json")
    await sec.still_serving()


async def test_a_paired_surrogate_escape_is_a_valid_character(sec: Sec) -> None:
    mallory = await sec.user()
    resp = await sec.client.post(
        "/api/v1/sessions", data=b'{"title": "\\ud83d\\ude00"}',
        headers={**mallory.auth, "Content-Type": "application/json"},
    )  # fmt: skip
    assert resp.status == 201 and (await resp.json())["title"] == "\U0001f600"
    await sec.still_serving()


@pytest.mark.parametrize(
    "query",
    [
        "before=0001-01-01T00:00:00%2B01:00",
        "before=9999-12-31T23:59:59-01:00",
        "before=yesterday",
        "before=2026-01-01T00:00:00Z&before_id=$ne",
        "limit=100000000000000000000000",
    ],
    ids=["before-under-year-1", "before-over-year-9999", "before-not-a-date",
         "before-id-operator", "limit-huge"],
)  # fmt: skip
async def test_bad_message_paging_is_422(sec: Sec, query: str) -> None:
    resp = await sec.client.get(
        f"/api/v1/sessions/{sec.bob.session_id}/messages?{query}", headers=sec.bob.user.auth
    )
    assert (resp.status, (await resp.json())["error"]["code"]) == (422, "invalid_request")
    await sec.still_serving()


async def test_a_lone_surrogate_over_the_socket_is_invalid_message(sec: Sec) -> None:
    mallory = await sec.user()
    ws = await sec.client.ws_connect("/api/v1/ws", headers=mallory.auth)
    assert (await ws.receive_json())["type"] == "ready"
    await ws.send_str('{"id": 1, "type": "send", "session_id": "abc", "content": "\\ud800"}')
    reply = await ws.receive_json()
    assert (reply["id"], reply["error"]["code"]) == (None, "invalid_message")
    await ws.send_json({"id": 2, "type": "ping"})
    assert (await ws.receive_json())["ok"] is True
    await ws.close()
    await sec.still_serving()


async def test_a_lone_surrogate_in_the_auth_frame_is_4401(sec: Sec) -> None:
    ws = await sec.client.ws_connect("/api/v1/ws", headers={"Origin": ALLOWED_ORIGIN})
    await ws.send_str('{"type": "auth", "token": "\\ud800"}')
    assert (await ws.receive()).data == 4401
    await ws.close()
    await sec.still_serving()
