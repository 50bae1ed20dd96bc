"""A baseline worker: Chorus's jobs on arq's own ``Worker`` (no wake-up channel, no skipping
of running jobs), polling every WORKER_POLL_S. ``python bench/_plain_worker.py``."""

from __future__ import annotations

import asyncio
import contextlib

from arq.worker import Worker

from server.cli import run_cli, wait_for_stop_signal
from server.config import Settings
from server.pipelines import AgentRegistry
from workers.main import worker_options


async def serve(settings: Settings) -> None:
    """Run the plain arq worker until SIGTERM."""
    registry = AgentRegistry.load(settings.pipelines_file, demo_url=settings.demo_model_url)
    options = worker_options(settings, registry)
    options.pop("wake_channel", None)
    worker = Worker(**options)
    task = asyncio.create_task(worker.async_run())
    print("Chorus worker is running", flush=True)
    await wait_for_stop_signal()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await worker.close()


if __name__ == "__main__":
    run_cli("plain arq worker", serve)
