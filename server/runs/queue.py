"""Enqueueing stage jobs on arq with stable ids (arq may run a job twice; never twice queued)."""

from __future__ import annotations

from arq.connections import ArqRedis

from server.redis_keys import RedisKeys

STAGE_JOB = "run_stage"


async def enqueue_stage(
    arq: ArqRedis, keys: RedisKeys, run_id: str, stage_index: int, generation: int
) -> bool:
    """Queue the job for one stage of a run; False if that very job is already known."""
    job = await arq.enqueue_job(
        STAGE_JOB,
        run_id,
        stage_index,
        generation,
        _job_id=keys.stage_job_id(run_id, stage_index, generation),
        _queue_name=keys.arq_queue(),
    )
    return job is not None
