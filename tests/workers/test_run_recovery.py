"""RunService transitions under races, forced in order (no worker polling behind the test's
back: the app runs without a worker, and the test drives a StageExecutor built by the
worker's own start-up): duplicate executions, cancel before and between stages, per
generation cancel flags, takeovers, stale session claims and the reaper."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from server.config import Settings
from server.store.models import utcnow
from tests.support.api import make_user
from tests.workers.conftest import Client
from tests.workers.conftest import session_events as _events
from tests.workers.conftest import start_run as _send
from workers.context import WorkerDeps
from workers.executor import StageExecutor


async def test_concurrent_executions_of_one_stage_job_stream_once(
    app: Client, worker: WorkerDeps
) -> None:
    user = await make_user(app)
    run = (await _send(app, user))["run"]
    executor = StageExecutor(worker)
    await asyncio.gather(*(executor.execute(run["run_id"], 0, 0) for _ in range(3)))
    stored = await worker.store.get_run(run["run_id"])
    assert stored is not None and stored.stages[0].status == "completed"
    assert stored.stages[0].attempts == 1
    calls = [c for c in await worker.store.list_llm_calls(run["run_id"]) if c.stage == "plan"]
    assert len(calls) == 1
    names = [e["name"] for e in await _events(app, run["session_id"])]
    assert names.count("stage.started") == 1 and names.count("stage.completed") == 1


async def test_of_two_starts_from_the_same_state_only_one_wins(
    app: Client, worker: WorkerDeps
) -> None:
    user = await make_user(app)
    run_id = (await _send(app, user))["run"]["run_id"]
    await StageExecutor(worker).execute(run_id, 0, 0)  # the run is `running` from here on
    loaded = await worker.store.get_run(run_id)  # both executions of draft read the run ...
    assert loaded is not None and loaded.status == "running"
    first = await worker.runs.start_stage(loaded, 1)  # ... the first starts the stage,
    second = await worker.runs.start_stage(loaded, 1)  # the second sees attempts moved on
    assert first is not None and first.stages[1].attempts == 1
    assert second is None


async def test_cancel_between_stages_ends_the_run_at_once(app: Client, worker: WorkerDeps) -> None:
    user = await make_user(app)
    run = (await _send(app, user))["run"]
    await StageExecutor(worker).execute(run["run_id"], 0, 0)  # plan done; draft only queued
    resp = await app.post(f"/api/v1/runs/{run['run_id']}/cancel", headers=user.auth)
    body = (await resp.json())["run"]
    assert body["status"] == "cancelled"
    assert [s["status"] for s in body["stages"]] == ["completed", "cancelled", "cancelled"]
    await StageExecutor(worker).execute(run["run_id"], 1, 0)  # the queued job finds it over
    assert (await worker.store.get_run(run["run_id"])).stages[1].attempts == 0  # type: ignore[union-attr]
    names = [e["name"] for e in await _events(app, run["session_id"])]
    assert names.count("run.cancelled") == 1


async def test_a_cancel_that_lands_before_the_stage_starts_wins(
    app: Client, worker: WorkerDeps
) -> None:
    user = await make_user(app)
    run_id = (await _send(app, user))["run"]["run_id"]
    loaded = await worker.store.get_run(run_id)  # the job read the run before the cancel
    assert loaded is not None
    await worker.store.update_run(run_id, {"cancel_requested": True})
    assert await worker.runs.start_stage(loaded, 0) is None  # its start is refused
    await StageExecutor(worker).execute(run_id, 0, 0)
    ended = await worker.store.get_run(run_id)
    assert ended is not None and ended.status == "cancelled" and ended.stages[0].attempts == 0


async def test_cancel_flags_are_per_generation(app: Client, worker: WorkerDeps) -> None:
    user = await make_user(app)
    run = (await _send(app, user))["run"]
    resp = await app.post(f"/api/v1/runs/{run['run_id']}/cancel", headers=user.auth)
    assert (await resp.json())["run"]["status"] == "cancelled"
    resp = await app.post(f"/api/v1/runs/{run['run_id']}/retry", headers=user.auth)
    retried = (await resp.json())["run"]
    assert retried["generation"] == 1 and retried["status"] == "queued"
    redis = worker.redis
    assert await redis.exists(worker.keys.run_cancel(run["run_id"], 0))  # the old one stays
    assert not await redis.exists(worker.keys.run_cancel(run["run_id"], 1))
    for index in range(3):
        await StageExecutor(worker).execute(run["run_id"], index, 1)
    done = await worker.store.get_run(run["run_id"])
    assert done is not None and done.status == "completed"


async def test_a_lapsed_stage_is_taken_over_under_a_new_generation(
    app: Client, worker: WorkerDeps
) -> None:
    user = await make_user(app)
    run = (await _send(app, user))["run"]
    lease = await worker.leases.acquire(run["run_id"], 0, 0)  # a worker took plan ...
    loaded = await worker.store.get_run(run["run_id"])
    assert lease is not None and loaded is not None
    await worker.runs.start_stage(loaded, 0)  # ... started it, and died
    _fresh, claimed = await worker.leases.claim_lapsed()
    assert claimed == []  # its lease is live
    await worker.redis.zadd(worker.keys.lease_deadlines(), {run["run_id"]: 0})  # it lapses
    _fresh, claimed = await worker.leases.claim_lapsed()
    assert [c.run_id for c in claimed] == [run["run_id"]]
    assert await worker.runs.take_over(run["run_id"], 0, 0, "test")
    assert not await worker.runs.take_over(run["run_id"], 0, 0, "test")  # only once
    taken = await worker.store.get_run(run["run_id"])
    assert taken is not None and (taken.generation, taken.recoveries) == (1, 1)
    await StageExecutor(worker).execute(run["run_id"], 0, 0)  # the dead generation: no-op
    for index in range(3):
        await StageExecutor(worker).execute(run["run_id"], index, 1)
    done = await worker.store.get_run(run["run_id"])
    assert done is not None and done.status == "completed"
    assert [s.attempts for s in done.stages] == [2, 1, 1]
    names = [e["name"] for e in await _events(app, run["session_id"])]
    assert names.count("stage.reset") == 1 and names.count("run.completed") == 1


async def test_a_run_that_keeps_losing_its_worker_fails(
    app: Client, worker: WorkerDeps, run_settings: Settings
) -> None:
    user = await make_user(app)
    run = (await _send(app, user))["run"]
    for generation in range(run_settings.run_max_recoveries):
        assert await worker.runs.take_over(run["run_id"], generation, 0, "test")
    assert await worker.runs.take_over(run["run_id"], run_settings.run_max_recoveries, 0, "test")
    failed = await worker.store.get_run(run["run_id"])
    assert failed is not None and failed.status == "failed"
    assert failed.error == "the run kept losing its worker"


async def test_the_reaper_takes_over_a_run_whose_job_was_lost(
    app: Client, worker: WorkerDeps
) -> None:
    user = await make_user(app)
    run = (await _send(app, user))["run"]
    assert await worker.runs.reap(min_age_s=0) == 0  # its job waits in the queue
    job_id = worker.keys.stage_job_id(run["run_id"], 0, 0)
    await worker.redis.zrem(worker.keys.arq_queue(), job_id)  # lost (e.g. with Redis's data)
    await worker.redis.delete(f"arq:job:{job_id}")
    assert await worker.runs.reap(min_age_s=60) == 0  # not stale yet
    assert await worker.runs.reap(min_age_s=0) == 1
    taken = await worker.store.get_run(run["run_id"])
    assert taken is not None and taken.generation == 1 and taken.recoveries == 1


async def test_a_session_claimed_by_a_finished_or_missing_run_accepts_a_message(
    app: Client, worker: WorkerDeps
) -> None:
    user = await make_user(app)
    sent = await _send(app, user)
    sid, run_id = sent["run"]["session_id"], sent["run"]["run_id"]
    store = worker.store
    await store.update_run(run_id, {"status": "completed"})  # ended, claim left behind
    resp = await app.post(f"/api/v1/sessions/{sid}/messages", json={"content": "again"},
                          headers=user.auth)  # fmt: skip
    assert resp.status == 202, await resp.text()
    user_id = user.user["user_id"]
    await store.update_session(user_id, sid, {"active_run_id": "gone"})  # a missing run
    resp = await app.post(f"/api/v1/sessions/{sid}/messages", json={"content": "and again"},
                          headers=user.auth)  # fmt: skip
    assert resp.status == 202, await resp.text()
    # The reaper frees such claims too, without waiting for a message.
    await store.update_session(
        user_id, sid, {"active_run_id": "gone", "updated_at": utcnow() - timedelta(minutes=5)}
    )
    assert await worker.runs.repair_sessions(min_age_s=60) == 1
    session = await store.get_session(user_id, sid)
    assert session is not None and session.active_run_id is None


async def test_a_stage_whose_agent_vanished_fails_the_run_cleanly(
    app: Client, worker: WorkerDeps
) -> None:
    user = await make_user(app)
    run = (await _send(app, user))["run"]
    await worker.store.update_run(run["run_id"], {"stages.0.agent": "removed-from-the-file"})
    await StageExecutor(worker).execute(run["run_id"], 0, 0)
    failed = await worker.store.get_run(run["run_id"])
    assert failed is not None and failed.status == "failed"
    assert failed.error is not None and "no longer configured" in failed.error
    session = await worker.store.get_session(user.user["user_id"], run["session_id"])
    assert session is not None and session.active_run_id is None  # not left for the reaper
