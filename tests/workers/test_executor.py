"""The StageExecutor's guards, each with the order of events forced (the app runs without
a worker; the test drives a StageExecutor built by the worker's own start-up): a cancel
that lands before the stage starts, a stage job that arq delivers again."""

from __future__ import annotations

import pytest
from arq.constants import job_key_prefix
from arq.jobs import Job, JobStatus

from server.store.models import Run
from tests.support.api import make_user
from tests.workers.conftest import Client, session_events, start_run
from workers.context import WorkerDeps
from workers.executor import StageExecutor


async def _assert_cancelled_unstarted(app: Client, worker: WorkerDeps, run: dict[str, str]) -> None:
    """The run ended cancelled without its first stage starting, and said so once."""
    ended = await worker.store.get_run(run["run_id"])
    assert ended is not None and ended.status == "cancelled"
    assert [s.status for s in ended.stages] == ["cancelled"] * 3
    assert ended.stages[0].attempts == 0
    assert await worker.store.list_llm_calls(run["run_id"]) == []
    names = [e["name"] for e in await session_events(app, run["session_id"])]
    assert "stage.started" not in names and names.count("run.cancelled") == 1


async def test_a_cancel_flagged_in_redis_only_stops_the_stage_before_it_starts(
    app: Client, worker: WorkerDeps
) -> None:
    user = await make_user(app)
    run = (await start_run(app, user))["run"]
    # A cancel request sets the Redis flag first; the job runs before its store write lands.
    await worker.redis.set(worker.keys.run_cancel(run["run_id"], 0), "1")
    await StageExecutor(worker).execute(run["run_id"], 0, 0)
    await _assert_cancelled_unstarted(app, worker, run)


async def test_a_cancel_landing_after_the_check_refuses_the_start_and_ends_the_run(
    app: Client, worker: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await make_user(app)
    run = (await start_run(app, user))["run"]
    check = worker.runs.cancel_requested

    async def cancel_lands_right_after(loaded: Run) -> bool:
        requested = await check(loaded)
        # The web process flags the run, then dies before it could end it.
        await worker.store.update_run(loaded.run_id, {"cancel_requested": True})
        return requested

    monkeypatch.setattr(worker.runs, "cancel_requested", cancel_lands_right_after)
    await StageExecutor(worker).execute(run["run_id"], 0, 0)
    await _assert_cancelled_unstarted(app, worker, run)


async def test_a_stage_job_delivered_again_is_not_redone_and_moves_the_run_on(
    app: Client, worker: WorkerDeps
) -> None:
    user = await make_user(app)
    run = (await start_run(app, user))["run"]
    executor = StageExecutor(worker)
    await executor.execute(run["run_id"], 0, 0)  # plan completes and queues draft's job
    draft = Job(worker.keys.stage_job_id(run["run_id"], 1, 0), worker.redis,
                _queue_name=worker.keys.arq_queue())  # fmt: skip
    # The worker died between plan's checkpoint and queueing draft: draft's job is missing.
    await worker.redis.zrem(worker.keys.arq_queue(), draft.job_id)
    await worker.redis.delete(job_key_prefix + draft.job_id)
    assert await draft.status() is JobStatus.not_found
    await executor.execute(run["run_id"], 0, 0)  # arq runs plan's job again
    stored = await worker.store.get_run(run["run_id"])
    assert stored is not None and stored.status == "running"
    assert [s.status for s in stored.stages] == ["completed", "pending", "pending"]
    assert stored.stages[0].attempts == 1
    calls = await worker.store.list_llm_calls(run["run_id"])
    assert [c.stage for c in calls] == ["plan"]
    names = [e["name"] for e in await session_events(app, run["session_id"])]
    assert names.count("stage.started") == 1 and names.count("stage.completed") == 1
    assert await draft.status() is JobStatus.queued  # the run moves on


async def test_a_stage_job_of_a_finished_run_does_nothing(app: Client, worker: WorkerDeps) -> None:
    user = await make_user(app)
    run = (await start_run(app, user))["run"]
    executor = StageExecutor(worker)
    for index in range(3):
        await executor.execute(run["run_id"], index, 0)
    done = await worker.store.get_run(run["run_id"])
    assert done is not None and done.status == "completed"
    draft = Job(worker.keys.stage_job_id(run["run_id"], 1, 0), worker.redis,
                _queue_name=worker.keys.arq_queue())  # fmt: skip
    await worker.redis.zrem(worker.keys.arq_queue(), draft.job_id)  # draft's job is gone
    await worker.redis.delete(job_key_prefix + draft.job_id)
    await executor.execute(run["run_id"], 0, 0)  # arq runs plan's job once more, long after
    assert await draft.status() is JobStatus.not_found  # nothing is queued again
    assert await worker.store.get_run(run["run_id"]) == done
    names = [e["name"] for e in await session_events(app, run["session_id"])]
    assert names.count("run.completed") == 1
