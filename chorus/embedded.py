"""The embedded mode: supply what the environment did not (Redis, secret, model, worker).

The launcher's half: it wires the domain (``server``) and the worker (``workers``), which
never import it.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from server.admin.cli import REDIS_URL_FILE
from server.config import Settings
from server.pipelines import AgentRegistry
from server.redis_proc import RedisProcess
from workers.demo_model.launch import start_demo_model_if_needed
from workers.inprocess import InProcessWorker
from workers.metrics import CurrentWorkerCollector

log = logging.getLogger("chorus.embedded")


def load_or_create_secret(data_dir: Path) -> str:
    """Return the secret kept in DATA_DIR, creating it (mode 0600) on first use."""
    path = data_dir / "secret_key"
    if path.exists():
        secret = path.read_text().strip()
        if len(secret) >= 32:
            return secret
    secret = secrets.token_urlsafe(48)
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return secret


@dataclass
class Embedded:
    """What the embedded mode resolved and started for ``python -m chorus``."""

    settings: Settings
    private_redis: bool = False
    worker: InProcessWorker | None = None

    def expose_metrics(self, registry: CollectorRegistry) -> None:
        """Serve the in-process worker's metrics (if any) on the web process's registry."""
        worker = self.worker
        if worker is not None:
            registry.register(CurrentWorkerCollector(lambda: worker.worker))

    def describe_workers(self) -> str:
        """Say where the stage jobs run, for the start-up line."""
        if self.worker is None:
            return "none in this process (EMBEDDED_WORKER=0: run python -m workers)"
        return f"1 in-process (up to {self.settings.worker_max_jobs} stages at once)"


@asynccontextmanager
async def embedded_services(settings: Settings) -> AsyncIterator[Embedded]:
    """Start a private redis-server, demo model and worker as needed; yield what was resolved."""
    async with AsyncExitStack() as stack:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if settings.secret_key is None:
            settings = settings.replace(secret_key=load_or_create_secret(settings.data_dir))
        private_redis = settings.redis_url is None
        if private_redis:
            redis = await stack.enter_async_context(RedisProcess())
            log.info("started private redis-server", extra={"redis_url": redis.url})
            settings = settings.replace(redis_url=redis.url)
            # For `python -m server admin disable`, so it can close the user's sockets.
            url_file = settings.data_dir / REDIS_URL_FILE
            url_file.write_text(redis.url)
            stack.callback(url_file.unlink, missing_ok=True)
        settings = await start_demo_model_if_needed(stack, settings)
        worker = None
        if settings.embedded_worker:
            registry = AgentRegistry.load(
                settings.pipelines_file,
                demo_url=settings.demo_model_url,
                keys=settings.provider_keys,
            )
            worker = await stack.enter_async_context(InProcessWorker(settings, registry))
        yield Embedded(settings, private_redis, worker)
