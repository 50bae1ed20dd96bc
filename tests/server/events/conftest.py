"""Fixtures of the event tests: a client of the test Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client of the test Redis (emptied before the test)."""
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()
