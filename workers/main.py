"""arq WorkerSettings: `arq workers.main.WorkerSettings` or `python -m workers`."""

from __future__ import annotations

from typing import Any

from arq import cron
from arq.connections import ArqRedis, RedisSettings

from server.config import Settings
from server.events.bus import EventBus
from server.pipelines import AgentRegistry
from server.redis_keys import RedisKeys
from server.runs.lifecycle import RunLifecycle
from server.store.factory import open_store
from workers.arq_worker import ChorusWorker
from workers.context import DEPS, WorkerDeps
from workers.jobs import reap_stale_runs, run_stage
from workers.metrics import METRICS, WorkerMetrics, job_metrics, metered, worker_metrics
from workers.model_chain import ModelChain

SETTINGS = "chorus_settings"
REGISTRY = "chorus_registry"


def load_registry(settings: Settings, demo_url: str | None) -> AgentRegistry:
    """Load the pipelines file (or the built-in one), pointing the demo provider at demo_url."""
    return AgentRegistry.load(settings.pipelines_file, demo_url=demo_url)


async def startup(ctx: dict[str, Any]) -> None:
    """Open the store and build the shared services of this worker."""
    settings: Settings = ctx[SETTINGS]
    registry: AgentRegistry = ctx[REGISTRY]
    redis: ArqRedis = ctx["redis"]
    keys = RedisKeys(settings.redis_key_prefix)
    store = await open_store(settings)
    bus = EventBus(redis, keys, settings.event_history, settings.event_history_ttl_s)
    metrics = worker_metrics(ctx)
    ctx[DEPS] = WorkerDeps(
        settings=settings, redis=redis, keys=keys, store=store, bus=bus, registry=registry,
        chain=ModelChain(registry, settings, metrics=metrics.chain),
        lifecycle=RunLifecycle(store, bus), metrics=metrics,
    )  # fmt: skip


async def shutdown(ctx: dict[str, Any]) -> None:
    """Close the model clients and the store (idempotent)."""
    d = ctx.pop(DEPS, None)
    if isinstance(d, WorkerDeps):
        await d.chain.close()
        await d.store.close()


def reaper_seconds(settings: Settings) -> set[int]:
    """The seconds of each minute at which the reaper runs (every REAPER_INTERVAL_S)."""
    return set(range(0, 60, settings.reaper_interval_s))


def worker_options(
    settings: Settings, registry: AgentRegistry, metrics: WorkerMetrics | None = None
) -> dict[str, Any]:
    """Keyword arguments for arq's Worker, tuned for latency (DESIGN §7)."""
    assert settings.redis_url is not None
    keys = RedisKeys(settings.redis_key_prefix)
    reaper = metered(reap_stale_runs, job_metrics)
    return {
        "functions": [metered(run_stage, job_metrics)],
        "cron_jobs": [cron(reaper, second=reaper_seconds(settings), run_at_startup=True)],
        "on_startup": startup,
        "on_shutdown": shutdown,
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": keys.arq_queue(),
        "ctx": {SETTINGS: settings, REGISTRY: registry, METRICS: metrics or WorkerMetrics()},
        "poll_delay": settings.worker_poll_s,
        "max_jobs": settings.worker_max_jobs,
        # A killed worker's job is picked up again once its in-progress key expires.
        "job_timeout": settings.stage_timeout_s + 10,
        "keep_result": 60,
        "max_tries": 5,
        "allow_abort_jobs": True,
        "handle_signals": False,
        "wake_channel": keys.arq_wake_channel(),
    }


def build_worker(
    settings: Settings, registry: AgentRegistry, metrics: WorkerMetrics | None = None
) -> ChorusWorker:
    """Build an arq Worker for these settings (counting into ``metrics`` if given)."""
    return ChorusWorker(**worker_options(settings, registry, metrics))


def __getattr__(name: str) -> Any:
    """Build ``WorkerSettings`` for the arq CLI on first access (not at import time)."""
    if name != "WorkerSettings":
        raise AttributeError(name)
    settings = Settings.from_env()
    if settings.redis_url is None:
        raise RuntimeError("REDIS_URL must be set to run a standalone worker")
    registry = load_registry(settings, settings.demo_model_url)
    return type("WorkerSettings", (), worker_options(settings, registry))
