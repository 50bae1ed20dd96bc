"""Nothing lost (docs/websocket.md): clients that drop their socket at random points of a
three-stage run and resume with after_seq/epoch end with exactly the stored outputs,
every seq once and in order. 20 seeded trials, run concurrently on separate sessions."""

from __future__ import annotations

import asyncio
import random
import socket

import aiohttp
import pytest

from tests.support.api import Api, Socket, Transcript, stored_outputs
from tests.system.cluster import Cluster
from workers.demo_model import DemoModelServer

pytestmark = pytest.mark.slow

TRIALS = 20
SEED = 8_675_309


async def _drop(sock: Socket, abrupt: bool) -> None:
    """Leave: a clean close, or the TCP connection cut with no WebSocket close frame."""
    if abrupt:
        raw = sock.ws.get_extra_info("socket")
        if raw is not None:
            raw.shutdown(socket.SHUT_RDWR)
    await sock.close()


async def _pause(rng: random.Random) -> None:
    """Stay away briefly, or now and then for longer than a stage lasts."""
    await asyncio.sleep(rng.uniform(0.6, 2.0) if rng.random() < 0.2 else rng.uniform(0, 0.3))


async def _trial(api: Api, index: int) -> int:
    """One run watched by a client that keeps dropping out; return how often it did."""
    rng = random.Random(SEED + index)
    session_id = await api.new_session()
    sock = await api.socket()
    head = await sock.call("subscribe", session_id=session_id, after_seq=0)
    seen = Transcript(0, head["epoch"])
    run_id = (await api.send(session_id, f"Trial {index}: how do tides work?"))["run"]["run_id"]
    planned, drops = rng.randint(3, 6), 0
    while True:
        budget = rng.randint(1, 12) if drops < planned else None  # events before dropping
        taken = 0
        while not seen.ended(run_id) and (budget is None or taken < budget):
            frame = await sock.frame(within_s=20)
            assert frame["type"] == "event", frame
            seen.add(frame)  # asserts seq == last + 1 and the same epoch
            taken += 1
        if seen.ended(run_id):
            break
        await _drop(sock, abrupt=rng.random() < 0.5)
        drops += 1
        await _pause(rng)
        sock = await api.socket()
        resumed = await sock.call(
            "subscribe", session_id=session_id, after_seq=seen.last_seq, epoch=seen.epoch
        )
        assert resumed["recovered"] is True, resumed
        assert resumed["epoch"] == seen.epoch and resumed["last_seq"] >= seen.last_seq
    await sock.close()

    run = await api.wait_run(run_id, within_s=10)
    assert run["status"] == "completed", run
    assert seen.texts() == stored_outputs(run), (index, drops)
    assert [e["seq"] for e in seen.events] == list(range(1, len(seen.events) + 1))
    assert seen.names()[-1] == "run.completed"
    completed = [e["data"]["output"] for e in seen.events if e["name"] == "stage.completed"]
    assert completed == [s["output"] for s in run["stages"]]
    return drops


async def test_random_disconnects_lose_nothing(
    cluster: Cluster, demo: DemoModelServer, http: aiohttp.ClientSession
) -> None:
    demo.configure(token_delay_ms=15.0)
    web = await cluster.web(http)
    await cluster.worker()
    users = [await Api(http, web.url).sign_up(f"resume-{i}@example.test") for i in range(4)]
    async with asyncio.TaskGroup() as group:  # the first failure cancels the other trials
        trials = [group.create_task(_trial(users[i % 4], i)) for i in range(TRIALS)]
    drops = [t.result() for t in trials]
    assert sum(drops) >= 2 * TRIALS, drops  # several mid-stream drops per run
