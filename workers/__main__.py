"""``python -m workers``: run one arq worker process until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from contextlib import AsyncExitStack

from server.config import ConfigError, Settings
from server.embedded import needs_demo_model
from server.logs import configure_logging
from server.pipelines import AgentRegistry, PipelinesError
from workers.demo_model.config import DemoConfig
from workers.demo_model.server import DemoModelServer
from workers.inprocess import InProcessWorker


async def serve(settings: Settings) -> None:
    """Run the worker (and a private demo model if the pipelines need one) until a signal."""
    async with AsyncExitStack() as stack:
        if settings.demo_model_url is None and needs_demo_model(settings):
            config = DemoConfig(token_delay_ms=settings.demo_token_delay_ms)
            demo = await stack.enter_async_context(DemoModelServer(config))
            settings = settings.replace(demo_model_url=demo.base_url)
        registry = AgentRegistry.load(settings.pipelines_file, demo_url=settings.demo_model_url)
        await stack.enter_async_context(InProcessWorker(settings, registry))
        print("Chorus worker is running", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()


def main() -> None:
    """Read settings, configure logs and run the worker."""
    try:
        settings = Settings.from_env()
        if settings.redis_url is None:
            raise ConfigError("REDIS_URL must be set to run a standalone worker")
    except ConfigError as exc:
        print(f"chorus worker: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level)
    try:
        asyncio.run(serve(settings))
    except PipelinesError as exc:
        print(f"chorus worker: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
