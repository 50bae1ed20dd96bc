"""RunService: the one owner of run state (DESIGN §3, §9).

Every transition of a run — start, cancel, retry, a stage starting, completing or
failing, the run ending, a lapsed stage taken over, a stale run reaped — is made here,
by REST and WebSocket handlers and by workers alike. Each transition is a conditional
store update on the state it starts from, so when two parties race (a cancel and a
worker, two watchdogs, a zombie worker and its successor) exactly one of them wins, and
only the winner publishes. Stage events carry the run's generation: the publish script
drops those of a generation that is no longer current (fencing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis

from server.budgets import BudgetBook
from server.config import Settings
from server.errors import InvalidRequest, NotFound, SessionBusy, Unauthorized
from server.events.bus import EventBus
from server.pipelines import AgentRegistry
from server.ratelimit import RateLimiter, Rule
from server.redis_keys import RedisKeys
from server.runs.leases import LeaseBook
from server.runs.queue import enqueue_stage
from server.runs.recovery import RunRecovery
from server.store.base import Store
from server.store.models import (
    FINAL_RUN_STATUSES,
    ChatSession,
    Message,
    Run,
    StageState,
    User,
    new_id,
    utcnow,
)

log = logging.getLogger("chorus.runs")
_CANCEL_FLAG_TTL_S = 24 * 3600


@dataclass(frozen=True)
class RunDeps:
    """What the RunService works with (the same in web and worker processes)."""

    settings: Settings
    store: Store
    redis: ArqRedis
    keys: RedisKeys
    bus: EventBus
    registry: AgentRegistry
    leases: LeaseBook
    limiter: RateLimiter | None = None
    # Told the reason of each takeover (the worker counts them in its metrics).
    on_takeover: Callable[[str], None] | None = None
    # Daily token and cost budgets: checked before a run starts, and while a stage streams.
    budgets: BudgetBook | None = None


class RunService(RunRecovery):
    """Start, cancel, retry, advance, end, take over and reap runs.

    The stage transitions and endings are in ``RunEndings``, takeovers and reaping in
    ``RunRecovery``; this class adds the user's commands.
    """

    # ----- user commands (REST and WebSocket) -----

    async def _own_run(self, user: User, run_id: str) -> Run:
        run = await self.store.get_run(run_id, user.user_id)
        if run is None:
            raise NotFound("run not found")
        return run

    async def _limit_llm_work(self, user: User) -> None:
        if self.d.budgets is not None:
            # The stored user, not the socket's copy: an admin may have changed its budget
            # or disabled it since the socket opened.
            current = await self.store.get_user(user.user_id)
            if current is None or current.disabled:
                raise Unauthorized("this account is disabled")
            await self.d.budgets.check(current)
        if self.d.limiter is None:
            return
        limits = self.d.settings.limits
        await self.d.limiter.enforce(
            Rule("llm-user", user.user_id, limits.llm_per_user, limits.llm_window_s),
            Rule("llm-global", "all", limits.llm_global, limits.llm_window_s),
        )

    async def _claim(self, session: ChatSession, run_id: str) -> None:
        """Make ``run_id`` the session's active run (a claim on an ended run is freed first)."""
        if not await self.free_stale_claim(session):
            raise SessionBusy("this session already has an active run")
        claimed = await self.store.update_session(
            session.user_id, session.session_id,
            {"active_run_id": run_id, "status": "queued", "updated_at": utcnow()},
            expect={"active_run_id": None},
        )  # fmt: skip
        if claimed is None:
            raise SessionBusy("this session already has an active run")

    async def post_message(self, user: User, session_id: str, content: str) -> tuple[Message, Run]:
        """Store the user's message and start a run of the session's pipeline."""
        if not content.strip():
            raise InvalidRequest("content: must not be blank")
        session = await self.store.get_session(user.user_id, session_id)
        if session is None:
            raise NotFound("session not found")
        if session.active_run_id is not None and not await self.free_stale_claim(session):
            raise SessionBusy("this session already has an active run")
        session = session.model_copy(update={"active_run_id": None})
        await self._limit_llm_work(user)
        pipeline = self.registry.pipeline(session.pipeline)
        message = Message(session_id=session_id, user_id=user.user_id, role="user", content=content)
        run = Run(
            session_id=session_id, user_id=user.user_id, pipeline=pipeline.name,
            input_message_id=message.message_id, assistant_message_id=new_id(),
            stages=[StageState(name=s.name, agent=s.agent) for s in pipeline.stages],
        )  # fmt: skip
        message.run_id = run.run_id
        await self._claim(session, run.run_id)
        try:
            await self.store.insert_message(message)
            await self.store.insert_run(run)
        except Exception:
            await self._unclaim(run, session.status)
            raise
        await self.bus.publish(
            session_id, "message.created", {"message": message.model_dump(mode="json")}, run.run_id
        )
        await self._queue(run, 0)
        return message, run

    async def _unclaim(self, run: Run, status: str) -> None:
        await self.store.update_session(
            run.user_id, run.session_id, {"active_run_id": None, "status": status},
            expect={"active_run_id": run.run_id},
        )  # fmt: skip

    async def _queue(self, run: Run, stage_index: int) -> None:
        await self.bus.publish(
            run.session_id, "run.queued", {"run": run.model_dump(mode="json")}, run.run_id
        )
        await enqueue_stage(self.redis, self.keys, run.run_id, stage_index, run.generation)

    async def cancel_run(self, user: User, run_id: str) -> Run:
        """Cancel a run: at once unless a stage is streaming, else within the stage's poll."""
        run = await self._own_run(user, run_id)
        return await self.request_cancel(run)

    async def request_cancel(self, run: Run) -> Run:
        """Flag the run cancelled; end it here if no stage of it is running."""
        if run.status in FINAL_RUN_STATUSES:
            return run
        await self.redis.set(
            self.keys.run_cancel(run.run_id, run.generation), "1", ex=_CANCEL_FLAG_TTL_S
        )
        flagged = await self.store.update_run(run.run_id, {"cancel_requested": True}) or run
        index = flagged.current_stage()
        if flagged.stages[index].status == "pending":
            # Queued, or between stages: no stage streams, so cancel wins here and now. A
            # stage that starts meanwhile fails its start (it expects no cancel request).
            ended = await self.cancel(flagged, expect={f"stages.{index}.status": "pending"})
            if ended is not None:
                return ended
        return await self.store.get_run(run.run_id) or flagged

    async def retry_run(self, user: User, run_id: str) -> Run:
        """Resume a failed or cancelled run from its first stage not completed."""
        run = await self._own_run(user, run_id)
        if run.status not in ("failed", "cancelled"):
            raise SessionBusy("only a failed or cancelled run can be retried")
        first = next((i for i, s in enumerate(run.stages) if s.status != "completed"), None)
        if first is None:
            raise InvalidRequest("run_id: every stage of this run is completed")
        await self._limit_llm_work(user)
        session = await self.store.get_session(user.user_id, run.session_id)
        if session is None:
            raise NotFound("session not found")
        await self._claim(session, run.run_id)
        fields: dict[str, Any] = {
            "status": "queued", "error": None, "error_code": None, "cancel_requested": False,
            "finished_at": None,
            "generation": run.generation + 1, "recoveries": 0, "updated_at": utcnow(),
        }  # fmt: skip
        for i in range(first, len(run.stages)):
            stage = run.stages[i]  # a fresh state, but the count of attempts carries on
            fields[f"stages.{i}"] = StageState(
                name=stage.name, agent=stage.agent, attempts=stage.attempts
            )
        await self.leases.fence(run.run_id, run.generation + 1)
        retried = await self.store.update_run(run_id, fields, expect={"status": run.status})
        if retried is None:
            await self._unclaim(run, run.status)
            raise SessionBusy("the run changed meanwhile; reload it")
        await self._queue(retried, first)
        return retried

    async def delete_session(self, user: User, session_id: str) -> None:
        """Cancel the session's active run, then delete it with its messages and runs."""
        session = await self.store.get_session(user.user_id, session_id)
        if session is None:
            raise NotFound("session not found")
        if session.active_run_id is not None:
            run = await self.store.get_run(session.active_run_id, user.user_id)
            if run is not None:
                await self.request_cancel(run)
        await self.store.delete_session(user.user_id, session_id)

    async def run_view(self, user: User, run_id: str) -> dict[str, Any]:
        """The run as REST shows it: its running stage carries the text streamed so far."""
        return await self.with_partial(await self._own_run(user, run_id))

    async def with_partial(self, run: Run) -> dict[str, Any]:
        """Dump the run, adding the running stage's partial text, seq and epoch."""
        body = run.model_dump(mode="json")
        if run.status in FINAL_RUN_STATUSES:
            return body
        partial = await self.bus.partial(run.run_id)
        for stage in body["stages"]:
            if (
                partial is not None
                and stage["status"] == "running"
                and stage["name"] == partial.stage
            ):
                stage.update(
                    partial=partial.text, partial_seq=partial.seq, partial_epoch=partial.epoch
                )
        return body
