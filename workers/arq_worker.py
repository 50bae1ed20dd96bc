"""ChorusWorker: arq's Worker, woken on enqueue and sparing running jobs (DESIGN §7).

Two changes to how arq finds work, both for the time a stage takes to start:

- **Woken on enqueue.** ``enqueue_stage`` publishes the new job's id on a channel; the
  worker subscribes once started up and claims that job at once (arq's own
  ``start_jobs``, so the usual in-progress lock decides between workers). The poll stays
  as the safety net for lost messages, deferred retries and cron jobs.
- **No re-checking running jobs.** arq keeps a job in its queue until it finishes, and
  every poll reads the whole queue back: for each job already running — here or in
  another worker — it spent a WATCH, EXISTS and ZSCORE round trip only to learn so. At
  a 5 ms poll that was ~600 round trips per second per running stage, which saturated
  a worker process at a few dozen concurrent stages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from arq.connections import ArqRedis
from arq.worker import Worker
from redis.exceptions import RedisError

log = logging.getLogger("chorus.worker")
_RESUBSCRIBE_S = 1.0


class ChorusWorker(Worker):
    """An arq Worker that starts jobs announced on ``wake_channel`` without waiting to poll.

    A job found running elsewhere (or already finished) is not looked at again for
    ``recheck_s``: if its worker dies, arq only hands the job out again once its
    in-progress key expires, long after that.
    """

    def __init__(
        self,
        *args: Any,
        wake_channel: str | None = None,
        wake_client: Callable[[], ArqRedis] | None = None,
        recheck_s: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        # The wake-up listener's own connection: a pub/sub reader must not share the pool's
        # socket timeout (redis-py then swallowed the listener's cancellation at shutdown).
        self._wake_client = wake_client
        self._recheck_s = recheck_s
        self._elsewhere: dict[bytes, float] = {}
        self._waker: asyncio.Task[None] | None = None
        on_startup = self.on_startup

        async def startup(ctx: dict[Any, Any]) -> None:
            if on_startup is not None:
                await on_startup(ctx)
            if wake_channel is not None:  # jobs need what on_startup built: listen only now
                self._waker = asyncio.create_task(self._listen(wake_channel), name="arq-wake")

        self.on_startup = startup

    async def main(self) -> None:
        """Run arq's loop; stop listening for wakes when it ends (or is cancelled)."""
        try:
            await super().main()
        finally:
            waker, self._waker = self._waker, None
            if waker is not None:
                waker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waker

    async def _listen(self, channel: str) -> None:
        client = self._wake_client() if self._wake_client is not None else self.pool
        try:
            await self._listen_on(client, channel)
        finally:
            if client is not self.pool:
                await client.aclose()

    async def _listen_on(self, client: ArqRedis, channel: str) -> None:
        while True:
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(channel)
                    while True:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=_RESUBSCRIBE_S
                        )
                        if message is not None and message["type"] == "message":
                            await self.start_jobs([message["data"]])
            except (RedisError, OSError) as exc:
                log.warning("worker lost its wake-up channel (polling meanwhile): %s", exc)
                await asyncio.sleep(_RESUBSCRIBE_S)

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """Start the queued jobs that are neither running here nor recently seen elsewhere."""
        now = time.monotonic()
        elsewhere = self._elsewhere
        for job_id in [j for j, until in elsewhere.items() if until <= now]:
            del elsewhere[job_id]
        running = self.tasks
        fresh = [j for j in job_ids if j not in elsewhere and j.decode() not in running]
        if not fresh:
            return
        await super().start_jobs(fresh)
        if self.job_counter >= self.max_jobs:
            return  # the rest were not looked at: this worker is full
        until = time.monotonic() + self._recheck_s
        for job_id in fresh:
            if job_id.decode() not in running:
                elsewhere[job_id] = until
