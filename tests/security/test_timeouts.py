"""Part 7: a silent Redis or MongoDB fails a call within its deadline instead of hanging it.

The silent server accepts connections and never answers; each test bounds its own wait
far above the configured deadline (a bound, never a race's referee).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from server.config import Settings
from server.redis_client import redis_client
from server.store.mongo import MongoStore


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A TCP server that accepts and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_silent_redis_times_out(silent_port: int) -> None:
    settings = Settings(redis_url=f"redis://127.0.0.1:{silent_port}/0", redis_timeout_s=0.3)
    client = redis_client(settings)
    try:
        async with asyncio.timeout(10):
            with pytest.raises((RedisError, TimeoutError)):
                await client.ping()
    finally:
        await client.aclose()


async def test_a_silent_mongodb_times_out(silent_port: int) -> None:
    store = MongoStore.connect(
        f"mongodb://127.0.0.1:{silent_port}/?directConnection=true", "chorus", timeout_ms=300
    )
    try:
        async with asyncio.timeout(10):
            with pytest.raises(PyMongoError):
                await store.ping()
    finally:
        await store.close()
