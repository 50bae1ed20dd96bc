"""An arq worker running inside another process's event loop (embedded mode, tests)."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

from arq.worker import Worker

from server.config import Settings
from server.pipelines import AgentRegistry
from workers.main import build_worker, shutdown


class InProcessWorker:
    """Run a Worker as a task; on exit stop polling, let running jobs finish, close clients."""

    def __init__(self, settings: Settings, registry: AgentRegistry, grace_s: float = 5.0) -> None:
        self._settings = settings
        self._registry = registry
        self._grace_s = grace_s
        self.worker: Worker | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> InProcessWorker:
        self.worker = build_worker(self._settings, self._registry)
        self._task = asyncio.create_task(self.worker.async_run(), name="chorus-worker")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        worker, task = self.worker, self._task
        if worker is None or task is None:
            return
        task.cancel()  # stop taking jobs
        with contextlib.suppress(asyncio.CancelledError):
            await task
        running = [t for t in worker.tasks.values() if not t.done()]
        if running:  # a job cut short here is picked up again once its arq lock expires
            await asyncio.wait(running, timeout=self._grace_s)
        try:
            await worker.close()
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            # arq's close() re-raises a job it cancelled and skips the rest of its cleanup.
            await shutdown(worker.ctx)
            await worker.pool.aclose()
