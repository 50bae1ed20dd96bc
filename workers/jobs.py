"""arq jobs: the stage job and the reaper of stale runs."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from arq.jobs import Job, JobStatus

from server.config import Settings
from server.logs import run_id_var, session_id_var
from server.runs.queue import enqueue_stage
from server.store.models import ACTIVE_RUN_STATUSES, Run, utcnow
from workers.context import deps
from workers.executor import StageExecutor

log = logging.getLogger("chorus.jobs")
_MAX_REQUEUES = 3


async def run_stage(ctx: dict[str, Any], run_id: str, stage_index: int, generation: int) -> None:
    """Execute one stage of a run (idempotent)."""
    run_id_var.set(run_id)
    session_id_var.set(None)
    await StageExecutor(deps(ctx)).execute(run_id, stage_index, generation)


def stale_after_s(settings: Settings) -> float:
    """How long a run may sit unchanged with no live job before the reaper takes it."""
    if settings.reaper_stale_s is not None:
        return settings.reaper_stale_s
    return settings.stage_timeout_s * 2 + 30


def _current_stage(run: Run) -> int:
    return next((i for i, s in enumerate(run.stages) if s.status != "completed"), 0)


async def reap_stale_runs(ctx: dict[str, Any]) -> int:
    """Requeue (or fail) runs left queued/running with no live job; return how many."""
    d = deps(ctx)
    stale_after = timedelta(seconds=stale_after_s(d.settings))
    runs = await d.store.list_runs(
        statuses=ACTIVE_RUN_STATUSES, updated_before=utcnow() - stale_after, limit=100
    )
    reaped = 0
    for run in runs:
        index = _current_stage(run)
        job_id = d.keys.stage_job_id(run.run_id, index, run.generation)
        status = await Job(job_id, d.redis, _queue_name=d.keys.arq_queue()).status()
        if status in (JobStatus.queued, JobStatus.deferred, JobStatus.in_progress):
            continue
        reaped += 1
        if run.generation >= _MAX_REQUEUES:
            await d.lifecycle.fail(run, "run abandoned: no worker finished it")
            continue
        log.warning("requeueing stale run %s at stage %d", run.run_id, index)
        requeued = await d.store.update_run(
            run.run_id, {"generation": run.generation + 1, "updated_at": utcnow()},
            expect={"status": run.status, "generation": run.generation},
        )  # fmt: skip
        if requeued is not None:
            await enqueue_stage(d.redis, d.keys, run.run_id, index, requeued.generation)
    return reaped
