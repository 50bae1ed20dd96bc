"""The stage transitions of a run and its endings: the worker's half of the RunService.

Each write is conditional on the state it moves from (and on the run's generation), so
a stale or duplicate execution writes nothing; each event of a stage is fenced by the
run's generation, so it publishes nothing either.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from server.markdown import render_markdown
from server.notify.webhooks import ENDING_EVENTS, notify_run
from server.runs.queue import enqueue_stage
from server.runs.starts import RunStarts
from server.store.models import (
    ACTIVE_RUN_STATUSES,
    AWAITING_APPROVAL,
    OPEN_RUN_STATUSES,
    Message,
    Run,
    RunStatus,
    Usage,
    format_ts,
    utcnow,
)

if TYPE_CHECKING:
    from server.runs.service import RunDeps

log = logging.getLogger("chorus.runs")


def answered_message(run: Run) -> str:
    """The answer's parent in the branch tree: the run's input message, or the last of its
    amendments a completed stage read (amendments follow the input message, each after the
    one before; one no stage read is queued when the run ends)."""
    used = {m for stage in run.stages if stage.status == "completed" for m in stage.amendments}
    return next((m for m in reversed(run.amendments) if m in used), run.input_message_id)


def pending_gate(run: Run) -> int | None:
    """The index of a completed approval gate not yet approved: the run must pause there.

    A run passes a gate only once it is approved (``approved_at``); a retry resets the
    gate's stage, so there is at most one such stage.
    """
    return next(
        (i for i, s in enumerate(run.stages)
         if s.approve and s.status == "completed" and s.approved_at is None),
        None,
    )  # fmt: skip


class RunEndings(RunStarts):
    """Start, complete and fail stages; advance a run, pausing it at an approval gate; end it
    completed, failed or cancelled."""

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
        if run.status not in ACTIVE_RUN_STATUSES:  # awaiting approval: no stage may start
            return None
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
             f"stages.{index}.amendments": run.amendments, "updated_at": now},
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

    async def fail_stage(
        self, run: Run, index: int, error: str, *, usage: Usage | None = None,
        error_code: str | None = None,
    ) -> None:  # fmt: skip
        """Mark the stage failed, keeping its partial text, and end the run as failed.

        ``usage``, when given, is what the stage's calls spent: it is the stage's usage and
        is added to the run's.
        """
        stage, now = run.stages[index], utcnow()
        partial = await self._partial_of(run, index)
        fields: dict[str, Any] = {
            f"stages.{index}.status": "failed", f"stages.{index}.error": error,
            f"stages.{index}.finished_at": now, f"stages.{index}.partial": partial,
            "updated_at": now,
        }  # fmt: skip
        if usage is not None:
            fields[f"stages.{index}.usage"] = usage
            fields["usage"] = run.usage.plus(usage)
        failed = await self.store.update_run(
            run.run_id, fields, expect={"status": "running", "generation": run.generation}
        )
        if failed is not None:
            log.warning("stage %s failed: %s", stage.name, error)
            await self.fail(failed, f"stage {stage.name} failed: {error}", error_code=error_code)

    async def advance(self, run: Run, index: int) -> None:
        """Pause at an approval gate; else queue the next stage, or write the answer and
        complete the run after the last."""
        stage = run.stages[index]
        if stage.approve and stage.approved_at is None:
            await self.pause(run, index)
            return
        if index + 1 < len(run.stages):
            await enqueue_stage(self.redis, self.keys, run.run_id, index + 1, run.generation)
            return
        output = run.stages[index].output or ""
        answer = Message(
            message_id=run.assistant_message_id or f"{run.run_id}-answer",
            session_id=run.session_id, user_id=run.user_id, role="assistant",
            content=output, content_html=await render_markdown(output), run_id=run.run_id,
            parent_id=answered_message(run),
        )  # fmt: skip
        await self.complete(run, answer)

    async def pause(self, run: Run, index: int) -> Run | None:
        """Hold the run after stage ``index`` (a gate) until the user approves or rejects it.

        The run moves (once: conditional on the state it was read in) to awaiting_approval
        with ``awaiting_stage``/``awaiting_since``; the session keeps its claim. No job is
        queued and no lease held: nothing of a worker waits with it.
        """
        if run.status not in ACTIVE_RUN_STATUSES:
            return None
        now = utcnow()
        paused = await self.store.update_run(
            run.run_id,
            {"status": AWAITING_APPROVAL, "awaiting_stage": index, "awaiting_since": now,
             "updated_at": now},
            expect={"status": run.status, "generation": run.generation,
                    "cancel_requested": False, f"stages.{index}.status": "completed",
                    f"stages.{index}.approved_at": None},
        )  # fmt: skip
        if paused is None:
            return None
        await self.store.update_session(
            run.user_id, run.session_id, {"status": AWAITING_APPROVAL, "updated_at": now},
            expect={"active_run_id": run.run_id},
        )  # fmt: skip
        stage = paused.stages[index]
        await self.bus.publish(
            run.session_id, "run.awaiting_approval",
            {"stage": stage.name, "index": index, "output": stage.output or "",
             "since": format_ts(now)},
            run.run_id, generation=run.generation,
        )  # fmt: skip
        await self._after_pause(paused)
        return paused

    async def end_awaiting(
        self, run: Run, error: str, event: str, data: dict[str, Any]
    ) -> Run | None:
        """End a run awaiting approval as cancelled with ``error`` (rejected, timed out).

        Conditional on the gate it awaits: of a reject, an approve, a cancel and the
        timeout, one wins. Publishes ``event`` (with the stage) and then run.cancelled.
        """
        index = run.awaiting_stage
        if run.status != AWAITING_APPROVAL or index is None:
            return None
        stage = run.stages[index]
        return await self._end(
            run, "cancelled", {"cancel_requested": True, "error": error},
            {"awaiting_stage": index, "generation": run.generation},
            lambda _: {"error": error},
            preface=(event, {"stage": stage.name, "index": index, **data}),
        )  # fmt: skip

    async def _partial_of(self, run: Run, index: int) -> str | None:
        """The text the stage had streamed (kept when it is cancelled or fails)."""
        partial = await self.bus.partial(run.run_id)
        if partial is None or partial.stage != run.stages[index].name or not partial.text:
            return None
        return partial.text

    async def _end(
        self,
        run: Run,
        status: RunStatus,
        fields: dict[str, Any],
        expect: dict[str, Any],
        event_data: Callable[[Run], dict[str, Any]],
        *,
        preface: tuple[str, dict[str, Any]] | None = None,
        on_win: Callable[[Run], Awaitable[None]] | None = None,
    ) -> Run | None:
        """End the run (one winner), free its session, publish run.<status>, then react.

        ``preface`` is an event the winner publishes just before run.<status> (e.g.
        run.rejected before run.cancelled); ``on_win`` runs before both, once the run has
        ended and its session is freed.
        """
        now = utcnow()
        for i, stage in enumerate(run.stages):
            if status == "cancelled" and stage.status in ("pending", "running"):
                fields[f"stages.{i}.status"] = "cancelled"
                fields[f"stages.{i}.finished_at"] = now
                if stage.status == "running":
                    fields[f"stages.{i}.partial"] = await self._partial_of(run, i)
        for active in OPEN_RUN_STATUSES:
            ended = await self.store.update_run(
                run.run_id,
                {
                    "status": status,
                    "finished_at": now,
                    "updated_at": now,
                    "awaiting_stage": None,
                    "awaiting_since": None,
                    **fields,
                },
                expect={"status": active, **expect},
            )
            if ended is not None:
                await self.store.update_session(
                    ended.user_id, ended.session_id,
                    {"status": status, "active_run_id": None, "updated_at": now},
                    expect={"active_run_id": ended.run_id},
                )  # fmt: skip
                if on_win is not None:
                    await on_win(ended)
                if preface is not None:
                    await self.bus.publish(ended.session_id, *preface, ended.run_id)
                await self.bus.publish(
                    ended.session_id, f"run.{status}", event_data(ended), ended.run_id
                )
                await self._after_end(ended)
                return ended
        return None

    async def _after_end(self, ended: Run) -> None:
        """React to a run that reached a final status (called once, by the ending's winner,
        after its run.<status> event): the one hook for what follows a run's end, a line
        per reaction."""
        # Notify: the user's webhook, unless a socket of theirs watches the session.
        event = ENDING_EVENTS.get(ended.status)
        if event is not None:
            await notify_run(self.store, self.redis, self.keys, ended, event)
        await self._queue_after_end(ended)  # double texting: start the next queued message

    async def _after_pause(self, run: Run) -> None:
        """React to a run that started waiting for the user's approval (once per wait)."""
        log.info("run %s awaits approval of stage %s", run.run_id, run.awaiting_stage)
        await notify_run(self.store, self.redis, self.keys, run, "run.awaiting_approval")

    async def cancel(self, run: Run, expect: dict[str, Any] | None = None) -> Run | None:
        """End the run as cancelled (unfinished stages too) and publish run.cancelled."""
        return await self._end(
            run, "cancelled", {"cancel_requested": True}, expect or {}, lambda _: {}
        )

    async def fail(
        self, run: Run, error: str, expect: dict[str, Any] | None = None, *,
        error_code: str | None = None,
    ) -> Run | None:  # fmt: skip
        """End the run as failed and publish run.failed with the error (and its code)."""
        return await self._end(
            run, "failed", {"error": error, "error_code": error_code}, expect or {},
            lambda _: {"error": error, "error_code": error_code},
        )  # fmt: skip

    async def complete(self, run: Run, answer: Message) -> Run | None:
        """Write the answer once, end the run as completed and publish run.completed."""
        await self.store.insert_message(answer)

        async def extend_branch(ended: Run) -> None:
            # The answer extends the branch it answers, if that branch is still the selected
            # one (before run.completed, so a client reloading on it sees the new head).
            await self.store.update_session(
                ended.user_id, ended.session_id, {"head_message_id": answer.message_id},
                expect={"head_message_id": ended.input_message_id},
            )  # fmt: skip

        return await self._end(
            run, "completed", {}, {"generation": run.generation},
            lambda ended: {"message": answer.model_dump(mode="json"),
                           "usage": ended.usage.model_dump(mode="json")},
            on_win=extend_branch,
        )  # fmt: skip
