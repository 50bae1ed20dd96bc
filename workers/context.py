"""What a worker's jobs share, built once in on_startup and read through a typed accessor."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from arq.connections import ArqRedis

from server.config import Settings
from server.events.bus import EventBus
from server.pipelines import AgentRegistry
from server.redis_keys import RedisKeys
from server.runs.leases import LeaseBook
from server.runs.service import RunService
from server.store.base import Store
from workers.metrics import WorkerMetrics
from workers.model_chain import ModelChain
from workers.webhooks import WebhookSender

DEPS = "chorus_deps"


@dataclass
class WorkerDeps:
    """Clients and services of one worker process."""

    settings: Settings
    redis: ArqRedis
    keys: RedisKeys
    store: Store
    bus: EventBus
    registry: AgentRegistry
    chain: ModelChain
    leases: LeaseBook
    runs: RunService
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)
    webhooks: WebhookSender | None = None


def deps(ctx: dict[str, Any]) -> WorkerDeps:
    """Return the worker's shared dependencies from the arq context."""
    value = ctx[DEPS]
    assert isinstance(value, WorkerDeps)
    return value
