"""Redis killed and restarted empty mid-run. Web and worker reconnect by themselves; the API
answers 503 (never 500) meanwhile; clients get `resync` then `recovered: false` (a new
epoch) and resync over REST, whose running stage carries its partial text; the run in
flight is taken over at once (the worker sees that Redis lost its data) and completes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from server.redis_proc import RedisProcess, free_port
from tests.support.api import Api, Transcript, follow, resynced_texts, stored_outputs
from tests.system.conftest import MakeCluster
from workers.demo_model import DemoModelServer

pytestmark = pytest.mark.slow

# Default recovery settings: nothing here is tuned to make the run recover sooner.
ENV = {"STAGE_TIMEOUT_S": 180}


class RestartableRedis:
    """A private redis-server on a fixed port that the test can restart (empty)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc = RedisProcess(port=self.port)

    @property
    def url(self) -> str:
        """The URL, the same before and after a restart."""
        return self.proc.url

    def stop(self) -> None:
        """Stop the server (nothing is persisted)."""
        self.proc.stop()

    async def start(self) -> None:
        """Start a fresh server on the same port and wait for PING."""
        self.proc = RedisProcess(port=self.port)
        self.proc.start()
        await self.proc.wait_ready()


@pytest.fixture
async def private_redis() -> AsyncIterator[RestartableRedis]:
    """A Redis of this test's own (the shared one must not be restarted)."""
    redis = RestartableRedis()
    await redis.start()
    try:
        yield redis
    finally:
        redis.stop()


async def _status(http: aiohttp.ClientSession, url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with http.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=3)) as resp:
            return resp.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


async def _poll(
    http: aiohttp.ClientSession, url: str, seen: list[int], token: str | None = None
) -> None:
    while True:
        seen.append(await _status(http, url, token))
        await asyncio.sleep(0.05)


async def _until_status(
    http: aiohttp.ClientSession, url: str, status: int, within_s: float
) -> None:
    async with asyncio.timeout(within_s):
        while True:
            if await _status(http, url) == status:
                return
            await asyncio.sleep(0.05)


async def test_redis_restart_mid_run(
    private_redis: RestartableRedis,
    make_cluster: MakeCluster,
    demo: DemoModelServer,
    http: aiohttp.ClientSession,
) -> None:
    demo.configure(token_delay_ms=20.0)
    cluster = make_cluster(private_redis.url)
    web = await cluster.web(http, **ENV)
    worker = await cluster.worker(**ENV)
    api = await Api(http, web.url).sign_up("restart@example.test")
    session_id = await api.new_session()
    sock = await api.socket()
    assert (await sock.call("subscribe", session_id=session_id, after_seq=0))["recovered"]
    run_id = (await api.send(session_id, "Why is the sky blue?"))["run"]["run_id"]
    before = Transcript()
    async with asyncio.timeout(15):
        while not any(e["name"] == "stage.delta" and e["data"]["stage"] == "draft"
                      for e in before.events):  # fmt: skip
            frame = await sock.frame()
            if frame["type"] == "event":
                before.add(frame)

    health: list[int] = []
    api_statuses: list[int] = []
    pollers = [
        asyncio.create_task(_poll(http, f"{web.url}/healthz", health)),
        asyncio.create_task(_poll(http, f"{web.url}/api/v1/sessions", api_statuses, api.token)),
    ]
    try:
        private_redis.stop()
        await _until_status(http, f"{web.url}/readyz", 503, within_s=5)
        await asyncio.sleep(2.0)  # the outage itself (not a wait for an outcome)
        await private_redis.start()
        await _until_status(http, f"{web.url}/readyz", 200, within_s=15)
    finally:
        for poller in pollers:
            poller.cancel()
        await asyncio.gather(*pollers, return_exceptions=True)
    assert health and set(health) == {200}, health
    # While Redis was down the API said 503 (with Retry-After), never 500.
    assert 503 in api_statuses and set(api_statuses) <= {200, 503}, api_statuses

    # The web process's feed had a gap: the socket is told so and resubscribes.
    async with asyncio.timeout(15):
        while True:
            frame = await sock.frame(within_s=15)
            if frame["type"] == "resync":
                assert session_id in frame["session_ids"]
                break
            assert frame["type"] == "event", frame
            before.add(frame)
    resumed = await sock.call(
        "subscribe", session_id=session_id, after_seq=before.last_seq, epoch=before.epoch
    )
    assert resumed["recovered"] is False  # Redis forgot the history ...
    assert resumed["epoch"] != before.epoch  # ... and says so with a new epoch
    # The client reloads over REST, then follows the new epoch with no gap.
    after = Transcript(resumed["last_seq"], resumed["epoch"])
    rest_view = await api.get_run(run_id)
    assert rest_view["status"] in ("running", "queued", "completed")
    for stage in rest_view["stages"]:
        if "partial_epoch" in stage:
            assert stage["partial_epoch"] == resumed["epoch"]

    # The run in flight ends, resumed from its checkpoint (the stage running at the outage
    # restarted; the stage before it not redone).
    if rest_view["status"] != "completed":
        await follow(sock, after, run_id, within_s=45)
    run = await api.wait_run(run_id, within_s=5)
    assert run["status"] == "completed", run
    assert run["stages"][0]["attempts"] == 1, run
    assert run["stages"][1]["attempts"] == 2, run
    assert run["recoveries"] == 1 and run["generation"] == 1, run
    answers = [m for m in await api.messages(session_id) if m["role"] == "assistant"]
    assert [m["content"] for m in answers] == [run["stages"][-1]["output"]]
    # What the resynced client shows (REST state, then live events) is what was stored,
    # whichever point of the restarted stage it resynced at.
    assert resynced_texts(rest_view, after) == stored_outputs(run)

    # The server keeps serving: a new login, a new session, a message that completes.
    assert worker.alive
    other = await Api(http, web.url).sign_up("after-restart@example.test")
    new_session = await other.new_session()
    sock2 = await other.socket()
    assert (await sock2.call("subscribe", session_id=new_session, after_seq=0))["recovered"]
    new_run = (await other.send(new_session, "Still there?"))["run"]["run_id"]
    fresh = Transcript()
    await follow(sock2, fresh, new_run, within_s=30)
    assert (await other.get_run(new_run))["status"] == "completed"
    assert fresh.texts() == stored_outputs(await other.get_run(new_run))
    await asyncio.gather(sock.close(), sock2.close())
