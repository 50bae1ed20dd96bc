"""An approval gate across restarts of real processes: a run of `reviewed` pauses after its
plan; its worker and its web process are stopped (SIGTERM) while it waits; the user
approves (with an edit) through a new web process while no worker runs, so the next
stage's job waits in Redis; a worker started afterwards completes the run."""

from __future__ import annotations

import aiohttp
import pytest

from tests.support.api import Api
from tests.system.cluster import Cluster
from workers.demo_model import DemoModelServer

pytestmark = pytest.mark.slow
EDITED = "1. Say what a gate is\n2. Mention APPROVED-ACROSS-RESTARTS"


async def test_an_approval_across_restarts_of_web_and_worker_completes_the_run(
    cluster: Cluster, demo: DemoModelServer, http: aiohttp.ClientSession
) -> None:
    web = await cluster.web(http, name="web-1")
    worker = await cluster.worker("worker-1")
    api = await Api(http, web.url).sign_up("gate@example.test")
    session_id = await api.new_session("reviewed")
    run_id = (await api.send(session_id, "What is an approval gate?"))["run"]["run_id"]
    paused = await api.wait_run(run_id, statuses=("awaiting_approval",))
    assert paused["awaiting_stage"] == 0 and paused["stages"][1]["status"] == "pending"

    await worker.stop()  # the gate holds no worker: nothing is lost with it
    await web.stop()
    web = await cluster.web(http, name="web-2")
    api = api.on(web.url)
    still = await api.get_run(run_id)
    assert still["status"] == "awaiting_approval" and still["stages"][0]["output"]
    session = await api.call("GET", f"/api/v1/sessions/{session_id}")
    assert session["status"] == "awaiting_approval"
    assert session["active_run"]["run_id"] == run_id

    approved = await api.call("POST", f"/api/v1/runs/{run_id}/approve", {"output": EDITED}, 202)
    assert approved["run"]["status"] == "queued"
    assert (await api.get_run(run_id))["status"] == "queued"  # no worker yet: the job waits

    await cluster.worker("worker-2")
    done = await api.wait_run(run_id, within_s=60)
    assert done["status"] == "completed", done
    assert done["stages"][0]["output"] == EDITED
    assert done["stages"][0]["output_original"] == paused["stages"][0]["output"]
    assert [s["attempts"] for s in done["stages"]] == [1, 1, 1]
    assert done["recoveries"] == 0 and done["generation"] == 0
    answers = [m for m in await api.messages(session_id) if m["role"] == "assistant"]
    assert [a["content"] for a in answers] == [done["stages"][-1]["output"]]
