"""Prometheus metrics of a worker: the model chain's calls, its jobs, lease takeovers.

One ``WorkerMetrics`` per worker, on its own registry (tests build many workers in one
process). Label values are bounded: provider and model names come from the pipelines
file, outcomes and job functions from fixed sets.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

from arq.worker import Retry
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_WAIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
METRICS = "chorus_metrics"  # the worker's WorkerMetrics in the arq ctx

T = TypeVar("T")


class ChainMetrics:
    """The chain's counters on one registry (a private one unless given: tests build many)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        labels = ["provider", "model"]
        self.attempts = Counter(
            "chorus_llm_attempts_total", "LLM call attempts by outcome", [*labels, "outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "chorus_llm_attempt_seconds", "LLM call attempt duration", labels,
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.ttft = Histogram(
            "chorus_llm_ttft_seconds", "Time to the first token of an LLM call", labels,
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.tokens = Counter(
            "chorus_llm_tokens_total", "Tokens reported by providers", [*labels, "kind"],
            registry=self.registry,
        )  # fmt: skip
        self.cost = Counter(
            "chorus_llm_cost_usd_total", "Cost of LLM calls in USD", labels, registry=self.registry
        )
        self.stages = Counter(
            "chorus_llm_stages_total", "Stages run through the model chain, by result", ["result"],
            registry=self.registry,
        )  # fmt: skip

    def observe_call(self, record: dict[str, Any]) -> None:
        """Count one attempt (a record shaped like an llm_calls document)."""
        provider, model = record["provider"], record["model"]
        self.attempts.labels(provider, model, record["outcome"]).inc()
        self.latency.labels(provider, model).observe(record["latency_ms"] / 1000)
        if record["ttft_ms"] is not None:
            self.ttft.labels(provider, model).observe(record["ttft_ms"] / 1000)
        if record["prompt_tokens"]:
            self.tokens.labels(provider, model, "prompt").inc(record["prompt_tokens"])
        if record["completion_tokens"]:
            self.tokens.labels(provider, model, "completion").inc(record["completion_tokens"])
        if record["cost_usd"]:
            self.cost.labels(provider, model).inc(record["cost_usd"])


class JobMetrics:
    """arq jobs by function: started, finished by outcome, time waited in the queue, run time."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.started = Counter(
            "chorus_jobs_started_total", "Jobs a worker started", ["function"], registry=registry
        )
        # outcome: completed, failed, retried (Retry raised), cancelled (aborted, timed out
        # or cut short by shutdown: arq runs it again unless it was aborted).
        self.finished = Counter(
            "chorus_jobs_finished_total", "Jobs that ended, by outcome", ["function", "outcome"],
            registry=registry,
        )  # fmt: skip
        self.queue_wait = Histogram(
            "chorus_job_queue_wait_seconds", "From when a job was due to when a worker started it",
            ["function"], buckets=_WAIT_BUCKETS, registry=registry,
        )  # fmt: skip
        self.duration = Histogram(
            "chorus_job_seconds", "How long a job ran", ["function"],
            buckets=_LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip

    def start(self, name: str, ctx: dict[str, Any]) -> float:
        """Count a job starting; return its start time for ``finish``."""
        self.started.labels(name).inc()
        due_ms = ctx.get("score")
        if isinstance(due_ms, int | float):  # arq's score: when the job was due, in ms
            self.queue_wait.labels(name).observe(max(0.0, time.time() - due_ms / 1000))
        return time.perf_counter()

    def finish(self, name: str, started: float, outcome: str) -> None:
        """Count a job ending with ``outcome``."""
        self.duration.labels(name).observe(time.perf_counter() - started)
        self.finished.labels(name, outcome).inc()


def metered(
    job: Callable[..., Coroutine[Any, Any, T]], metrics_of: Callable[[dict[str, Any]], JobMetrics]
) -> Callable[..., Coroutine[Any, Any, T]]:
    """Wrap an arq job so each run is counted: started, queue wait, outcome, duration."""
    name = job.__name__

    @functools.wraps(job)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> T:
        metrics = metrics_of(ctx)
        started = metrics.start(name, ctx)
        outcome = "failed"
        try:
            result = await job(ctx, *args, **kwargs)
            outcome = "completed"
            return result
        except Retry:
            outcome = "retried"
            raise
        except BaseException as exc:  # CancelledError included: arq aborted or timed it out
            outcome = "failed" if isinstance(exc, Exception) else "cancelled"
            raise
        finally:
            metrics.finish(name, started, outcome)

    return run


class WorkerMetrics:
    """Everything one worker counts, on one registry served at the worker's /metrics."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.chain = ChainMetrics(self.registry)
        self.jobs = JobMetrics(self.registry)
        self.lease_takeovers = Counter(
            "chorus_lease_takeovers_total",
            "Stages taken over from a worker whose lease lapsed",
            registry=self.registry,
        )


def worker_metrics(ctx: dict[str, Any]) -> WorkerMetrics:
    """Return the worker's metrics from the arq context."""
    value = ctx[METRICS]
    assert isinstance(value, WorkerMetrics)
    return value


def job_metrics(ctx: dict[str, Any]) -> JobMetrics:
    """Return the worker's job metrics from the arq context."""
    return worker_metrics(ctx).jobs


class CurrentWorkerCollector(Collector):
    """Expose the metrics of whichever arq worker ``current()`` returns right now.

    An in-process worker is rebuilt after a Redis failure; collecting through this keeps
    one registration valid across rebuilds.
    """

    def __init__(self, current: Callable[[], Any]) -> None:
        self._current = current

    def collect(self) -> Iterator[Metric]:
        """Yield the current worker's metrics (nothing while it is being replaced)."""
        worker = self._current()
        metrics = worker.ctx.get(METRICS) if worker is not None else None
        if isinstance(metrics, WorkerMetrics):
            yield from metrics.registry.collect()
