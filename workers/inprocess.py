"""An arq worker running inside another process's event loop (embedded mode, tests)."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

from arq.worker import Worker

from server.config import Settings
from server.pipelines import AgentRegistry
from workers.main import build_worker


class InProcessWorker:
    """Run a Worker as a task; stop it (and close its clients) on exit."""

    def __init__(self, settings: Settings, registry: AgentRegistry) -> None:
        self._settings = settings
        self._registry = registry
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
        if self.worker is not None:
            await self.worker.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
