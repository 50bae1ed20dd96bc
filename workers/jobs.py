"""arq jobs: the stage job, webhook deliveries and the reaper of stale runs."""

from __future__ import annotations

import logging
import random
import sqlite3
from typing import Any

from arq import Retry
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from server.logs import run_id_var, session_id_var
from workers.context import deps
from workers.executor import StageExecutor

log = logging.getLogger("chorus.jobs")
# Errors of Redis or the store that pass (a restart, a failover, a dropped connection).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    RedisError, OSError, PyMongoError, sqlite3.OperationalError,
)  # fmt: skip
_RETRY_BASE_S, _RETRY_MAX_S = 0.5, 10.0


def retry_delay(job_try: int) -> float:
    """Exponential backoff with full jitter for a job that met a transient error."""
    return random.uniform(0, min(_RETRY_MAX_S, _RETRY_BASE_S * 2 ** max(job_try - 1, 0)))


async def run_stage(ctx: dict[str, Any], run_id: str, stage_index: int, generation: int) -> None:
    """Execute one stage of a run (idempotent); a transient error retries the job."""
    run_id_var.set(run_id)
    session_id_var.set(None)
    try:
        await StageExecutor(deps(ctx)).execute(run_id, stage_index, generation)
    except TRANSIENT_ERRORS as exc:
        delay = retry_delay(int(ctx.get("job_try", 1)))
        log.warning(
            "stage %d of run %s met %r; retrying in %.1f s", stage_index, run_id, exc, delay
        )
        raise Retry(defer=delay) from exc


async def deliver_webhook(ctx: dict[str, Any], delivery_id: str) -> None:
    """Make a webhook delivery's next attempt; retry the job after the backoff it asks for."""
    d = deps(ctx)
    assert d.webhooks is not None
    try:
        delay = await d.webhooks.attempt(delivery_id)
    except TRANSIENT_ERRORS as exc:  # the store or Redis, not the receiver: no attempt made
        delay = retry_delay(int(ctx.get("job_try", 1)))
        log.warning("webhook delivery %s met %r; retrying in %.1f s", delivery_id, exc, delay)
        raise Retry(defer=delay) from exc
    if delay is not None:
        raise Retry(defer=delay)


async def reap_stale_runs(ctx: dict[str, Any]) -> int:
    """Take over runs with neither a live lease nor a waiting job; end runs awaiting approval
    past APPROVAL_TIMEOUT_S; free stale session claims; start messages left queued on idle
    sessions."""
    d = deps(ctx)
    min_age = d.settings.reaper_min_age_s
    taken = await d.runs.reap(min_age)
    expired = await d.runs.expire_approvals(d.settings.approval_timeout_s)
    freed = await d.runs.repair_sessions(min_age)
    if taken or freed:
        log.warning("reaper took over %d stale run(s) and freed %d session(s)", taken, freed)
    return taken + expired + freed + await d.runs.start_stranded(min_age)
