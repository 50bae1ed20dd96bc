"""Recovery on real processes, default lease settings and a 3-minute stage deadline:

- a zombie worker (SIGSTOPped mid-stage, resumed after its stage was taken over)
  publishes nothing and writes nothing;
- a worker stopped with SIGTERM hands its running stage to another worker at once;
- the embedded server stopped mid-run (Ctrl-C) resumes the run when it starts again.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import aiohttp
import pytest

from server.redis_proc import free_port
from tests.support.api import Api, Socket, Transcript, follow, stored_outputs
from tests.system.cluster import ROOT, ChorusProcess, Cluster
from workers.demo_model import DemoModelServer

pytestmark = pytest.mark.slow
ENV = {"STAGE_TIMEOUT_S": 180}


async def _until_draft_streams(sock: Socket, transcript: Transcript) -> None:
    async with asyncio.timeout(20):
        while not any(
            e["name"] == "stage.delta" and e["data"]["stage"] == "draft" for e in transcript.events
        ):
            frame = await sock.frame()
            if frame["type"] == "event":
                transcript.add(frame)


async def _start_run(api: Api) -> tuple[str, str, Socket, Transcript]:
    session_id = await api.new_session()
    sock = await api.socket()
    assert (await sock.call("subscribe", session_id=session_id, after_seq=0))["recovered"]
    run_id = (await api.send(session_id, "How do lighthouses work?"))["run"]["run_id"]
    transcript = Transcript()
    await _until_draft_streams(sock, transcript)
    return session_id, run_id, sock, transcript


async def _snapshot(api: Api, session_id: str, run_id: str) -> dict[str, Any]:
    return {"run": await api.get_run(run_id), "messages": await api.messages(session_id)}


async def test_a_zombie_worker_publishes_and_writes_nothing(
    cluster: Cluster, demo: DemoModelServer, http: aiohttp.ClientSession
) -> None:
    demo.configure(token_delay_ms=100.0)
    web = await cluster.web(http, **ENV)
    zombie = await cluster.worker("worker-1", **ENV)
    api = await Api(http, web.url).sign_up("zombie@example.test")
    session_id, run_id, sock, transcript = await _start_run(api)
    demo.configure(token_delay_ms=60_000.0)  # hold the draft while worker-2 starts
    await cluster.worker("worker-2", **ENV)
    zombie.proc.send_signal(signal.SIGSTOP)
    demo.configure(token_delay_ms=100.0)  # the taken-over draft streams at 100 ms again
    try:
        await follow(sock, transcript, run_id, within_s=60)  # taken over, then completed
        before = await _snapshot(api, session_id, run_id)
        assert before["run"]["status"] == "completed"
        assert before["run"]["generation"] == 1 and before["run"]["recoveries"] == 1
    finally:
        zombie.proc.send_signal(signal.SIGCONT)
    # The zombie wakes up mid-stream, finds its generation outdated and stops by itself.
    await zombie.wait_output("was taken over (generation 0 is outdated)", within_s=30)
    assert await _snapshot(api, session_id, run_id) == before
    head = await sock.call(
        "subscribe", session_id=session_id, after_seq=transcript.last_seq, epoch=transcript.epoch
    )
    assert head["recovered"] and head["last_seq"] == transcript.last_seq  # nothing published
    assert transcript.texts() == stored_outputs(before["run"])
    answers = [m for m in before["messages"] if m["role"] == "assistant"]
    assert len(answers) == 1
    await sock.close()


async def test_sigterm_hands_the_running_stage_to_another_worker(
    cluster: Cluster, demo: DemoModelServer, http: aiohttp.ClientSession
) -> None:
    demo.configure(token_delay_ms=100.0)
    env = {**ENV, "WORKER_GRACE_S": 0.5}  # the draft takes ~5 s: longer than the grace
    web = await cluster.web(http, **env)
    leaving = await cluster.worker("worker-1", **env)
    api = await Api(http, web.url).sign_up("handback@example.test")
    session_id, run_id, sock, transcript = await _start_run(api)
    demo.configure(token_delay_ms=60_000.0)  # hold the draft while worker-2 starts
    await cluster.worker("worker-2", **env)
    leaving.proc.send_signal(signal.SIGTERM)
    demo.configure(token_delay_ms=100.0)  # the handed-back draft streams at 100 ms again
    await leaving.wait_output("handed 1 running stage(s) back", within_s=15)
    await follow(sock, transcript, run_id, within_s=60)
    run = await api.get_run(run_id)
    assert run["status"] == "completed" and run["recoveries"] == 1
    assert [s["attempts"] for s in run["stages"]] == [1, 2, 1]
    assert transcript.texts() == stored_outputs(run)
    assert [m["role"] for m in await api.messages(session_id)] == ["user", "assistant"]
    await sock.close()


async def _embedded(cluster: Cluster, port: int, name: str) -> ChorusProcess:
    """`python -m chorus` in the embedded mode (private Redis, in-process worker)."""
    env = cluster.environ(PORT=port, EMBEDDED_WORKER="1", **ENV)
    env.pop("REDIS_URL")
    log = cluster.data_dir.parent / f"{name}.log"
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server", cwd=ROOT, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    child = ChorusProcess(name, proc, log, port)
    cluster.procs.append(child)
    return child


async def test_the_embedded_server_resumes_a_run_after_a_restart(
    cluster: Cluster, demo: DemoModelServer, http: aiohttp.ClientSession
) -> None:
    demo.configure(token_delay_ms=100.0)
    port = free_port()
    first = await _embedded(cluster, port, "embedded-1")
    await first.wait_ready(http)
    api = await Api(http, first.url).sign_up("embedded@example.test")
    session_id, run_id, sock, _transcript = await _start_run(api)
    await sock.close()
    first.proc.send_signal(signal.SIGINT)  # Ctrl-C: its private Redis goes with it
    async with asyncio.timeout(30):
        await first.proc.wait()
    second = await _embedded(cluster, port, "embedded-2")
    await second.wait_ready(http)
    # The run was taken over at start-up, not left `running` for the reaper.
    run = await api.wait_run(run_id, within_s=60)
    assert run["status"] == "completed", run
    # Shutdown let the running stage finish within WORKER_GRACE_S or handed it back: either
    # way no completed stage was redone, and the run was recovered once, at start-up.
    assert run["stages"][0]["attempts"] == 1 and run["recoveries"] == 1, run
    assert all(s["attempts"] <= 2 for s in run["stages"]), run
    session = await api.call("GET", f"/api/v1/sessions/{session_id}")
    assert session["status"] == "completed" and session["active_run_id"] is None
    answers = [m for m in session["messages"] if m["role"] == "assistant"]
    assert [a["content"] for a in answers] == [run["stages"][-1]["output"]]
