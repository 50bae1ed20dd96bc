"""Enqueueing stage jobs on arq with stable ids (arq may run a job twice; never twice queued)."""

from __future__ import annotations

from arq.connections import ArqRedis

from server.redis_keys import RedisKeys

STAGE_JOB = "run_stage"


async def enqueue_stage(
    arq: ArqRedis, keys: RedisKeys, run_id: str, stage_index: int, generation: int
) -> bool:
    """Queue the job for one stage of a run and wake the workers; False if already known."""
    job_id = keys.stage_job_id(run_id, stage_index, generation)
    job = await arq.enqueue_job(
        STAGE_JOB, run_id, stage_index, generation, _job_id=job_id, _queue_name=keys.arq_queue()
    )
    if job is None:
        return False
    # Workers start the job on this message instead of at their next poll (DESIGN §7: the
    # poll wait was most of the time a stage took to start). A lost message costs one poll.
    await arq.publish(keys.arq_wake_channel(), job_id)
    return True
