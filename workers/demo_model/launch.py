"""Start the demo model in-process when the pipelines need it and no DEMO_MODEL_URL is set."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

from server.config import Settings
from server.pipelines import AgentRegistry
from workers.demo_model.config import DemoConfig
from workers.demo_model.server import DemoModelServer

log = logging.getLogger("chorus.embedded")


async def start_demo_model_if_needed(stack: AsyncExitStack, settings: Settings) -> Settings:
    """Serve the demo model in-process when the pipelines need ${DEMO_MODEL_URL} and none is set."""
    if settings.demo_model_url is not None:
        return settings
    registry = AgentRegistry.load(settings.pipelines_file, keys=settings.provider_keys)
    if all(p.base_url is not None for p in registry.providers()):
        return settings
    config = DemoConfig(token_delay_ms=settings.demo_token_delay_ms)
    demo = await stack.enter_async_context(DemoModelServer(config))
    log.info("started the demo model", extra={"demo_model_url": demo.base_url})
    return settings.replace(demo_model_url=demo.base_url)
