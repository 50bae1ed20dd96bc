"""Fixtures for chorus_client tests: a client bound to the full stack (app, demo, worker)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from chorus_client import ChorusClient

from tests.support.api import User, make_user
from tests.workers.conftest import demo, run_settings, stack

Client = TestClient[Any, web.Application]
__all__ = ["demo", "logged_in", "run_settings", "stack"]


@pytest.fixture
async def logged_in(stack: Client) -> AsyncIterator[tuple[ChorusClient, User]]:
    """A ChorusClient logged in as a fresh user of the stack (its own HTTP session)."""
    user = await make_user(stack)
    async with ChorusClient(str(stack.make_url(""))) as client:
        await client.login(user.email, user.password)
        yield client, user
