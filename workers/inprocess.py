"""An arq worker running inside another process's event loop (embedded mode, tests)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from types import TracebackType

from arq.worker import Worker

from server.config import Settings
from server.pipelines import AgentRegistry
from workers.main import build_worker, hand_back, shutdown
from workers.metrics import WorkerMetrics

log = logging.getLogger("chorus.worker")
_RESTART_BACKOFF_S = (0.1, 5.0)
_HEALTHY_AFTER_S = 30.0


class InProcessWorker:
    """Run a Worker as a task and start a new one whenever it dies: arq's loop ends on
    the first Redis error (a Redis restart, a dropped connection). On exit stop taking
    jobs, let running stages finish (WORKER_GRACE_S), hand the rest back to other
    workers (their leases are taken over at once), close clients."""

    def __init__(
        self, settings: Settings, registry: AgentRegistry, grace_s: float | None = None
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._grace_s = settings.worker_grace_s if grace_s is None else grace_s
        self.metrics = WorkerMetrics()  # one set of counters across worker restarts
        self.worker: Worker | None = None
        self._task: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> InProcessWorker:
        self.worker = build_worker(self._settings, self._registry, self.metrics)
        self._task = asyncio.create_task(self._supervise(), name="chorus-worker")
        return self

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        low, high = _RESTART_BACKOFF_S
        delay = low
        while True:
            worker = self.worker or build_worker(self._settings, self._registry, self.metrics)
            self.worker = worker
            started = loop.time()
            try:
                await worker.async_run()
                return
            except Exception:
                log.exception("the arq worker stopped; starting a new one")
            # Its running jobs may still finish (their Redis calls reconnect); retire it
            # in the background so that a new worker takes jobs meanwhile.
            self.worker = None
            retiring = asyncio.create_task(self._retire(worker), name="chorus-worker-retire")
            self._retiring.add(retiring)
            retiring.add_done_callback(self._retiring.discard)
            if loop.time() - started > _HEALTHY_AFTER_S:
                delay = low
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, high)

    async def _retire(self, worker: Worker) -> None:
        """Let the worker's running jobs finish (grace), hand the rest back, close it."""
        running = [t for t in worker.tasks.values() if not t.done()]
        if running:
            await asyncio.wait(running, timeout=self._grace_s)
        if any(not t.done() for t in running):
            handed = await hand_back(worker.ctx)
            log.warning("handed %d running stage(s) back to other workers", handed)
        try:
            await worker.close()
        except (Exception, asyncio.CancelledError) as exc:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            # arq's close() re-raises a job it cancelled or that failed, or fails on a lost
            # Redis, and then skips the rest of its cleanup.
            if not isinstance(exc, asyncio.CancelledError):
                log.warning("the arq worker did not close cleanly: %r", exc)
            await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
            await shutdown(worker.ctx)
            with contextlib.suppress(Exception):  # no pool if Redis was never reached
                await worker.pool.aclose()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()  # stop taking jobs
            with contextlib.suppress(asyncio.CancelledError):
                await task
        worker, self.worker = self.worker, None
        if worker is not None:
            await self._retire(worker)
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
