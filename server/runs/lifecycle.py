"""Ending runs: one place that writes a run's final state, frees its session and says so.

Used by the SessionManager (cancel before a job started) and by the StageExecutor.
Every ending is a conditional update on a non-final status, so when two parties race
(a cancel and a worker), exactly one of them ends the run and publishes the event.
"""

from __future__ import annotations

from typing import Any

from server.events.bus import EventBus
from server.store.base import Store
from server.store.models import ACTIVE_RUN_STATUSES, Message, Run, RunStatus, utcnow

FINAL_RUN_STATUSES: tuple[RunStatus, ...] = ("completed", "failed", "cancelled")


class RunLifecycle:
    """Move runs to their final states and keep the session in step."""

    def __init__(self, store: Store, bus: EventBus) -> None:
        self.store = store
        self.bus = bus

    async def _end(self, run: Run, status: RunStatus, fields: dict[str, Any]) -> Run | None:
        now = utcnow()
        stage_fields: dict[str, Any] = {}
        if status == "cancelled":
            for i, stage in enumerate(run.stages):
                if stage.status in ("pending", "running"):
                    stage_fields[f"stages.{i}.status"] = "cancelled"
                    stage_fields[f"stages.{i}.finished_at"] = now
        for active in ACTIVE_RUN_STATUSES:
            ended = await self.store.update_run(
                run.run_id,
                {"status": status, "finished_at": now, "updated_at": now, **stage_fields, **fields},
                expect={"status": active},
            )
            if ended is not None:
                await self.store.update_session(
                    ended.user_id, ended.session_id,
                    {"status": status, "active_run_id": None, "updated_at": now},
                    expect={"active_run_id": ended.run_id},
                )  # fmt: skip
                return ended
        return None

    async def cancel(self, run: Run) -> Run | None:
        """End the run as cancelled (unfinished stages too) and publish run.cancelled."""
        ended = await self._end(run, "cancelled", {"cancel_requested": True})
        if ended is not None:
            await self.bus.publish(ended.session_id, "run.cancelled", {}, ended.run_id)
        return ended

    async def fail(self, run: Run, error: str) -> Run | None:
        """End the run as failed and publish run.failed with the error."""
        ended = await self._end(run, "failed", {"error": error})
        if ended is not None:
            await self.bus.publish(ended.session_id, "run.failed", {"error": error}, ended.run_id)
        return ended

    async def complete(self, run: Run, answer: Message) -> Run | None:
        """Write the answer once, end the run as completed and publish run.completed."""
        await self.store.insert_message(answer)
        ended = await self._end(run, "completed", {})
        if ended is not None:
            await self.bus.publish(
                ended.session_id,
                "run.completed",
                {"message": answer.model_dump(mode="json"),
                 "usage": ended.usage.model_dump(mode="json")},
                ended.run_id,
            )  # fmt: skip
        return ended
