"""Shared fixtures: one private redis-server per test run, flushed before each test."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_sync
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.config import Settings
from server.redis_proc import RedisProcess

TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
ALLOWED_ORIGIN = "http://ui.example.test"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisProcess]:
    """A real redis-server on a free port, private to this test run."""
    proc = RedisProcess()
    proc.start()
    client = redis_sync.Redis.from_url(proc.url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis_sync.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    client.close()
    yield proc
    proc.stop()


@pytest.fixture
def redis_url(redis_server: RedisProcess) -> str:
    """The test Redis, emptied before the test."""
    client = redis_sync.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    """Settings for one test: its own data dir, the test Redis, a fast bcrypt cost."""
    return Settings(
        redis_url=redis_url,
        secret_key=TEST_SECRET,
        data_dir=tmp_path / "data",
        bcrypt_rounds=4,
        allowed_origins=(ALLOWED_ORIGIN,),
    )


ClientFactory = Callable[..., Awaitable[TestClient[Any, web.Application]]]


@pytest.fixture
async def client(
    aiohttp_client: ClientFactory, settings: Settings
) -> AsyncIterator[TestClient[Any, web.Application]]:
    """A test client of the app built by the production factory."""
    yield await aiohttp_client(create_app(settings))
