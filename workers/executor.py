"""StageExecutor: load run → hold the stage's lease → prompt → ModelChain → checkpoint.

Every state change goes through the RunService. The executor holds the stage's lease
while it streams (renewed beside the stream); it stops its own stream when the run is
cancelled, when the lease is lost or when the run's generation moves on (a takeover),
and then writes and publishes nothing. Idempotent (arq may run a job twice): a final
run, an outdated generation or a completed stage is never redone; of two concurrent
executions of one job only one starts the stage.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from server.pipelines import Agent
from server.pipelines.registry import UnknownName
from server.runs.leases import Lease
from server.sessions.branches import load_tree
from server.store.models import FINAL_RUN_STATUSES, Run, Usage
from workers.budget_meter import BudgetMeter
from workers.context import WorkerDeps
from workers.model_chain import StageCancelled, StageFailed
from workers.observer import StageObserver

log = logging.getLogger("chorus.executor")
# The run's message and the messages before it on its branch, at most.
_HISTORY_MESSAGES = 50


class StageExecutor:
    """Execute one stage of one run."""

    def __init__(self, deps: WorkerDeps) -> None:
        self.deps = deps
        self.runs = deps.runs

    async def execute(self, run_id: str, index: int, generation: int) -> None:
        """Run stage ``index`` of the run unless it is already done, outdated or cancelled."""
        run = await self.deps.store.get_run(run_id)
        if run is None or run.status in FINAL_RUN_STATUSES or run.generation != generation:
            return
        if await self.runs.cancel_requested(run):
            await self.runs.cancel(run, expect={"generation": generation})
            return
        stage = run.stages[index]
        if stage.status == "completed":
            await self.runs.advance(run, index)
            return
        if stage.status not in ("pending", "running"):
            return
        async with self.deps.leases.holding(run_id, generation, index) as lease:
            if lease is None:  # another execution of this stage holds it
                return
            started = await self.runs.start_stage(run, index)
            if started is None:
                await self._start_refused(run_id, generation)
                return
            await self._perform(started, index, lease)

    async def _start_refused(self, run_id: str, generation: int) -> None:
        """A start refused because a cancel came first: the cancel wins, here."""
        run = await self.deps.store.get_run(run_id)
        if run is not None and run.generation == generation and run.cancel_requested:
            await self.runs.cancel(run, expect={"generation": generation})

    async def _perform(self, run: Run, index: int, lease: Lease) -> None:
        d, stage = self.deps, run.stages[index]
        try:
            agent = d.registry.agent(stage.agent)
        except UnknownName:  # the pipelines file changed under a running session
            await self.runs.fail_stage(
                run, index, f"Agent {stage.agent!r} is no longer configured on this server."
            )
            return
        models = None
        if stage.model_override is not None:  # a re-run with one chosen model
            if not await self._model_configured(run, index, stage.model_override):
                return
            models = (stage.model_override,)
        messages = await self._prompt(run, index)
        meter = await self._meter(run, agent, messages)
        observer = StageObserver(
            bus=d.bus, store=d.store, session_id=run.session_id, run_id=run.run_id,
            user_id=run.user_id, stage=stage.name, flush_ms=d.settings.delta_flush_ms,
            generation=run.generation, meter=meter,
        )  # fmt: skip
        try:
            result = await d.chain.run(
                agent, messages, observer, self._stop_check(run, lease, meter), models=models
            )
        except StageCancelled:
            await observer.close()
            if not await self._superseded(run, lease):
                await self._stopped(run, index, meter, observer)
            return
        except StageFailed as exc:
            await observer.close()
            if not await self._superseded(run, lease):
                await self.runs.fail_stage(run, index, str(exc), usage=observer.usage())
            return
        await observer.close()
        if await self._superseded(run, lease):
            return
        usage = Usage(
            prompt_tokens=result.usage.prompt_tokens,
            completion_tokens=result.usage.completion_tokens,
            cost_usd=result.usage.cost_usd,
        )
        completed = await self.runs.complete_stage(run, index, result.text, result.model, usage)
        if completed is not None:
            await self.runs.advance(completed, index)

    async def _stopped(
        self, run: Run, index: int, meter: BudgetMeter | None, observer: StageObserver
    ) -> None:
        """The stream stopped on its check: a budget spent (the stage fails keeping its text;
        its calls' usage counts), else a cancel."""
        budgets = self.runs.d.budgets
        if meter is not None and meter.exceeded is not None and budgets:
            error = budgets.error(meter.exceeded).message
            await self.runs.fail_stage(
                run, index, error, usage=observer.usage(), error_code="budget_exceeded"
            )
        else:
            await self.runs.cancel(run, expect={"generation": run.generation})

    async def _model_configured(self, run: Run, index: int, model: str) -> bool:
        """Whether the model a re-run chose is still configured; else the stage fails."""
        try:
            self.deps.registry.model(model)
        except UnknownName:
            await self.runs.fail_stage(
                run, index, f"Model {model!r} is no longer configured on this server."
            )
            return False
        return True

    async def _superseded(self, run: Run, lease: Lease) -> bool:
        """Whether this execution lost its stage (lease taken, generation moved on)."""
        lost = lease.lost.is_set() or await self.deps.leases.fenced_out(run.run_id, run.generation)
        if lost:
            log.warning(
                "stage %d of run %s was taken over (generation %d is outdated): "
                "stopped without writing", lease.index, run.run_id, run.generation,
            )  # fmt: skip
        return lost

    async def _meter(
        self, run: Run, agent: Agent, messages: list[dict[str, str]]
    ) -> BudgetMeter | None:
        """The stage's budget meter (None without budgets, or for a user gone meanwhile)."""
        book = self.runs.d.budgets
        user = None if book is None else await self.deps.store.get_user(run.user_id)
        if book is None or user is None:
            return None
        return BudgetMeter(book, user, self.deps.registry, agent, messages)

    def _stop_check(
        self, run: Run, lease: Lease, meter: BudgetMeter | None = None
    ) -> Callable[[], Awaitable[bool]]:
        """The check the chain polls (about every 50 ms) while the stage streams: a cancel,
        a lost lease or fence, or (charging the stream so far) a spent daily budget."""
        d = self.deps
        cancel_key = d.keys.run_cancel(run.run_id, run.generation)
        fence_key = d.keys.run_fence(run.run_id)

        async def should_stop() -> bool:
            if lease.lost.is_set():
                return True
            cancelled, fence = await d.redis.mget([cancel_key, fence_key])
            if cancelled is not None or (fence is not None and int(fence) > run.generation):
                return True
            return meter is not None and await meter.spent()

        return should_stop

    async def _prompt(self, run: Run, index: int) -> list[dict[str, str]]:
        """The agent's messages: the branch before the run's message, it (with the run's
        amendments so far, each as a follow-up paragraph), earlier outputs.

        The history is the path of parents from the run's input message (its branch), not
        the session's newest messages: other branches are never in the prompt.
        """
        d = self.deps
        tree = await load_tree(d.store, run.user_id, run.session_id)
        path = [link.message_id for link in tree.path(run.input_message_id)][-_HISTORY_MESSAGES:]
        wanted = [*path, *(m for m in run.amendments if m not in path)]
        messages = await d.store.get_messages(run.user_id, run.session_id, wanted)
        current = next((m for m in messages if m.message_id == run.input_message_id), None)
        earlier = [m for m in messages if m is not current and m.message_id in path]
        amendments = [
            m.content for m in messages if m.message_id in run.amendments and m.run_id == run.run_id
        ]
        outputs = {s.name: s.output or "" for s in run.stages[:index]}
        return d.registry.build_messages(
            d.registry.agent(run.stages[index].agent),
            history=[(m.role, m.content) for m in earlier],
            message="\n\n".join([current.content if current else "", *amendments]),
            outputs=outputs,
            stage=run.stages[index].name,
        )
