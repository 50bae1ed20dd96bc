"""StageExecutor: load run → build prompt → ModelChain → publish → checkpoint → advance.

Idempotent (arq may run a job twice): a final run, an outdated generation or a
completed stage is never redone; the next stage's job id is stable; the assistant
message has an id fixed when the run was created, so it is written once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from server.markdown import render_markdown
from server.runs.lifecycle import FINAL_RUN_STATUSES
from server.runs.queue import enqueue_stage
from server.store.models import Message, Run, Usage, utcnow
from workers.context import WorkerDeps
from workers.model_chain import ChainResult, StageCancelled, StageFailed
from workers.observer import StageObserver

log = logging.getLogger("chorus.executor")


class StageExecutor:
    """Execute one stage of one run."""

    def __init__(self, deps: WorkerDeps) -> None:
        self.deps = deps

    async def execute(self, run_id: str, index: int, generation: int) -> None:
        """Run stage ``index`` of the run unless it is already done or outdated."""
        d = self.deps
        run = await d.store.get_run(run_id)
        if run is None or run.status in FINAL_RUN_STATUSES or run.generation != generation:
            return
        if run.cancel_requested or await d.redis.exists(d.keys.run_cancel(run_id)):
            await d.lifecycle.cancel(run)
            return
        stage = run.stages[index]
        if stage.status == "completed":
            await self._advance(run, index)
            return
        if stage.status not in ("pending", "running"):
            return
        started = await self._mark_started(run, index)
        if started is None:
            return
        await self._perform(started, index)

    async def _mark_started(self, run: Run, index: int) -> Run | None:
        d, stage, now = self.deps, run.stages[index], utcnow()
        fields: dict[str, Any] = {
            "status": "running", "updated_at": now,
            f"stages.{index}.status": "running", f"stages.{index}.started_at": now,
            f"stages.{index}.attempts": stage.attempts + 1, f"stages.{index}.error": None,
        }  # fmt: skip
        updated = await d.store.update_run(
            run.run_id, fields, expect={"status": run.status, "generation": run.generation}
        )
        if updated is None:
            return None
        if run.status == "queued":
            await d.bus.publish(run.session_id, "run.started", {"run_id": run.run_id}, run.run_id)
        if stage.status == "running":  # a worker died mid-stage: discard its partial text
            await d.bus.publish(run.session_id, "stage.reset", {"stage": stage.name}, run.run_id)
        await d.bus.publish(
            run.session_id, "stage.started",
            {"stage": stage.name, "index": index, "agent": stage.agent,
             "attempt": stage.attempts + 1},
            run.run_id,
        )  # fmt: skip
        if run.status == "queued":  # after the events: a store write less before the stage starts
            await d.store.update_session(
                run.user_id, run.session_id, {"status": "running", "updated_at": now},
                expect={"active_run_id": run.run_id},
            )  # fmt: skip
        return updated

    async def _perform(self, run: Run, index: int) -> None:
        d, stage = self.deps, run.stages[index]
        observer = StageObserver(
            bus=d.bus, store=d.store, session_id=run.session_id, run_id=run.run_id,
            user_id=run.user_id, stage=stage.name, flush_ms=d.settings.delta_flush_ms,
        )  # fmt: skip
        agent = d.registry.agent(stage.agent)
        messages = await self._prompt(run, index)
        try:
            result = await d.chain.run(agent, messages, observer, self._cancel_check(run.run_id))
        except StageCancelled:
            await observer.close()
            await d.lifecycle.cancel(run)
            return
        except StageFailed as exc:
            await observer.close()
            await self._fail(run, index, str(exc), observer)
            return
        await observer.close()
        completed = await self._complete(run, index, result)
        if completed is not None:
            await self._advance(completed, index)

    def _cancel_check(self, run_id: str) -> Callable[[], Awaitable[bool]]:
        """A cancel check the chain polls (about every 50 ms) while the stage streams."""
        d = self.deps

        async def is_cancelled() -> bool:
            return bool(await d.redis.exists(d.keys.run_cancel(run_id)))

        return is_cancelled

    async def _prompt(self, run: Run, index: int) -> list[dict[str, str]]:
        """The agent's messages: history before this run, the message, earlier outputs."""
        d = self.deps
        history = await d.store.list_messages(run.user_id, run.session_id, limit=50)
        current = next((m for m in history if m.message_id == run.input_message_id), None)
        earlier = [m for m in history if m.created_at < current.created_at] if current else history
        outputs = {s.name: s.output or "" for s in run.stages[:index]}
        return d.registry.build_messages(
            d.registry.agent(run.stages[index].agent),
            history=[(m.role, m.content) for m in earlier if m.run_id != run.run_id],
            message=current.content if current else "",
            outputs=outputs,
            stage=run.stages[index].name,
        )

    async def _complete(self, run: Run, index: int, result: ChainResult) -> Run | None:
        d, stage, now = self.deps, run.stages[index], utcnow()
        usage = Usage(
            prompt_tokens=result.usage.prompt_tokens,
            completion_tokens=result.usage.completion_tokens,
            cost_usd=result.usage.cost_usd,
        )
        completed = await d.store.update_run(
            run.run_id,
            {f"stages.{index}.status": "completed", f"stages.{index}.output": result.text,
             f"stages.{index}.model": result.model, f"stages.{index}.usage": usage,
             f"stages.{index}.finished_at": now, "usage": run.usage.plus(usage),
             "updated_at": now},
            expect={"status": "running", "generation": run.generation},
        )  # fmt: skip
        if completed is not None:
            await d.bus.publish(
                run.session_id, "stage.completed",
                {"stage": stage.name, "index": index, "output": result.text,
                 "model": result.model, "usage": usage.model_dump(mode="json")},
                run.run_id,
            )  # fmt: skip
        return completed

    async def _advance(self, run: Run, index: int) -> None:
        d = self.deps
        if index + 1 < len(run.stages):
            await enqueue_stage(d.redis, d.keys, run.run_id, index + 1, run.generation)
            return
        output = run.stages[index].output or ""
        answer = Message(
            message_id=run.assistant_message_id or f"{run.run_id}-answer",
            session_id=run.session_id, user_id=run.user_id, role="assistant",
            content=output, content_html=await render_markdown(output), run_id=run.run_id,
        )  # fmt: skip
        await d.lifecycle.complete(run, answer)

    async def _fail(self, run: Run, index: int, error: str, observer: StageObserver) -> None:
        d, now = self.deps, utcnow()
        failed = await d.store.update_run(
            run.run_id,
            {f"stages.{index}.status": "failed", f"stages.{index}.error": error,
             f"stages.{index}.finished_at": now, "updated_at": now},
            expect={"status": "running", "generation": run.generation},
        )  # fmt: skip
        if failed is not None:
            log.warning("stage %s failed: %s", run.stages[index].name, error)
            await d.lifecycle.fail(failed, f"stage {run.stages[index].name} failed: {error}")
