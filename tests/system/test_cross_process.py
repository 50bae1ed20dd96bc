"""Events cross processes: two web processes and a worker on one Redis; a client of
either web process sees the same events (same seqs, names, data) of a session."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.support.api import Api, Socket, Transcript, follow, stored_outputs
from tests.system.cluster import Cluster

pytestmark = pytest.mark.slow


async def _watch(api: Api, session_id: str) -> tuple[Socket, Transcript]:
    sock = await api.socket()
    subscribed = await sock.call("subscribe", session_id=session_id, after_seq=0)
    assert subscribed["recovered"] and subscribed["last_seq"] == 0
    return sock, Transcript()


async def test_events_reach_clients_of_every_web_process(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    web_a, web_b = await asyncio.gather(cluster.web(http, "web-a"), cluster.web(http, "web-b"))
    await cluster.worker()
    on_a = await Api(http, web_a.url).sign_up("cross@example.test")
    on_b = on_a.on(web_b.url)
    session_id = await on_b.new_session()  # the store is shared: A and B see the same data
    (sock_a, seen_a), (sock_b, seen_b) = await asyncio.gather(
        _watch(on_a, session_id), _watch(on_b, session_id)
    )

    # A message sent over the socket on A ...
    sent = await sock_a.call("send", session_id=session_id, content="What is a monad?")
    first = sent["run"]["run_id"]
    await asyncio.gather(follow(sock_a, seen_a, first), follow(sock_b, seen_b, first))
    # ... and one posted over REST on B, with both clients still watching.
    second = (await on_b.send(session_id, "And a functor?"))["run"]["run_id"]
    await asyncio.gather(follow(sock_a, seen_a, second), follow(sock_b, seen_b, second))
    await asyncio.gather(sock_a.close(), sock_b.close())

    assert seen_a.events == seen_b.events  # byte-for-byte the same frames, seqs from 1
    assert [e["seq"] for e in seen_a.events] == list(range(1, len(seen_a.events) + 1))
    names = seen_a.names()
    assert names.count("message.created") == 2 and names.count("run.completed") == 2
    assert names[-1] == "run.completed"
    for run_id in (first, second):
        run = await on_a.get_run(run_id)
        assert run["status"] == "completed"
        assert seen_a.texts(run_id) == stored_outputs(run)
