"""Accounts over HTTP: register, login, logout, me, and their bad inputs."""

from __future__ import annotations

import io
import time
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from tests.conftest import ALLOWED_ORIGIN, TEST_SECRET
from tests.support.api import error_of, make_user

Client = TestClient[Any, web.Application]
REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"


async def test_register_returns_user_without_hash(client: Client) -> None:
    resp = await client.post(
        REGISTER, json={"email": " Ann@Example.TEST ", "password": "longenough", "name": "Ann"}
    )
    assert resp.status == 201
    user = (await resp.json())["user"]
    assert user["email"] == "ann@example.test"
    assert user["name"] == "Ann"
    assert "password_hash" not in user
    stored = await client.app[keys.STORE].get_user_by_email("ann@example.test")
    assert stored is not None and stored.password_hash.startswith("$2b$04$")


async def test_register_same_email_is_409(client: Client) -> None:
    body = {"email": "dup@example.test", "password": "longenough"}
    assert (await client.post(REGISTER, json=body)).status == 201
    body["email"] = "DUP@example.test"
    assert await error_of(await client.post(REGISTER, json=body)) == (409, "email_taken")


@pytest.mark.parametrize(
    "body",
    [
        {"email": "a@example.test"},
        {"password": "longenough"},
        {"email": "not-an-email", "password": "longenough"},
        {"email": "a@example.test", "password": "short"},
        {"email": "a@example.test", "password": 12345678},
        {"email": {"$ne": None}, "password": "longenough"},
        {"email": "a@example.test", "password": "longenough", "admin": True},
        {"email": "a@example.test", "password": "x" * 73},
        {"email": ["a@example.test"], "password": "longenough"},
    ],
    ids=["no-password", "no-email", "bad-email", "short", "int-password", "operator", "extra",
         "over-72-bytes", "list-email"],
)  # fmt: skip
async def test_register_bad_input_is_422(client: Client, body: dict[str, Any]) -> None:
    resp = await client.post(REGISTER, json=body)
    status, code = await error_of(resp)
    assert (status, code) == (422, "invalid_request")


async def test_register_error_names_the_field(client: Client) -> None:
    resp = await client.post(REGISTER, json={"email": "a@example.test", "password": "short"})
    assert "password" in (await resp.json())["error"]["message"].lower()


async def test_malformed_json_is_400(client: Client) -> None:
    resp = await client.post(
        REGISTER, data=b'{"email": ', headers={"Content-Type": "application/json"}
    )
    assert await error_of(resp) == (400, "invalid_json")


async def test_non_object_json_is_422(client: Client) -> None:
    resp = await client.post(REGISTER, json=["a", "b"])
    assert await error_of(resp) == (422, "invalid_request")


async def test_wrong_content_type_is_415(client: Client) -> None:
    resp = await client.post(REGISTER, data="email=a", headers={"Content-Type": "text/plain"})
    assert await error_of(resp) == (415, "unsupported_media_type")


async def test_oversize_body_is_413(client: Client) -> None:
    big = b'{"email": "' + b"a" * (1024 * 1024 + 10) + b'"}'
    resp = await client.post(
        REGISTER, data=io.BytesIO(big), headers={"Content-Type": "application/json"}
    )
    assert await error_of(resp) == (413, "payload_too_large")


async def test_login_issues_token_with_required_claims(client: Client) -> None:
    user = await make_user(client)
    claims = jwt.decode(user.token, TEST_SECRET, algorithms=["HS256"])
    assert claims["sub"] == user.user["user_id"]
    assert claims["email"] == user.email
    assert claims["exp"] - claims["iat"] == 24 * 3600
    assert claims["jti"]
    resp = await client.get("/api/v1/auth/me", headers=user.auth)
    assert resp.status == 200
    assert (await resp.json())["user"]["email"] == user.email


async def test_login_answer_shape(client: Client) -> None:
    await client.post(REGISTER, json={"email": "s@example.test", "password": "longenough"})
    resp = await client.post(LOGIN, json={"email": "S@example.test", "password": "longenough"})
    body = await resp.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 24 * 3600
    assert set(body) == {"access_token", "token_type", "expires_in", "user"}


async def test_unknown_email_and_wrong_password_answer_alike(client: Client) -> None:
    user = await make_user(client)
    wrong = await client.post(LOGIN, json={"email": user.email, "password": "wrong-password"})
    unknown = await client.post(
        LOGIN, json={"email": "nobody@example.test", "password": "wrong-password"}
    )
    assert wrong.status == unknown.status == 401
    assert await wrong.json() == await unknown.json()
    assert (await wrong.json())["error"]["code"] == "invalid_credentials"


