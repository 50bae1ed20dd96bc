"""Job metrics: each way an arq job can end is counted under its own outcome."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from arq.worker import Retry

from workers.metrics import METRICS, WorkerMetrics, job_metrics, metered


async def run_stage(ctx: dict[str, Any], how: str) -> str:
    if how == "retry":
        raise Retry(defer=1)
    if how == "fail":
        raise ValueError("boom")
    if how == "cancel":
        raise asyncio.CancelledError
    return "done"


@pytest.mark.parametrize(
    ("how", "outcome", "raises"),
    [
        ("ok", "completed", None),
        ("retry", "retried", Retry),
        ("fail", "failed", ValueError),
        ("cancel", "cancelled", asyncio.CancelledError),
    ],
)
async def test_each_ending_is_counted_once_with_its_outcome(
    how: str, outcome: str, raises: type[BaseException] | None
) -> None:
    metrics = WorkerMetrics()
    job = metered(run_stage, job_metrics)
    assert job.__qualname__ == "run_stage"  # arq names the job (and its id) after this
    ctx = {METRICS: metrics, "score": int((time.time() - 2) * 1000)}  # due 2 s ago
    if raises is None:
        assert await job(ctx, how) == "done"
    else:
        with pytest.raises(raises):
            await job(ctx, how)
    registry = metrics.registry
    labels = {"function": "run_stage"}
    assert registry.get_sample_value("chorus_jobs_started_total", labels) == 1
    for other in ("completed", "retried", "failed", "cancelled"):
        value = registry.get_sample_value(
            "chorus_jobs_finished_total", {**labels, "outcome": other}
        )
        assert value == (1 if other == outcome else None)
    waited = registry.get_sample_value("chorus_job_queue_wait_seconds_sum", labels)
    assert waited is not None and waited >= 2
    assert registry.get_sample_value("chorus_job_seconds_count", labels) == 1
