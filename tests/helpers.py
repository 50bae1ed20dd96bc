"""Small helpers for API tests: register and log in users."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient


@dataclass
class TestUser:
    """A registered, logged-in user and its bearer header."""

    __test__ = False
    email: str
    password: str
    token: str
    user: dict[str, Any]

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header for this user."""
        return {"Authorization": f"Bearer {self.token}"}


async def make_user(client: TestClient[Any, web.Application], name: str = "ann") -> TestUser:
    """Register and log in a fresh user through the API."""
    email = f"{name}-{secrets.token_hex(4)}@example.test"
    password = "correct horse battery"
    resp = await client.post("/api/v1/auth/register", json={"email": email, "password": password})
    assert resp.status == 201, await resp.text()
    resp = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    return TestUser(email, password, body["access_token"], body["user"])


async def error_of(resp: Any) -> tuple[int, str]:
    """Return (status, error code) of an error response."""
    body = await resp.json()
    return resp.status, body["error"]["code"]
