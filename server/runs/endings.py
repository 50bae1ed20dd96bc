"""The stage transitions of a run and its endings: the worker's half of the RunService.

Each write is conditional on the state it moves from (and on the run's generation), so
a stale or duplicate execution writes nothing; each event of a stage is fenced by the
run's generation, so it publishes nothing either.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from server.markdown import render_markdown
from server.runs.queue import enqueue_stage
from server.store.models import ACTIVE_RUN_STATUSES, Message, Run, RunStatus, Usage, utcnow

if TYPE_CHECKING:
    from server.runs.service import RunDeps

log = logging.getLogger("chorus.runs")


class RunEndings:
    """Start, complete and fail stages; advance a run; end it completed, failed or cancelled."""

    def __init__(self, deps: RunDeps) -> None:
        self.d = deps
        self.store = deps.store
        self.redis = deps.redis
        self.keys = deps.keys
        self.bus = deps.bus
        self.registry = deps.registry
        self.leases = deps.leases

    async def cancel_requested(self, run: Run) -> bool:
        """Whether a cancel of this run's generation was asked for."""
        if run.cancel_requested:
            return True
        return bool(await self.redis.exists(self.keys.run_cancel(run.run_id, run.generation)))

    async def start_stage(self, run: Run, index: int) -> Run | None:
        """Mark the stage running (once per attempt, never after a cancel) and say so."""
        stage, now = run.stages[index], utcnow()
        fields: dict[str, Any] = {
            "status": "running", "updated_at": now,
            f"stages.{index}.status": "running", f"stages.{index}.started_at": now,
            f"stages.{index}.attempts": stage.attempts + 1, f"stages.{index}.error": None,
        }  # fmt: skip
        # attempts unchanged: of two concurrent executions of one job, only one streams.
        started = await self.store.update_run(
            run.run_id, fields,
            expect={"status": run.status, "generation": run.generation, "cancel_requested": False,
                    f"stages.{index}.attempts": stage.attempts},
        )  # fmt: skip
        if started is None:
            return None
        gen = run.generation
        if run.status == "queued":
            await self.bus.publish(
                run.session_id, "run.started", {"run_id": run.run_id}, run.run_id, generation=gen
            )
        if stage.status == "running":  # its last holder died mid-stage: discard its text
            await self.bus.publish(
                run.session_id, "stage.reset", {"stage": stage.name}, run.run_id, generation=gen
            )
        await self.bus.publish(
            run.session_id, "stage.started",
            {"stage": stage.name, "index": index, "agent": stage.agent,
             "attempt": stage.attempts + 1},
            run.run_id, generation=gen,
        )  # fmt: skip
        if run.status == "queued":  # after the events: a store write less before the stage starts
            await self.store.update_session(
                run.user_id, run.session_id, {"status": "running", "updated_at": now},
                expect={"active_run_id": run.run_id},
            )  # fmt: skip
        return started

    async def complete_stage(
        self, run: Run, index: int, output: str, model: str, usage: Usage
    ) -> Run | None:
        """Checkpoint the stage's output (once) and publish stage.completed."""
        stage, now = run.stages[index], utcnow()
        completed = await self.store.update_run(
            run.run_id,
            {f"stages.{index}.status": "completed", f"stages.{index}.output": output,
             f"stages.{index}.model": model, f"stages.{index}.usage": usage,
             f"stages.{index}.finished_at": now, "usage": run.usage.plus(usage),
             "updated_at": now},
            expect={"status": "running", "generation": run.generation,
                    f"stages.{index}.status": "running"},
        )  # fmt: skip
        if completed is not None:
            await self.bus.publish(
                run.session_id, "stage.completed",
                {"stage": stage.name, "index": index, "output": output, "model": model,
                 "usage": usage.model_dump(mode="json")},
                run.run_id, generation=run.generation,
            )  # fmt: skip
        return completed

    async def fail_stage(self, run: Run, index: int, error: str) -> None:
        """Mark the stage failed, keeping its partial text, and end the run as failed."""
        stage, now = run.stages[index], utcnow()
        partial = await self._partial_of(run, index)
        failed = await self.store.update_run(
            run.run_id,
            {f"stages.{index}.status": "failed", f"stages.{index}.error": error,
             f"stages.{index}.finished_at": now, f"stages.{index}.partial": partial,
             "updated_at": now},
            expect={"status": "running", "generation": run.generation},
        )  # fmt: skip
        if failed is not None:
            log.warning("stage %s failed: %s", stage.name, error)
            await self.fail(failed, f"stage {stage.name} failed: {error}")

    async def advance(self, run: Run, index: int) -> None:
        """Queue the next stage, or write the answer and complete the run after the last."""
        if index + 1 < len(run.stages):
            await enqueue_stage(self.redis, self.keys, run.run_id, index + 1, run.generation)
            return
        output = run.stages[index].output or ""
        answer = Message(
            message_id=run.assistant_message_id or f"{run.run_id}-answer",
            session_id=run.session_id, user_id=run.user_id, role="assistant",
            content=output, content_html=await render_markdown(output), run_id=run.run_id,
            parent_id=run.input_message_id,
        )  # fmt: skip
        await self.complete(run, answer)

    async def _partial_of(self, run: Run, index: int) -> str | None:
        """The text the stage had streamed (kept when it is cancelled or fails)."""
        partial = await self.bus.partial(run.run_id)
        if partial is None or partial.stage != run.stages[index].name or not partial.text:
            return None
        return partial.text

    async def _end(
        self, run: Run, status: RunStatus, fields: dict[str, Any], expect: dict[str, Any]
    ) -> Run | None:
        now = utcnow()
        for i, stage in enumerate(run.stages):
            if status == "cancelled" and stage.status in ("pending", "running"):
                fields[f"stages.{i}.status"] = "cancelled"
                fields[f"stages.{i}.finished_at"] = now
                if stage.status == "running":
                    fields[f"stages.{i}.partial"] = await self._partial_of(run, i)
        for active in ACTIVE_RUN_STATUSES:
            ended = await self.store.update_run(
                run.run_id,
                {"status": status, "finished_at": now, "updated_at": now, **fields},
                expect={"status": active, **expect},
            )
            if ended is not None:
                await self.store.update_session(
                    ended.user_id, ended.session_id,
                    {"status": status, "active_run_id": None, "updated_at": now},
                    expect={"active_run_id": ended.run_id},
                )  # fmt: skip
                return ended
        return None

    async def cancel(self, run: Run, expect: dict[str, Any] | None = None) -> Run | None:
        """End the run as cancelled (unfinished stages too) and publish run.cancelled."""
        ended = await self._end(run, "cancelled", {"cancel_requested": True}, expect or {})
        if ended is not None:
            await self.bus.publish(ended.session_id, "run.cancelled", {}, ended.run_id)
        return ended

    async def fail(self, run: Run, error: str, expect: dict[str, Any] | None = None) -> Run | None:
        """End the run as failed and publish run.failed with the error."""
        ended = await self._end(run, "failed", {"error": error}, expect or {})
        if ended is not None:
            await self.bus.publish(ended.session_id, "run.failed", {"error": error}, ended.run_id)
        return ended

    async def complete(self, run: Run, answer: Message) -> Run | None:
        """Write the answer once, end the run as completed and publish run.completed."""
        await self.store.insert_message(answer)
        ended = await self._end(run, "completed", {}, {"generation": run.generation})
        if ended is not None:
            # The answer extends the branch it answers, if that branch is still the selected one.
            await self.store.update_session(
                ended.user_id, ended.session_id, {"head_message_id": answer.message_id},
                expect={"head_message_id": ended.input_message_id},
            )  # fmt: skip
            await self.bus.publish(
                ended.session_id, "run.completed",
                {"message": answer.model_dump(mode="json"),
                 "usage": ended.usage.model_dump(mode="json")},
                ended.run_id,
            )  # fmt: skip
        return ended
