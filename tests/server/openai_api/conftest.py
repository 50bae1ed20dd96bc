"""Fixtures for the OpenAI-compatible API: the full stack, a user with an API key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.support.api import User, make_user

# The app + demo model + in-process worker of the run tests.
from tests.workers.conftest import demo, run_settings, stack

Client = TestClient[Any, web.Application]
__all__ = ["Keyed", "demo", "keyed", "run_settings", "stack"]


@dataclass
class Keyed:
    """A user, an API key of theirs and the /v1 base URL of the stack."""

    client: Client
    user: User
    key: str
    base_url: str

    @property
    def auth(self) -> dict[str, str]:
        """The API key as a bearer header."""
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture
async def keyed(stack: Client) -> Keyed:
    """A fresh user with an API key on the full stack."""
    user = await make_user(stack)
    resp = await stack.post("/api/v1/api-keys", json={"name": "sdk"}, headers=user.auth)
    key = (await resp.json())["key"]
    return Keyed(stack, user, key, str(stack.make_url("/v1")))
