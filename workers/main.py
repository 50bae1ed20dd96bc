"""The arq worker's options and its start-up and shutdown (run it with `python -m workers`).

Only `python -m workers` (or the embedded mode) runs a Chorus worker: it builds the
ChorusWorker subclass (woken on enqueue, lease watchdog, hand-back on shutdown); arq's
own CLI would build a plain Worker without them, so no `WorkerSettings` class is offered.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from arq import cron, func
from arq.connections import ArqRedis, RedisSettings

from server.budgets import BudgetBook
from server.config import Settings
from server.events.bus import EventBus
from server.notify.webhooks import WEBHOOK_JOB
from server.pipelines import AgentRegistry
from server.redis_client import redis_client
from server.redis_keys import RedisKeys
from server.runs.leases import LeaseBook
from server.runs.service import RunDeps, RunService
from server.store.factory import open_store
from workers.arq_worker import ChorusWorker
from workers.context import DEPS, WorkerDeps
from workers.jobs import deliver_webhook, reap_stale_runs, run_stage
from workers.metrics import METRICS, WorkerMetrics, job_metrics, metered, worker_metrics
from workers.model_chain import ModelChain
from workers.watchdog import Watchdog
from workers.webhooks import WebhookSender

SETTINGS = "chorus_settings"
REGISTRY = "chorus_registry"
WATCHDOG = "chorus_watchdog"
REDIS = "chorus_redis"


async def startup(ctx: dict[str, Any]) -> None:
    """Open the store and build the shared services of this worker."""
    settings: Settings = ctx[SETTINGS]
    registry: AgentRegistry = ctx[REGISTRY]
    # The worker's own Redis commands go through the shared client configuration (command
    # timeouts, keepalive); arq's queue plumbing keeps its own pool (see worker_options).
    redis = redis_client(settings)
    ctx[REDIS] = redis
    keys = RedisKeys(settings.redis_key_prefix)
    store = await open_store(settings)
    bus = EventBus(redis, keys, settings.event_history, settings.event_history_ttl_s)
    leases = LeaseBook(redis, keys, settings.lease_ttl_s, settings.lease_renew_s)
    metrics = worker_metrics(ctx)
    runs = RunService(
        RunDeps(settings=settings, store=store, redis=redis, keys=keys, bus=bus,
                registry=registry, leases=leases,
                on_takeover=lambda _reason: metrics.lease_takeovers.inc(),
                budgets=BudgetBook(redis, keys, store, settings))
    )  # fmt: skip
    ctx[DEPS] = WorkerDeps(
        settings=settings, redis=redis, keys=keys, store=store, bus=bus, registry=registry,
        chain=ModelChain(registry, settings, metrics=metrics.chain), leases=leases, runs=runs,
        metrics=metrics, webhooks=WebhookSender(store, settings),
    )  # fmt: skip
    watchdog = Watchdog(runs, leases, settings.watchdog_interval_s)
    ctx[WATCHDOG] = asyncio.create_task(watchdog.run(), name="chorus-lease-watchdog")


async def hand_back(ctx: dict[str, Any]) -> int:
    """Hand the stages this worker still holds to other workers now; return how many."""
    d = ctx.get(DEPS)
    if not isinstance(d, WorkerDeps):
        return 0
    handed = 0
    for lease in list(d.leases.held.values()):
        lease.lost.set()  # this worker writes and publishes nothing more for it
        with contextlib.suppress(Exception):  # a lease not handed back lapses instead
            handed += await d.runs.take_over(
                lease.run_id, lease.generation, lease.index, "handed back"
            )
    return handed


async def shutdown(ctx: dict[str, Any]) -> None:
    """Stop the watchdog; close the model clients and the store (idempotent)."""
    watchdog = ctx.pop(WATCHDOG, None)
    if isinstance(watchdog, asyncio.Task):
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog
    d = ctx.pop(DEPS, None)
    if isinstance(d, WorkerDeps):
        await d.chain.close()
        if d.webhooks is not None:
            await d.webhooks.close()
        await d.store.close()
    redis = ctx.pop(REDIS, None)
    if isinstance(redis, ArqRedis):
        await redis.aclose()


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
        "functions": [
            metered(run_stage, job_metrics),
            # Attempts are counted in the delivery log; arq's own count only has to let
            # them all happen (plus a few retries after store or Redis errors).
            func(
                metered(deliver_webhook, job_metrics),
                name=WEBHOOK_JOB,
                max_tries=settings.webhook_max_attempts + 5,
                timeout=settings.webhook_timeout_s + 30,
            ),
        ],
        "cron_jobs": [cron(reaper, second=reaper_seconds(settings), run_at_startup=True)],
        "on_startup": startup,
        "on_shutdown": shutdown,
        # arq's queue plumbing keeps its own pool: handed the pool built by
        # server/redis_client.py (with command timeouts) its shutdown hung now and then
        # (tests/workers/test_runs.py, about 1 run in 3; not yet understood). The worker's
        # own commands (leases, events, cancel checks) use that client (see startup).
        "redis_settings": RedisSettings.from_dsn(settings.redis_url.get_secret_value()),
        "wake_client": lambda: redis_client(settings, pubsub=True),
        "queue_name": keys.arq_queue(),
        "ctx": {SETTINGS: settings, REGISTRY: registry, METRICS: metrics or WorkerMetrics()},
        "poll_delay": settings.worker_poll_s,
        "max_jobs": settings.worker_max_jobs,
        # A stage's liveness is its lease (DESIGN §9), not arq's in-progress lock: a dead
        # worker's stage is taken over under a new job id within seconds.
        "job_timeout": settings.stage_timeout_s + 10,
        "keep_result": 60,
        "max_tries": 5,
        "handle_signals": False,
        "wake_channel": keys.arq_wake_channel(),
    }


def build_worker(
    settings: Settings, registry: AgentRegistry, metrics: WorkerMetrics | None = None
) -> ChorusWorker:
    """Build an arq Worker for these settings (counting into ``metrics`` if given)."""
    return ChorusWorker(**worker_options(settings, registry, metrics))
