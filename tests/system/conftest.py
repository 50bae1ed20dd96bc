"""Fixtures for system tests: a demo model in the test process, and clusters of Chorus
processes (the test's own data dir; the test run's Redis, flushed, unless a test brings
its own) stopped after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from tests.system.cluster import Cluster
from workers.demo_model import DemoConfig, DemoModelServer

MakeCluster = Callable[[str], Cluster]


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
async def make_cluster(tmp_path: Path, demo: DemoModelServer) -> AsyncIterator[MakeCluster]:
    """Build a cluster on a given Redis URL; every process it started stops at the end."""
    clusters: list[Cluster] = []

    def build(redis_url: str) -> Cluster:
        clusters.append(Cluster(tmp_path / "data", redis_url, demo.base_url))
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
