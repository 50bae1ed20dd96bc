"""Fixtures for system tests: a demo model in the test process, and clusters of Chorus
processes (the test's own data dir, or its own MongoDB database when MONGODB_URL is set;
the test run's Redis, flushed, unless a test brings its own) stopped after the test."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pymongo import AsyncMongoClient

from tests.system.cluster import Cluster
from workers.demo_model import DemoConfig, DemoModelServer

MakeCluster = Callable[[str], Cluster]
MONGODB_URL = os.environ.get("MONGODB_URL") or None
STORE = "mongo (MONGODB_URL)" if MONGODB_URL else "sqlite (MONGODB_URL not set)"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which store the system tests' processes used."""
    terminalreporter.write_line(f"system tests' store: {STORE}")


@pytest.fixture
async def store_env() -> AsyncIterator[dict[str, str]]:
    """The store settings of the test's processes: a MongoDB database private to the test
    (dropped after it) when MONGODB_URL is set, else nothing (SQLite in the data dir)."""
    if MONGODB_URL is None:
        yield {}
        return
    name = f"chorus_system_{secrets.token_hex(6)}"
    try:
        yield {"MONGODB_URL": MONGODB_URL, "MONGODB_DB": name}
    finally:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_URL)
        try:
            await client.drop_database(name)
        finally:
            await client.close()


@pytest.fixture
async def demo() -> AsyncIterator[DemoModelServer]:
    """The demo model every process of the test talks to (tests change its speed)."""
    async with DemoModelServer(DemoConfig(token_delay_ms=5.0)) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """The test's HTTP and WebSocket client session."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def make_cluster(
    tmp_path: Path, demo: DemoModelServer, store_env: dict[str, str]
) -> AsyncIterator[MakeCluster]:
    """Build a cluster on a given Redis URL; every process it started stops at the end."""
    clusters: list[Cluster] = []

    def build(redis_url: str) -> Cluster:
        clusters.append(Cluster(tmp_path / "data", redis_url, demo.base_url, **store_env))
        return clusters[-1]

    try:
        yield build
    finally:
        for group in clusters:
            await group.close()
            print(group.logs())  # shown by pytest when the test failed


@pytest.fixture
def cluster(redis_url: str, make_cluster: MakeCluster) -> Cluster:
    """Start processes with ``cluster.web(http)`` / ``cluster.worker()`` on the test Redis."""
    return make_cluster(redis_url)
