"""The lease watchdog: in every worker, every WATCHDOG_INTERVAL_S, take over lapsed stages.

One script claims the lapsed leases (each by exactly one watchdog) and tells whether
Redis lost its data since the last look (its sentinel key is gone: a restart without
persistence, a failover, an eviction). After such a loss no lease, queued job or fence
is left, so the watchdog has the RunService take over every active run at once instead
of waiting for the reaper.
"""

from __future__ import annotations

import asyncio
import logging

from server.runs.leases import LeaseBook
from server.runs.service import RunService
from workers.jobs import TRANSIENT_ERRORS

log = logging.getLogger("chorus.watchdog")


class Watchdog:
    """Claim lapsed leases and have their stages taken over."""

    def __init__(self, runs: RunService, leases: LeaseBook, interval_s: float) -> None:
        self._runs = runs
        self._leases = leases
        self._interval_s = interval_s

    async def tick(self) -> int:
        """Look once; return how many stages were taken over."""
        fresh, claimed = await self._leases.claim_lapsed()
        taken = 0
        if fresh:
            taken += await self._runs.reap(min_age_s=0)
        for lease in claimed:
            taken += await self._runs.take_over(
                lease.run_id, lease.generation, lease.index, "lease lapsed"
            )
        return taken

    async def run(self) -> None:
        """Tick until cancelled; a transient error skips a tick."""
        while True:
            try:
                await self.tick()
            except TRANSIENT_ERRORS as exc:
                log.warning("lease watchdog skipped a tick: %r", exc)
            await asyncio.sleep(self._interval_s)
