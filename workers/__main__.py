"""``python -m workers``: run one arq worker process until SIGINT or SIGTERM."""

from __future__ import annotations

from contextlib import AsyncExitStack

from server.banner import announce
from server.cli import run_cli, wait_for_stop_signal
from server.config import ConfigError, Settings
from server.pipelines import AgentRegistry
from workers.demo_model.launch import start_demo_model_if_needed
from workers.inprocess import InProcessWorker
from workers.metrics_http import serve_worker_metrics


async def serve(settings: Settings) -> None:
    """Run the worker (and a private demo model if the pipelines need one) until a signal."""
    async with AsyncExitStack() as stack:
        settings = await start_demo_model_if_needed(stack, settings)
        registry = AgentRegistry.load(
            settings.pipelines_file, demo_url=settings.demo_model_url, keys=settings.provider_keys
        )
        worker = await stack.enter_async_context(InProcessWorker(settings, registry))
        metrics = "off (WORKER_METRICS_PORT=0)"
        if settings.worker_metrics_port:
            server = serve_worker_metrics(
                settings.host, settings.worker_metrics_port, lambda: worker.worker
            )
            metrics = f"{await stack.enter_async_context(server)}/metrics"
        workers = f"this process (up to {settings.worker_max_jobs} stages at once)"
        announce(f"Chorus worker is running · metrics: {metrics}", settings, registry, workers)
        await wait_for_stop_signal()


def _check(settings: Settings) -> None:
    if settings.redis_url is None:
        raise ConfigError("REDIS_URL must be set to run a standalone worker")


if __name__ == "__main__":
    run_cli("chorus worker", serve, _check)
