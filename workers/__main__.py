"""``python -m workers``: run one arq worker process until SIGINT or SIGTERM."""

from __future__ import annotations

from contextlib import AsyncExitStack

from server.cli import run_cli, wait_for_stop_signal
from server.config import ConfigError, Settings
from server.embedded import start_demo_model_if_needed
from server.pipelines import AgentRegistry
from workers.inprocess import InProcessWorker


async def serve(settings: Settings) -> None:
    """Run the worker (and a private demo model if the pipelines need one) until a signal."""
    async with AsyncExitStack() as stack:
        settings = await start_demo_model_if_needed(stack, settings)
        registry = AgentRegistry.load(settings.pipelines_file, demo_url=settings.demo_model_url)
        await stack.enter_async_context(InProcessWorker(settings, registry))
        print("Chorus worker is running", flush=True)
        await wait_for_stop_signal()


def _check(settings: Settings) -> None:
    if settings.redis_url is None:
        raise ConfigError("REDIS_URL must be set to run a standalone worker")


if __name__ == "__main__":
    run_cli("chorus worker", serve, _check)
