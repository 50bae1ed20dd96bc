"""A baseline worker: Chorus's jobs on arq's own ``Worker`` (no wake-up channel, no skipping
of running jobs), polling every WORKER_POLL_S.

``--arq-recovery`` also leaves out the lease watchdog and the reaper, so that a job whose
worker died is run again only by arq itself, once its in-progress lock expires
(STAGE_TIMEOUT_S + 20 s): how Chorus recovered before stage leases (bench_recovery.py).

    python bench/_plain_worker.py [--arq-recovery]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import Any

from arq.worker import Worker

from server.cli import run_cli, wait_for_stop_signal
from server.config import Settings
from server.pipelines import AgentRegistry
from workers.main import WATCHDOG, worker_options


def without_takeovers(options: dict[str, Any]) -> dict[str, Any]:
    """The worker options minus the reaper and the lease watchdog (stopped once started)."""
    startup = options["on_startup"]

    async def startup_without_watchdog(ctx: dict[str, Any]) -> None:
        await startup(ctx)
        watchdog = ctx.pop(WATCHDOG)
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog

    return options | {"cron_jobs": [], "on_startup": startup_without_watchdog}


async def serve(settings: Settings, arq_recovery: bool) -> None:
    """Run the plain arq worker until SIGTERM."""
    registry = AgentRegistry.load(
        settings.pipelines_file, demo_url=settings.demo_model_url, keys=settings.provider_keys
    )
    options = worker_options(settings, registry)
    for chorus_only in ("wake_channel", "wake_client"):  # ChorusWorker's wake-up
        options.pop(chorus_only, None)
    if arq_recovery:
        options = without_takeovers(options)
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arq-recovery", action="store_true", help="no watchdog, no reaper")
    arq_only = parser.parse_args().arq_recovery
    run_cli("plain arq worker", lambda settings: serve(settings, arq_only))