async def test_login_bad_input(client: Client) -> None:
    resp = await client.post(LOGIN, json={"email": {"$gt": ""}, "password": "x"})
    assert await error_of(resp) == (422, "invalid_request")


@pytest.mark.parametrize(
    "make_token",
    [
        lambda c: jwt.encode({**c, "exp": int(time.time()) - 10}, TEST_SECRET, algorithm="HS256"),
        lambda c: jwt.encode(c, "another-secret-that-is-also-long-enough!!", algorithm="HS256"),
        lambda c: jwt.encode(c, None, algorithm="none"),
        lambda c: jwt.encode({k: v for k, v in c.items() if k != "exp"}, TEST_SECRET,
                             algorithm="HS256"),
        lambda c: "not.a.token",
    ],
    ids=["expired", "forged", "alg-none", "no-exp", "garbage"],
)  # fmt: skip
async def test_bad_tokens_are_401(client: Client, make_token: Any) -> None:
    user = await make_user(client)
    claims = jwt.decode(user.token, TEST_SECRET, algorithms=["HS256"])
    token = make_token(claims)
    resp = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert await error_of(resp) == (401, "unauthorized")


async def test_no_credentials_is_401(client: Client) -> None:
    client.session.cookie_jar.clear()
    assert await error_of(await client.get("/api/v1/auth/me")) == (401, "unauthorized")


async def test_logout_revokes_token(client: Client) -> None:
    user = await make_user(client)
    resp = await client.post("/api/v1/auth/logout", headers=user.auth)
    assert resp.status == 204
    resp = await client.get("/api/v1/auth/me", headers=user.auth)
    assert await error_of(resp) == (401, "unauthorized")
    jti = jwt.decode(user.token, TEST_SECRET, algorithms=["HS256"])["jti"]
    ttl = await client.app[keys.REDIS].ttl(client.app[keys.REDIS_KEYS].jwt_denied(jti))
    assert 24 * 3600 - 60 < ttl <= 24 * 3600 + 1


async def test_cookie_login_and_csrf_rules(client: Client) -> None:
    user = await make_user(client)  # the login set the session cookie on this client
    assert (await client.get("/api/v1/auth/me")).status == 200
    body = {"title": "via cookie"}
    no_header = await client.post("/api/v1/sessions", json=body, headers={"Origin": ALLOWED_ORIGIN})
    assert await error_of(no_header) == (403, "forbidden")
    bad_origin = await client.post(
        "/api/v1/sessions", json=body,
        headers={"X-Requested-With": "fetch", "Origin": "http://evil.example"},
    )  # fmt: skip
    assert await error_of(bad_origin) == (403, "forbidden")
    ok = await client.post(
        "/api/v1/sessions", json=body,
        headers={"X-Requested-With": "fetch", "Origin": ALLOWED_ORIGIN},
    )  # fmt: skip
    assert ok.status == 201
    assert (await ok.json())["user_id"] == user.user["user_id"]


async def test_cookie_flags(client: Client) -> None:
    await client.post(REGISTER, json={"email": "c@example.test", "password": "longenough"})
    resp = await client.post(LOGIN, json={"email": "c@example.test", "password": "longenough"})
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


async def test_cookie_logout_clears_session(client: Client) -> None:
    await make_user(client)
    headers = {"X-Requested-With": "fetch", "Origin": ALLOWED_ORIGIN}
    assert (await client.post("/api/v1/auth/logout", headers=headers)).status == 204
    assert await error_of(await client.get("/api/v1/auth/me")) == (401, "unauthorized")


async def test_login_rate_limited_per_email(client: Client) -> None:
    body = {"email": "flood@example.test", "password": "wrong-password"}
    limit = client.app[keys.SETTINGS].limits.login_per_email
    for _ in range(limit):
        assert (await client.post(LOGIN, json=body)).status == 401
    resp = await client.post(LOGIN, json=body)
    assert await error_of(resp) == (429, "rate_limited")
    assert int(resp.headers["Retry-After"]) >= 1
    assert resp.headers["X-RateLimit-Limit"] == str(limit)
    assert resp.headers["X-RateLimit-Remaining"] == "0"


async def test_default_bcrypt_cost_is_12() -> None:
    from server.config import Settings

    assert Settings.from_env({}).bcrypt_rounds == 12
