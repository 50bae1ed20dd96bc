"""The embedded mode: supply what the environment did not (Redis, secret, model, worker)."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from server.config import Settings
from server.pipelines import AgentRegistry
from server.redis_proc import RedisProcess
from workers.demo_model.config import DemoConfig
from workers.demo_model.server import DemoModelServer
from workers.inprocess import InProcessWorker

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


@asynccontextmanager
async def embedded_services(settings: Settings) -> AsyncIterator[Settings]:
    """Start a private redis-server if needed; yield settings with everything resolved."""
    async with AsyncExitStack() as stack:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if settings.secret_key is None:
            settings = settings.replace(secret_key=load_or_create_secret(settings.data_dir))
        if settings.redis_url is None:
            redis = await stack.enter_async_context(RedisProcess())
            log.info("started private redis-server", extra={"redis_url": redis.url})
            settings = settings.replace(redis_url=redis.url)
        settings = await start_demo_model_if_needed(stack, settings)
        if settings.embedded_worker:
            registry = AgentRegistry.load(settings.pipelines_file, demo_url=settings.demo_model_url)
            await stack.enter_async_context(InProcessWorker(settings, registry))
        yield settings


async def start_demo_model_if_needed(stack: AsyncExitStack, settings: Settings) -> Settings:
    """Serve the demo model in-process when the pipelines need ${DEMO_MODEL_URL} and none is set."""
    if settings.demo_model_url is not None:
        return settings
    registry = AgentRegistry.load(settings.pipelines_file)
    if all(p.base_url is not None for p in registry.providers()):
        return settings
    config = DemoConfig(token_delay_ms=settings.demo_token_delay_ms)
    demo = await stack.enter_async_context(DemoModelServer(config))
    log.info("started the demo model", extra={"demo_model_url": demo.base_url})
    return settings.replace(demo_model_url=demo.base_url)
