"""Taking stages over and reaping stale runs: how a run moves on when its worker is gone.

- A lapsed lease (the watchdog claimed it) or a lease handed back at shutdown: the stage
  is taken over at once under a new generation (the fencing token) and queued again.
- The reaper is the last net: a queued or running run that has neither a live lease nor
  a waiting job (its job was lost with Redis's data, or arq gave it up) is taken over the
  same way. Every takeover counts in the run's ``recoveries`` (not in user retries); a run
  that keeps losing its workers fails after ``RUN_MAX_RECOVERIES``.
- A session whose active-run claim names a run that ended or is gone is freed.
- A run awaiting approval holds no worker: it is never taken over nor reaped as stale.
  The reaper ends one that has waited longer than ``APPROVAL_TIMEOUT_S`` instead.
- A queued message of an idle session (its run's end failed to start it) is started.
"""

from __future__ import annotations

import collections
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from arq.jobs import Job, JobStatus

from server.runs.endings import RunEndings, pending_gate
from server.runs.queue import enqueue_stage
from server.store.models import (
    ACTIVE_RUN_STATUSES,
    AWAITING_APPROVAL,
    FINAL_RUN_STATUSES,
    ChatSession,
    Run,
    utcnow,
)

if TYPE_CHECKING:
    from server.runs.service import RunDeps

log = logging.getLogger("chorus.runs")
_WAITING = (JobStatus.queued, JobStatus.deferred)


class RunRecovery(RunEndings):
    """Take over stages whose worker is gone; reap stale runs; free stale session claims."""

    def __init__(self, deps: RunDeps) -> None:
        super().__init__(deps)
        self.takeovers: collections.Counter[str] = collections.Counter()

    async def take_over(self, run_id: str, generation: int, index: int, reason: str) -> bool:
        """Requeue the run's current stage under a new generation; True if this call did."""
        run = await self.store.get_run(run_id)
        if run is None or run.status not in ACTIVE_RUN_STATUSES or run.generation != generation:
            return False  # ended, outdated, or awaiting approval (no worker to replace)
        if await self._move_on(run, index):
            return False
        current = run.current_stage()
        if run.cancel_requested:
            return await self.cancel(run, expect={"generation": generation}) is not None
        if run.recoveries >= self.d.settings.run_max_recoveries:
            failed = await self.fail(
                run, "the run kept losing its worker", expect={"generation": generation}
            )
            return failed is not None
        # Fence first: from here on the old generation's events are dropped.
        await self.leases.fence(run_id, generation + 1)
        bumped = await self.store.update_run(
            run_id,
            {"generation": generation + 1, "recoveries": run.recoveries + 1,
             "updated_at": utcnow()},
            expect={"generation": generation, "status": run.status},
        )  # fmt: skip
        if bumped is None:
            return False
        self.takeovers[reason] += 1
        if self.d.on_takeover is not None:
            self.d.on_takeover(reason)
        log.warning(
            "took over stage %d of run %s (%s): generation %d", current, run_id, reason,
            generation + 1,
        )  # fmt: skip
        await enqueue_stage(self.redis, self.keys, run_id, current, generation + 1)
        return True

    async def _move_on(self, run: Run, index: int) -> bool:
        """If the leased stage was done, move the run on and say so: pause it at its gate
        (its worker died between the gate's checkpoint and the pause) or make sure the
        next stage is queued."""
        gate = pending_gate(run)
        if gate is not None and not run.cancel_requested:  # a cancel ends it instead
            await self.pause(run, gate)
            return True
        current = run.current_stage()
        if current > index:
            await enqueue_stage(self.redis, self.keys, run.run_id, current, run.generation)
            return True
        return False

    async def _waiting(self, run: Run) -> bool:
        """Whether the run's stage job waits for a worker, or has just been picked up."""
        job_id = self.keys.stage_job_id(run.run_id, run.current_stage(), run.generation)
        status = await Job(job_id, self.redis, _queue_name=self.keys.arq_queue()).status()
        if status is JobStatus.in_progress:  # a worker took it; its lease follows at once
            age = (utcnow() - run.updated_at).total_seconds()
            return age < self.d.settings.lease_ttl_s
        return status in _WAITING

    async def reap(self, min_age_s: float, limit: int = 200) -> int:
        """Take over active runs unchanged for ``min_age_s`` with no lease and no waiting job."""
        runs = await self.store.list_runs(
            statuses=ACTIVE_RUN_STATUSES,
            updated_before=utcnow() - timedelta(seconds=min_age_s),
            limit=limit,
        )
        live = await self.leases.live([r.run_id for r in runs])
        taken = 0
        for run in runs:
            if run.run_id in live or await self._waiting(run):
                continue
            if await self.take_over(run.run_id, run.generation, run.current_stage(), "reaper"):
                taken += 1
        return taken

    async def expire_approvals(self, timeout_s: float, limit: int = 200) -> int:
        """End the runs awaiting approval for longer than ``timeout_s`` (cancelled, with an
        error saying so); return how many this call ended."""
        cutoff = utcnow() - timedelta(seconds=timeout_s)
        runs = await self.store.list_runs(
            statuses=(AWAITING_APPROVAL,), updated_before=cutoff, limit=limit
        )
        expired = 0
        for run in runs:
            if run.awaiting_since is None or run.awaiting_since > cutoff:
                continue
            error = f"approval timed out after {timeout_s:g} s"
            data = {"timeout_s": timeout_s}
            if await self.end_awaiting(run, error, "run.approval_expired", data) is not None:
                log.warning("run %s: %s", run.run_id, error)
                expired += 1
        return expired

    async def free_stale_claim(self, session: ChatSession) -> bool:
        """Free the session if its active run ended or is gone; True if it is free now."""
        if session.active_run_id is None:
            return True
        run = await self.store.get_run(session.active_run_id)
        if run is not None and run.status not in FINAL_RUN_STATUSES:
            return False
        status = run.status if run is not None else "idle"
        freed = await self.store.update_session(
            session.user_id, session.session_id,
            {"active_run_id": None, "status": status, "updated_at": utcnow()},
            expect={"active_run_id": session.active_run_id},
        )  # fmt: skip
        if freed is not None:
            log.warning(
                "freed session %s from run %s (%s)", session.session_id, session.active_run_id,
                "ended" if run is not None else "missing",
            )  # fmt: skip
        return freed is not None

    async def repair_sessions(self, min_age_s: float, limit: int = 200) -> int:
        """Free sessions whose active-run claim names a finished or missing run."""
        sessions = await self.store.list_claimed_sessions(
            updated_before=utcnow() - timedelta(seconds=min_age_s), limit=limit
        )
        freed = 0
        for session in sessions:
            run = await self.store.get_run(session.active_run_id or "")
            if run is None or run.status in FINAL_RUN_STATUSES:
                freed += int(await self.free_stale_claim(session))
        return freed

    async def start_stranded(self, min_age_s: float, limit: int = 200) -> int:
        """Start the queue of idle sessions holding messages queued for ``min_age_s``."""
        queued = await self.store.list_queued_messages(
            created_before=utcnow() - timedelta(seconds=min_age_s), limit=limit
        )
        started = 0
        for user_id, session_id in dict.fromkeys((m.user_id, m.session_id) for m in queued):
            started += await self.start_next_queued(user_id, session_id) is not None
        if started:
            log.warning("started %d stranded queued message(s)", started)
        return started
