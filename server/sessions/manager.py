"""SessionManager: user messages become runs; runs are cancelled and retried here.

REST and WebSocket commands both go through this one class, so the rules (one
active run per session, LLM rate limits, events published) hold whichever way in.
"""

from __future__ import annotations

import logging
from typing import Any

from arq.connections import ArqRedis

from server.config import Settings
from server.errors import InvalidRequest, NotFound, SessionBusy
from server.events.bus import EventBus
from server.pipelines import AgentRegistry
from server.ratelimit import RateLimiter, Rule
from server.redis_keys import RedisKeys
from server.runs.lifecycle import FINAL_RUN_STATUSES, RunLifecycle
from server.runs.queue import enqueue_stage
from server.store.base import Store
from server.store.models import ChatSession, Message, Run, StageState, User, new_id, utcnow

log = logging.getLogger("chorus.sessions")
_CANCEL_FLAG_TTL_S = 24 * 3600


class SessionManager:
    """Start, cancel and retry runs for a user's sessions."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        arq: ArqRedis,
        keys: RedisKeys,
        bus: EventBus,
        limiter: RateLimiter,
        registry: AgentRegistry,
    ) -> None:
        self._settings = settings
        self._store = store
        self._arq = arq
        self._keys = keys
        self._bus = bus
        self._limiter = limiter
        self._registry = registry
        self._lifecycle = RunLifecycle(store, bus)

    async def _session(self, user: User, session_id: str) -> ChatSession:
        session = await self._store.get_session(user.user_id, session_id)
        if session is None:
            raise NotFound("session not found")
        return session

    async def _run(self, user: User, run_id: str) -> Run:
        run = await self._store.get_run(run_id, user.user_id)
        if run is None:
            raise NotFound("run not found")
        return run

    async def _limit_llm_work(self, user: User) -> None:
        limits = self._settings.limits
        await self._limiter.enforce(
            Rule("llm-user", user.user_id, limits.llm_per_user, limits.llm_window_s),
            Rule("llm-global", "all", limits.llm_global, limits.llm_window_s),
        )

    async def _claim(self, user: User, session_id: str, run_id: str, status: str) -> None:
        claimed = await self._store.update_session(
            user.user_id, session_id,
            {"active_run_id": run_id, "status": status, "updated_at": utcnow()},
            expect={"active_run_id": None},
        )  # fmt: skip
        if claimed is None:
            raise SessionBusy("this session already has an active run")

    async def post_message(self, user: User, session_id: str, content: str) -> tuple[Message, Run]:
        """Store the user's message and start a run of the session's pipeline."""
        if not content.strip():
            raise InvalidRequest("content: must not be blank")
        session = await self._session(user, session_id)
        if session.active_run_id is not None:
            raise SessionBusy("this session already has an active run")
        await self._limit_llm_work(user)
        pipeline = self._registry.pipeline(session.pipeline)
        message = Message(session_id=session_id, user_id=user.user_id, role="user", content=content)
        run = Run(
            session_id=session_id, user_id=user.user_id, pipeline=pipeline.name,
            input_message_id=message.message_id, assistant_message_id=new_id(),
            stages=[StageState(name=s.name, agent=s.agent) for s in pipeline.stages],
        )  # fmt: skip
        message.run_id = run.run_id
        await self._claim(user, session_id, run.run_id, "queued")
        try:
            await self._store.insert_message(message)
            await self._store.insert_run(run)
        except Exception:
            await self._store.update_session(
                user.user_id, session_id, {"active_run_id": None, "status": session.status},
                expect={"active_run_id": run.run_id},
            )  # fmt: skip
            raise
        await self._bus.publish(
            session_id, "message.created", {"message": message.model_dump(mode="json")}, run.run_id
        )
        await self._start(run, 0)
        return message, run

    async def _start(self, run: Run, stage_index: int) -> None:
        await self._bus.publish(
            run.session_id, "run.queued", {"run": run.model_dump(mode="json")}, run.run_id
        )
        await enqueue_stage(self._arq, self._keys, run.run_id, stage_index, run.generation)

    async def cancel_run(self, user: User, run_id: str) -> Run:
        """Cancel a run: at once if no stage job has started, else at the worker's next check."""
        run = await self._run(user, run_id)
        if run.status in FINAL_RUN_STATUSES:
            return run
        await self._arq.set(self._keys.run_cancel(run_id), "1", ex=_CANCEL_FLAG_TTL_S)
        flagged = await self._store.update_run(run_id, {"cancel_requested": True})
        if run.status == "queued":
            # No stage job has claimed the run yet: cancel wins, here and now.
            ended = await self._lifecycle.cancel(flagged or run)
            if ended is not None:
                return ended
        return await self._run(user, run_id)

    async def retry_run(self, user: User, run_id: str) -> Run:
        """Resume a failed or cancelled run from its first stage not completed."""
        run = await self._run(user, run_id)
        if run.status not in ("failed", "cancelled"):
            raise SessionBusy("only a failed or cancelled run can be retried")
        first = next((i for i, s in enumerate(run.stages) if s.status != "completed"), None)
        if first is None:
            raise InvalidRequest("run_id: every stage of this run is completed")
        await self._limit_llm_work(user)
        await self._claim(user, run.session_id, run.run_id, "queued")
        fields: dict[str, Any] = {
            "status": "queued", "error": None, "cancel_requested": False, "finished_at": None,
            "generation": run.generation + 1, "updated_at": utcnow(),
        }  # fmt: skip
        for i in range(first, len(run.stages)):
            stage = run.stages[i]  # a fresh state, but the count of attempts carries on
            fields[f"stages.{i}"] = StageState(
                name=stage.name, agent=stage.agent, attempts=stage.attempts
            )
        await self._arq.delete(self._keys.run_cancel(run_id))
        retried = await self._store.update_run(run_id, fields, expect={"status": run.status})
        if retried is None:
            await self._store.update_session(
                user.user_id, run.session_id, {"active_run_id": None, "status": run.status},
                expect={"active_run_id": run.run_id},
            )  # fmt: skip
            raise SessionBusy("the run changed meanwhile; reload it")
        await self._start(retried, first)
        return retried
