"""Approval gates over real Redis, the real store and the demo model: a run pauses after a
stage with ``approve = true`` (no job, no lease), the user approves (editing the output)
or rejects over REST or the WebSocket, races of approve / reject / cancel / the timeout
have one winner (forced by order), the reaper and takeovers leave a paused run alone, and
an approval given across a worker restart (no worker running) completes the run.

Most tests drive the worker's StageExecutor by hand (the ``app`` and ``worker`` fixtures:
no job loop behind the test's back); the restart test runs real in-process workers.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from arq.jobs import Job, JobStatus

from server import keys
from server.config import ConfigError, Settings
from server.errors import NotAwaitingApproval
from server.store.models import utcnow
from tests.server.ws.conftest import Ws
from tests.support.api import User, error_of, make_user
from tests.workers.conftest import Client, session_events, wait_run
from workers.context import DEPS, WorkerDeps
from workers.executor import StageExecutor
from workers.inprocess import InProcessWorker
from workers.jobs import reap_stale_runs

EDITED = "1. Greet the user warmly\n2. Mention APPROVED-PLAN-MARKER"


async def _send(app: Client, user: User, pipeline: str = "reviewed") -> dict[str, Any]:
    """Create a session on ``pipeline`` and post a message: the 202 body."""
    resp = await app.post("/api/v1/sessions", json={"pipeline": pipeline}, headers=user.auth)
    assert resp.status == 201, await resp.text()
    sid = (await resp.json())["session_id"]
    resp = await app.post(
        f"/api/v1/sessions/{sid}/messages", json={"content": "hello"}, headers=user.auth
    )
    assert resp.status == 202, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def _names(app: Client, session_id: str) -> list[str]:
    return [e["name"] for e in await session_events(app, session_id)]


async def _job_status(worker: WorkerDeps, run_id: str, index: int, generation: int) -> JobStatus:
    job_id = worker.keys.stage_job_id(run_id, index, generation)
    return await Job(job_id, worker.redis, _queue_name=worker.keys.arq_queue()).status()


async def _at_gate(app: Client, worker: WorkerDeps) -> tuple[User, dict[str, Any]]:
    """A run of `reviewed` whose plan was executed: it awaits approval of stage 0."""
    user = await make_user(app)
    run = (await _send(app, user))["run"]
    await StageExecutor(worker).execute(run["run_id"], 0, 0)
    return user, run


async def test_a_gate_pauses_the_run_holding_no_job_and_no_lease(
    app: Client, worker: WorkerDeps
) -> None:
    user, run = await _at_gate(app, worker)
    body = await (await app.get(f"/api/v1/runs/{run['run_id']}", headers=user.auth)).json()
    assert body["status"] == "awaiting_approval" and body["awaiting_stage"] == 0
    assert body["awaiting_since"] is not None
    assert [s["status"] for s in body["stages"]] == ["completed", "pending", "pending"]
    assert [s["approve"] for s in body["stages"]] == [True, False, False]
    plan = body["stages"][0]["output"]
    assert plan
    session = await (
        await app.get(f"/api/v1/sessions/{run['session_id']}", headers=user.auth)
    ).json()
    assert session["status"] == "awaiting_approval"
    assert session["active_run"]["status"] == "awaiting_approval"
    assert session["active_run"]["run_id"] == run["run_id"]
    events = await session_events(app, run["session_id"])
    paused = [e for e in events if e["name"] == "run.awaiting_approval"]
    assert len(paused) == 1
    assert {k: paused[0]["data"][k] for k in ("stage", "index", "output")} == {
        "stage": "plan", "index": 0, "output": plan,
    }  # fmt: skip
    # Nothing of a worker is held: no job for the next stage, no lease.
    assert await _job_status(worker, run["run_id"], 1, 0) is JobStatus.not_found
    assert await worker.leases.live([run["run_id"]]) == set()
    # The session stays claimed: a new message is refused (reject) or waits its turn.
    resp = await app.post(
        f"/api/v1/sessions/{run['session_id']}/messages",
        json={"content": "more", "double_texting": "reject"}, headers=user.auth,
    )  # fmt: skip
    assert await error_of(resp) == (409, "session_busy")
    resp = await app.post(
        f"/api/v1/sessions/{run['session_id']}/messages", json={"content": "more"},
        headers=user.auth,
    )  # fmt: skip
    assert resp.status == 202 and (await resp.json())["outcome"] == "queued"
    # A duplicate execution of the gate's job pauses nothing twice.
    await StageExecutor(worker).execute(run["run_id"], 0, 0)
    assert (await _names(app, run["session_id"])).count("run.awaiting_approval") == 1
    # A stray job for the next stage starts nothing while the run awaits.
    await StageExecutor(worker).execute(run["run_id"], 1, 0)
    stored = await worker.store.get_run(run["run_id"])
    assert stored is not None and stored.status == "awaiting_approval"
    assert stored.stages[1].attempts == 0


async def test_approve_with_an_edited_output_goes_on_with_it_and_completes(
    app: Client, worker: WorkerDeps
) -> None:
    user, run = await _at_gate(app, worker)
    original = (await worker.store.get_run(run["run_id"])).stages[0].output  # type: ignore[union-attr]
    resp = await app.post(
        f"/api/v1/runs/{run['run_id']}/approve", json={"output": EDITED}, headers=user.auth
    )
    assert resp.status == 202, await resp.text()
    approved = (await resp.json())["run"]
    assert approved["status"] == "queued" and approved["awaiting_stage"] is None
    gate = approved["stages"][0]
    assert gate["output"] == EDITED and gate["output_original"] == original
    assert gate["approved_at"] is not None
    session = await worker.store.get_session(run["user_id"], run["session_id"])
    assert session is not None and session.status == "queued"
    assert await _job_status(worker, run["run_id"], 1, 0) is JobStatus.queued
    stored = await worker.store.get_run(run["run_id"])
    assert stored is not None
    prompt = await StageExecutor(worker)._prompt(stored, 1)
    assert "APPROVED-PLAN-MARKER" in prompt[0]["content"]  # the drafter reads the edited plan
    for index in (1, 2):
        await StageExecutor(worker).execute(run["run_id"], index, 0)
    done = await wait_run(app, user.auth, run["run_id"])
    assert done["status"] == "completed"
    names = await _names(app, run["session_id"])
    at = names.index("run.awaiting_approval")
    assert names[at + 1 : at + 3] == ["run.approved", "run.queued"]
    assert names.count("run.started") == 2 and names[-1] == "run.completed"
    approved_event = next(
        e for e in await session_events(app, run["session_id"]) if e["name"] == "run.approved"
    )
    assert approved_event["data"] == {"stage": "plan", "index": 0, "output": EDITED, "edited": True}


async def test_approve_without_a_body_keeps_the_output(app: Client, worker: WorkerDeps) -> None:
    user, run = await _at_gate(app, worker)
    resp = await app.post(f"/api/v1/runs/{run['run_id']}/approve", headers=user.auth)
    assert resp.status == 202, await resp.text()
    gate = (await resp.json())["run"]["stages"][0]
    assert gate["output"] and gate["output_original"] is None


async def test_reject_ends_the_run_cancelled_and_frees_the_session(
    app: Client, worker: WorkerDeps
) -> None:
    user, run = await _at_gate(app, worker)
    resp = await app.post(
        f"/api/v1/runs/{run['run_id']}/reject", json={"reason": "off topic"}, headers=user.auth
    )
    assert resp.status == 200, await resp.text()
    ended = (await resp.json())["run"]
    assert ended["status"] == "cancelled" and ended["error"] == "rejected: off topic"
    assert [s["status"] for s in ended["stages"]] == ["completed", "cancelled", "cancelled"]
    assert ended["awaiting_stage"] is None
    session = await worker.store.get_session(run["user_id"], run["session_id"])
    assert session is not None and session.active_run_id is None
    assert session.status == "cancelled"
    events = await session_events(app, run["session_id"])
    assert [e["name"] for e in events][-2:] == ["run.rejected", "run.cancelled"]
    assert events[-2]["data"] == {"stage": "plan", "index": 0, "reason": "off topic"}
    assert events[-1]["data"] == {"error": "rejected: off topic"}
    for verb in ("approve", "reject"):  # the run is over: no second answer
        resp = await app.post(f"/api/v1/runs/{run['run_id']}/{verb}", headers=user.auth)
        assert await error_of(resp) == (409, "not_awaiting_approval")


async def test_approve_then_reject_has_one_winner(app: Client, worker: WorkerDeps) -> None:
    user, run = await _at_gate(app, worker)
    assert (
        await app.post(f"/api/v1/runs/{run['run_id']}/approve", headers=user.auth)
    ).status == 202
    resp = await app.post(f"/api/v1/runs/{run['run_id']}/reject", headers=user.auth)
    assert await error_of(resp) == (409, "not_awaiting_approval")
    stored = await worker.store.get_run(run["run_id"])
    assert stored is not None and stored.status == "queued"
    names = await _names(app, run["session_id"])
    assert "run.rejected" not in names and names.count("run.approved") == 1


async def test_answers_read_before_a_winning_cancel_lose(app: Client, worker: WorkerDeps) -> None:
    user, run = await _at_gate(app, worker)
    runs = app.app[keys.RUN_SERVICE]
    stale = await worker.store.get_run(run["run_id"])  # both answers read the awaiting run ...
    assert stale is not None and stale.status == "awaiting_approval"
    resp = await app.post(f"/api/v1/runs/{run['run_id']}/cancel", headers=user.auth)
    cancelled = (await resp.json())["run"]  # ... the cancel lands first and ends it at once
    assert cancelled["status"] == "cancelled" and cancelled["error"] is None
    try:
        await runs.approve(stale, EDITED)
    except NotAwaitingApproval:
        pass
    else:
        raise AssertionError("an approve read before the cancel must lose")
    assert await runs.end_awaiting(stale, "rejected", "run.rejected", {"reason": ""}) is None
    stored = await worker.store.get_run(run["run_id"])
    assert stored is not None and stored.status == "cancelled"
    assert stored.stages[0].output != EDITED
    assert await _job_status(worker, run["run_id"], 1, 0) is JobStatus.not_found
    names = await _names(app, run["session_id"])
    assert names.count("run.cancelled") == 1
    assert "run.approved" not in names and "run.rejected" not in names


async def test_an_approve_landing_between_a_cancels_flag_and_its_end_loses(
    app: Client, worker: WorkerDeps
) -> None:
    user, run = await _at_gate(app, worker)
    runs = app.app[keys.RUN_SERVICE]
    await worker.store.update_run(run["run_id"], {"cancel_requested": True})  # the cancel's flag
    resp = await app.post(f"/api/v1/runs/{run['run_id']}/approve", headers=user.auth)
    assert await error_of(resp) == (409, "not_awaiting_approval")
    flagged = await worker.store.get_run(run["run_id"])
    assert flagged is not None
    ended = await runs.request_cancel(flagged)  # ... and the cancel ends it
    assert ended.status == "cancelled"
    assert await _job_status(worker, run["run_id"], 1, 0) is JobStatus.not_found


async def test_a_reject_read_before_an_approve_loses(app: Client, worker: WorkerDeps) -> None:
    _user, run = await _at_gate(app, worker)
    runs = app.app[keys.RUN_SERVICE]
    stale = await worker.store.get_run(run["run_id"])
    assert stale is not None
    await runs.approve(stale)
    assert await runs.end_awaiting(stale, "rejected", "run.rejected", {"reason": ""}) is None
    stored = await worker.store.get_run(run["run_id"])
    assert stored is not None and stored.status == "queued" and stored.error is None


async def test_takeovers_and_the_reaper_leave_an_awaiting_run_alone(
    app: Client, worker: WorkerDeps
) -> None:
    _user, run = await _at_gate(app, worker)
    await worker.store.update_run(  # long unchanged: the reaper would call it stale
        run["run_id"], {"updated_at": utcnow() - timedelta(hours=1)}
    )
    assert await worker.runs.reap(min_age_s=0) == 0
    assert not await worker.runs.take_over(run["run_id"], 0, 0, "lease lapsed")
    assert not await worker.runs.take_over(run["run_id"], 0, 1, "reaper")
    assert await worker.runs.repair_sessions(min_age_s=0) == 0
    stored = await worker.store.get_run(run["run_id"])
    assert stored is not None and stored.status == "awaiting_approval"
    assert (stored.generation, stored.recoveries) == (0, 0)
    assert await _job_status(worker, run["run_id"], 1, 0) is JobStatus.not_found
    session = await worker.store.get_session(run["user_id"], run["session_id"])
    assert session is not None and session.active_run_id == run["run_id"]


async def test_a_worker_dying_between_the_gate_and_the_pause_is_paused_by_its_takeover(
    app: Client, worker: WorkerDeps
) -> None:
    user = await make_user(app)
    sent = (await _send(app, user))["run"]
    run_id = sent["run_id"]
    loaded = await worker.store.get_run(run_id)
    assert loaded is not None
    started = await worker.runs.start_stage(loaded, 0)
    assert started is not None
    # The checkpoint is written, then the worker dies before it advances the run.
    done = await worker.runs.complete_stage(started, 0, "the plan", "demo", started.usage)
    assert done is not None and done.status == "running"
    assert not await worker.runs.take_over(run_id, 0, 0, "lease lapsed")
    stored = await worker.store.get_run(run_id)
    assert stored is not None and stored.status == "awaiting_approval"
    assert stored.generation == 0 and stored.awaiting_stage == 0
    assert await _job_status(worker, run_id, 1, 0) is JobStatus.not_found  # gate not bypassed
    assert (await _names(app, sent["session_id"])).count("run.awaiting_approval") == 1


async def test_the_reaper_ends_a_run_awaiting_longer_than_the_timeout(
    app: Client, worker: WorkerDeps, run_settings: Settings
) -> None:
    user, run = await _at_gate(app, worker)
    timeout = run_settings.approval_timeout_s
    assert await worker.runs.expire_approvals(timeout) == 0  # not yet
    past = utcnow() - timedelta(seconds=timeout + 60)
    await worker.store.update_run(run["run_id"], {"awaiting_since": past, "updated_at": past})
    assert await worker.runs.expire_approvals(timeout) == 1
    assert await worker.runs.expire_approvals(timeout) == 0  # once
    stored = await worker.store.get_run(run["run_id"])
    assert stored is not None and stored.status == "cancelled"
    assert stored.error == f"approval timed out after {timeout:g} s"
    events = await session_events(app, run["session_id"])
    assert [e["name"] for e in events][-2:] == ["run.approval_expired", "run.cancelled"]
    assert events[-2]["data"] == {"stage": "plan", "index": 0, "timeout_s": timeout}
    session = await worker.store.get_session(run["user_id"], run["session_id"])
    assert session is not None and session.active_run_id is None
    resp = await app.post(f"/api/v1/runs/{run['run_id']}/approve", headers=user.auth)
    assert await error_of(resp) == (409, "not_awaiting_approval")


async def test_the_reaper_job_ends_expired_approvals_with_the_configured_timeout(
    app: Client, worker: WorkerDeps
) -> None:
    _user, run = await _at_gate(app, worker)
    ctx = {DEPS: worker}
    assert await reap_stale_runs(ctx) == 0
    past = utcnow() - timedelta(seconds=worker.settings.approval_timeout_s + 1)
    await worker.store.update_run(run["run_id"], {"awaiting_since": past, "updated_at": past})
    assert await reap_stale_runs(ctx) == 1
    stored = await worker.store.get_run(run["run_id"])
    assert stored is not None and stored.status == "cancelled"


async def test_a_gate_on_the_last_stage_makes_the_approved_output_the_answer(
    app: Client, worker: WorkerDeps
) -> None:
    user = await make_user(app)
    run = (await _send(app, user, pipeline="chat"))["run"]
    await worker.store.update_run(run["run_id"], {"stages.0.approve": True})
    await StageExecutor(worker).execute(run["run_id"], 0, 0)
    paused = await worker.store.get_run(run["run_id"])
    assert paused is not None and paused.status == "awaiting_approval"
    resp = await app.post(
        f"/api/v1/runs/{run['run_id']}/approve", json={"output": "Edited answer."},
        headers=user.auth,
    )  # fmt: skip
    assert resp.status == 202
    assert (await resp.json())["run"]["status"] == "completed"
    session = await (
        await app.get(f"/api/v1/sessions/{run['session_id']}", headers=user.auth)
    ).json()
    assert session["status"] == "completed" and session["active_run"] is None
    assert session["messages"][-1]["content"] == "Edited answer."


async def test_a_cancel_at_a_gate_on_the_last_stage_ends_the_run_at_once(
    app: Client, worker: WorkerDeps
) -> None:
    user = await make_user(app)
    run = (await _send(app, user, pipeline="chat"))["run"]
    await worker.store.update_run(run["run_id"], {"stages.0.approve": True})
    await StageExecutor(worker).execute(run["run_id"], 0, 0)
    resp = await app.post(f"/api/v1/runs/{run['run_id']}/cancel", headers=user.auth)
    cancelled = (await resp.json())["run"]
    assert cancelled["status"] == "cancelled" and cancelled["stages"][0]["status"] == "completed"
    session = await worker.store.get_session(run["user_id"], run["session_id"])
    assert session is not None and session.active_run_id is None


async def test_a_retry_of_a_rejected_run_runs_the_gate_again(
    app: Client, worker: WorkerDeps
) -> None:
    user, run = await _at_gate(app, worker)
    await app.post(f"/api/v1/runs/{run['run_id']}/reject", headers=user.auth)
    resp = await app.post(f"/api/v1/runs/{run['run_id']}/retry", headers=user.auth)
    assert resp.status == 202, await resp.text()
    retried = (await resp.json())["run"]
    assert retried["generation"] == 1 and retried["stages"][0]["status"] == "pending"
    assert retried["stages"][0]["approve"] is True
    await StageExecutor(worker).execute(run["run_id"], 0, 1)
    stored = await worker.store.get_run(run["run_id"])
    assert stored is not None and stored.status == "awaiting_approval"
    assert stored.stages[0].attempts == 2


async def test_approve_and_reject_over_the_websocket(app: Client, worker: WorkerDeps) -> None:
    tools = Ws(app)
    user, run = await _at_gate(app, worker)
    ws = await tools.connect(user)
    reply = await tools.call(ws, {"id": 1, "type": "approve", "run_id": run["run_id"],
                                  "output": EDITED})  # fmt: skip
    assert reply["ok"] is True and reply["data"]["run"]["stages"][0]["output"] == EDITED
    reply = await tools.call(ws, {"id": 2, "type": "reject", "run_id": run["run_id"]})
    assert reply["type"] == "error"
    assert reply["error"]["code"] == "not_awaiting_approval"
    _user2, other = await _at_gate(app, worker)
    reply = await tools.call(ws, {"id": 3, "type": "reject", "run_id": other["run_id"]})
    assert reply["error"]["code"] == "not_found"  # another user's run
    ws2 = await tools.connect(_user2)
    reply = await tools.call(ws2, {"id": 1, "type": "reject", "run_id": other["run_id"],
                                   "reason": "no"})  # fmt: skip
    assert reply["data"]["run"]["status"] == "cancelled"
    assert reply["data"]["run"]["error"] == "rejected: no"
    await ws.close()
    await ws2.close()


async def test_bad_answers_are_refused(app: Client, worker: WorkerDeps) -> None:
    user, run = await _at_gate(app, worker)
    url = f"/api/v1/runs/{run['run_id']}/approve"
    resp = await app.post(url, json={"output": 3}, headers=user.auth)
    assert await error_of(resp) == (422, "invalid_request")
    resp = await app.post(url, json={"outputs": "x"}, headers=user.auth)
    assert await error_of(resp) == (422, "invalid_request")
    resp = await app.post("/api/v1/runs/nope/approve", headers=user.auth)
    assert await error_of(resp) == (404, "not_found")
    stored = await worker.store.get_run(run["run_id"])
    assert stored is not None and stored.status == "awaiting_approval"


async def test_an_approval_across_a_worker_restart_completes_the_run(
    app: Client, run_settings: Settings
) -> None:
    """Worker 1 runs the plan and stops; approved while no worker runs, the next stage's
    job waits in the queue; worker 2, started afterwards, completes the run."""
    user = await make_user(app)
    run = (await _send(app, user))["run"]
    async with InProcessWorker(run_settings, app.app[keys.PIPELINES]):
        paused = await wait_run(app, user.auth, run["run_id"], statuses=("awaiting_approval",))
    assert paused["stages"][1]["status"] == "pending"
    resp = await app.post(
        f"/api/v1/runs/{run['run_id']}/approve", json={"output": EDITED}, headers=user.auth
    )
    assert resp.status == 202
    job_id = app.app[keys.REDIS_KEYS].stage_job_id(run["run_id"], 1, 0)
    queued = await app.app[keys.REDIS].zscore(app.app[keys.REDIS_KEYS].arq_queue(), job_id)
    assert queued is not None  # waiting for a worker
    async with InProcessWorker(run_settings, app.app[keys.PIPELINES]):
        done = await wait_run(app, user.auth, run["run_id"])
    assert done["status"] == "completed", done
    assert done["stages"][0]["output"] == EDITED
    assert [s["status"] for s in done["stages"]] == ["completed"] * 3


async def test_a_cancel_flagged_before_the_pause_wins_over_the_gate(
    app: Client, worker: WorkerDeps
) -> None:
    user = await make_user(app)
    sent = (await _send(app, user))["run"]
    loaded = await worker.store.get_run(sent["run_id"])
    assert loaded is not None
    started = await worker.runs.start_stage(loaded, 0)
    assert started is not None
    await worker.runs.complete_stage(started, 0, "the plan", "demo", started.usage)
    await worker.store.update_run(sent["run_id"], {"cancel_requested": True})  # then it died
    assert await worker.runs.pause(started, 0) is None  # a pause never lands after a cancel
    await worker.runs.take_over(sent["run_id"], 0, 0, "lease lapsed")
    assert await _job_status(worker, sent["run_id"], 1, 0) is JobStatus.queued
    await StageExecutor(worker).execute(sent["run_id"], 1, 0)  # the queued stage finds it
    stored = await worker.store.get_run(sent["run_id"])
    assert stored is not None and stored.status == "cancelled"
    assert "run.awaiting_approval" not in await _names(app, sent["session_id"])


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "40000000", "soon"])
def test_a_bad_approval_timeout_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="APPROVAL_TIMEOUT_S"):
        Settings.from_env({"APPROVAL_TIMEOUT_S": value})
    assert Settings.from_env({"APPROVAL_TIMEOUT_S": "60"}).approval_timeout_s == 60.0
    assert Settings.from_env({}).approval_timeout_s == 24 * 3600
