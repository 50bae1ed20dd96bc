"""Takeovers of a run whose cancel was asked for: the cancel wins, nothing is queued again.
Driven through the app's RunService, no worker."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from arq.jobs import Job, JobStatus

from server import keys
from server.store.models import Usage
from tests.support.api import make_user
from tests.workers.conftest import session_events, start_run

Client = TestClient[Any, web.Application]


async def test_taking_over_a_stage_whose_cancel_was_asked_for_ends_the_run(
    client: Client,
) -> None:
    runs = client.app[keys.RUN_SERVICE]
    sent = await start_run(client, await make_user(client))
    run = await runs.store.get_run(sent["run"]["run_id"])
    assert run is not None
    started = await runs.start_stage(run, 0)  # plan streams ...
    assert started is not None
    flagged = await runs.request_cancel(started)  # ... so the cancel waits for its poll,
    assert flagged.status == "running" and flagged.cancel_requested
    # ... but its worker died before polling: its lease lapses and the stage is taken over.
    assert await runs.take_over(run.run_id, 0, 0, "lease lapsed")
    ended = await runs.store.get_run(run.run_id)
    assert ended is not None and ended.status == "cancelled"
    assert (ended.generation, ended.recoveries) == (0, 0)
    assert [s.status for s in ended.stages] == ["cancelled"] * 3
    requeued = Job(runs.keys.stage_job_id(run.run_id, 0, 1), runs.redis,
                   _queue_name=runs.keys.arq_queue())  # fmt: skip
    assert await requeued.status() is JobStatus.not_found
    names = [e["name"] for e in await session_events(client, run.session_id)]
    assert names.count("run.cancelled") == 1
    session = await runs.store.get_session(run.user_id, run.session_id)
    assert session is not None and session.active_run_id is None


async def test_a_takeover_fences_the_old_generation_and_queues_the_stage_again(
    client: Client,
) -> None:
    runs = client.app[keys.RUN_SERVICE]
    sent = await start_run(client, await make_user(client))
    run_id = sent["run"]["run_id"]
    run = await runs.store.get_run(run_id)
    assert run is not None and await runs.start_stage(run, 0) is not None
    before = runs.takeovers["lease lapsed"]
    assert await runs.take_over(run_id, 0, 0, "lease lapsed")
    assert runs.takeovers["lease lapsed"] == before + 1
    assert await runs.leases.fenced_out(run_id, 0) and not await runs.leases.fenced_out(run_id, 1)
    taken = await runs.store.get_run(run_id)
    assert taken is not None and (taken.generation, taken.recoveries) == (1, 1)
    assert taken.status == "running" and taken.stages[0].status == "running"
    again = Job(runs.keys.stage_job_id(run_id, 0, 1), runs.redis,
                _queue_name=runs.keys.arq_queue())  # fmt: skip
    assert await again.status() is JobStatus.queued
    info = await again.info()
    assert info is not None and info.args == (run_id, 0, 1)


async def test_a_takeover_of_a_stage_already_done_queues_the_next_one(client: Client) -> None:
    runs = client.app[keys.RUN_SERVICE]
    sent = await start_run(client, await make_user(client))
    run_id = sent["run"]["run_id"]
    run = await runs.store.get_run(run_id)
    assert run is not None
    started = await runs.start_stage(run, 0)
    assert started is not None
    # plan was checkpointed, then its worker died before queueing draft
    assert await runs.complete_stage(started, 0, "plan", "demo", Usage()) is not None
    assert not await runs.take_over(run_id, 0, 0, "lease lapsed")  # nothing to take over
    kept = await runs.store.get_run(run_id)
    assert kept is not None and (kept.generation, kept.recoveries) == (0, 0)
    draft = Job(runs.keys.stage_job_id(run_id, 1, 0), runs.redis,
                _queue_name=runs.keys.arq_queue())  # fmt: skip
    assert await draft.status() is JobStatus.queued
    info = await draft.info()
    assert info is not None and info.args == (run_id, 1, 0)
