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

from server.config import Settings
from server.errors import InvalidRequest, NotFound, NotLatest, SessionBusy, UnknownModel
from server.events.bus import EventBus
from server.pipelines import AgentRegistry
from server.pipelines.registry import UnknownName
from server.ratelimit import RateLimiter, Rule
from server.redis_keys import RedisKeys
from server.runs.leases import LeaseBook
from server.runs.queue import enqueue_stage
from server.runs.recovery import RunRecovery
from server.sessions.branches import load_tree
from server.store.base import Store
from server.store.models import (
    FINAL_RUN_STATUSES,
    ChatSession,
    Message,
    Run,
    StageResult,
    StageState,
    StageVersion,
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
        if self.d.limiter is None:
            return
        limits = self.d.settings.limits
        await self.d.limiter.enforce(
            Rule("llm-user", user.user_id, limits.llm_per_user, limits.llm_window_s),
            Rule("llm-global", "all", limits.llm_global, limits.llm_window_s),
        )

    async def _claim(self, session: ChatSession, run_id: str, head: str | None = None) -> None:
        """Make ``run_id`` the session's active run (a claim on an ended run is freed first).

        With ``head``, the same write selects the branch ending there (docs/architecture.md,
        "Branches").
        """
        if not await self.free_stale_claim(session):
            raise SessionBusy("this session already has an active run")
        fields: dict[str, Any] = {
            "active_run_id": run_id,
            "status": "queued",
            "updated_at": utcnow(),
        }
        expect: dict[str, Any] = {"active_run_id": None}
        if head is not None:  # and the branch the caller saw is still the selected one
            fields["head_message_id"] = head
            expect["head_message_id"] = session.head_message_id
        claimed = await self.store.update_session(
            session.user_id, session.session_id, fields, expect=expect
        )
        if claimed is None:
            raise SessionBusy("this session already has an active run")

    async def post_message(
        self, user: User, session_id: str, content: str, *, edit_of: str | None = None
    ) -> tuple[Message, Run]:
        """Store the user's message and start a run of the session's pipeline.

        ``edit_of`` names an earlier user message: the new one becomes its alternative (the
        same parent), a new branch the session selects; the old branch stays readable.
        """
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
        await self._start_run(session, run, message, edit_of=edit_of)
        return message, run

    async def _start_run(
        self, session: ChatSession, run: Run, message: Message | None, *, edit_of: str | None = None
    ) -> None:
        """Place the message in the session's tree, claim the session, store, announce, queue.

        A new message follows the selected branch's tip (or, with ``edit_of``, shares the
        edited message's parent); without one (a regenerate) the run answers its input
        message again. The claim selects the branch ending at the run's input; the message
        and the run are stored after it (undone if that fails), so no run is ever stored
        without its input message.
        """
        branched = message is None or edit_of is not None
        if message is not None:
            await self._place(session, message, edit_of)
        head = run.input_message_id
        await self._claim(session, run.run_id, head=head)
        stored = False
        try:
            if message is not None:
                stored = await self.store.insert_message(message)
            await self.store.insert_run(run)
        except Exception:
            if stored:  # no message of a run never stored: the switcher would offer it
                assert message is not None
                await self.store.delete_message(
                    session.user_id, session.session_id, message.message_id
                )
            await self._unclaim(run, session.status, {"head_message_id": session.head_message_id})
            raise
        if message is not None:
            await self.bus.publish(
                session.session_id, "message.created",
                {"message": message.model_dump(mode="json")}, run.run_id,
            )  # fmt: skip
        if branched:
            await self._announce_head(session.session_id, head, run.run_id)
        await self._queue(run, 0)

    async def _place(self, session: ChatSession, message: Message, edit_of: str | None) -> None:
        """Set the new message's parent: the selected tip, or the edited message's parent."""
        if edit_of is None and session.head_message_id is not None:
            message.parent_id = session.head_message_id
            return
        tree = await load_tree(self.store, session.user_id, session.session_id)
        if edit_of is None:
            message.parent_id = tree.head(session)
            return
        if edit_of not in tree or tree.link(edit_of).role != "user":
            raise InvalidRequest("edit_of: no such user message in this session")
        message.parent_id, message.edit_of = tree.parent(edit_of), edit_of

    async def _announce_head(self, session_id: str, head: str, run_id: str | None) -> None:
        await self.bus.publish(session_id, "branch.selected", {"head_message_id": head}, run_id)

    async def _unclaim(self, run: Run, status: str, extra: dict[str, Any] | None = None) -> None:
        await self.store.update_session(
            run.user_id, run.session_id, {"active_run_id": None, "status": status, **(extra or {})},
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
        # The session shows the run's branch while it runs (the answer extends it).
        await self._claim(session, run.run_id, head=run.input_message_id)
        fields: dict[str, Any] = {
            "status": "queued", "error": None, "cancel_requested": False, "finished_at": None,
            "generation": run.generation + 1, "recoveries": 0, "updated_at": utcnow(),
        }  # fmt: skip
        for i in range(first, len(run.stages)):
            stage = run.stages[i]  # a fresh state; attempts, versions and a chosen model carry on
            fields[f"stages.{i}"] = StageState(
                name=stage.name, agent=stage.agent, attempts=stage.attempts,
                versions=stage.versions, model_override=stage.model_override,
            )  # fmt: skip
        await self.leases.fence(run.run_id, run.generation + 1)
        retried = await self.store.update_run(run_id, fields, expect={"status": run.status})
        if retried is None:
            await self._unclaim(run, run.status, {"head_message_id": session.head_message_id})
            raise SessionBusy("the run changed meanwhile; reload it")
        if session.head_message_id != run.input_message_id:
            await self._announce_head(session.session_id, run.input_message_id, run.run_id)
        await self._queue(retried, first)
        return retried

    async def regenerate(self, user: User, run_id: str, pipeline: str | None = None) -> Run:
        """Answer the run's input message again in a new run (of ``pipeline``, if given).

        Only for the answer at the tip of the selected branch (or its input, when the run
        gave no answer), with no run active. The new answer becomes the old one's sibling.
        """
        old = await self._own_run(user, run_id)
        session = await self.store.get_session(user.user_id, old.session_id)
        if session is None:
            raise NotFound("session not found")
        if old.status not in FINAL_RUN_STATUSES or (
            session.active_run_id is not None and not await self.free_stale_claim(session)
        ):
            raise SessionBusy("this session has an active run")
        session = session.model_copy(update={"active_run_id": None})
        tree = await load_tree(self.store, user.user_id, session.session_id)
        if old.input_message_id not in tree:
            raise NotFound("the run's message is gone")
        if tree.head(session) not in (old.assistant_message_id, old.input_message_id):
            raise NotLatest("only the last answer of the selected branch can be regenerated")
        try:
            chosen = self.registry.pipeline(pipeline or session.pipeline)
        except UnknownName:
            raise InvalidRequest(f"pipeline: unknown pipeline {pipeline!r}") from None
        await self._limit_llm_work(user)
        run = Run(
            session_id=session.session_id, user_id=user.user_id, pipeline=chosen.name,
            input_message_id=old.input_message_id, assistant_message_id=new_id(),
            stages=[StageState(name=s.name, agent=s.agent) for s in chosen.stages],
        )  # fmt: skip
        await self._start_run(session, run, None)
        return run

    async def rerun_stage(
        self, user: User, run_id: str, index: int, model: str | None = None
    ) -> Run:
        """Run stage ``index`` of a finished run again (with ``model`` alone, if given).

        The stage and those after it keep their results as ``versions`` and start afresh;
        the run gives a new answer, a sibling of its previous one.
        """
        run = await self._own_run(user, run_id)
        self._check_rerun(run, index, model)
        session = await self.store.get_session(user.user_id, run.session_id)
        if session is None:
            raise NotFound("session not found")
        tree = await load_tree(self.store, user.user_id, session.session_id)
        if run.input_message_id not in tree:
            raise NotFound("the run's message is gone")
        await self._limit_llm_work(user)
        await self._claim(session, run.run_id, head=run.input_message_id)
        fields: dict[str, Any] = {
            "status": "queued", "error": None, "cancel_requested": False, "finished_at": None,
            "generation": run.generation + 1, "recoveries": 0, "updated_at": utcnow(),
            "assistant_message_id": new_id(),
        }  # fmt: skip
        answer = run.assistant_message_id if run.status == "completed" else None
        for i in range(index, len(run.stages)):
            stage = run.stages[i]
            fields[f"stages.{i}"] = StageState(
                name=stage.name, agent=stage.agent, versions=_versions(stage, answer),
                model_override=model if i == index else None,
            )  # fmt: skip
        undo = {"head_message_id": session.head_message_id}
        try:
            await self.leases.fence(run.run_id, run.generation + 1)
            rerun = await self.store.update_run(
                run_id, fields, expect={"status": run.status, "generation": run.generation}
            )
        except Exception:
            await self._unclaim(run, session.status, undo)
            raise
        if rerun is None:
            await self._unclaim(run, session.status, undo)
            raise SessionBusy("the run changed meanwhile; reload it")
        await self._announce_head(session.session_id, run.input_message_id, run.run_id)
        await self._queue(rerun, index)
        return rerun

    def _check_rerun(self, run: Run, index: int, model: str | None) -> None:
        if run.status not in FINAL_RUN_STATUSES:
            raise SessionBusy("only a finished run's stage can be re-run")
        if not 0 <= index < len(run.stages):
            raise NotFound(f"the run has no stage {index}")
        if any(s.status != "completed" for s in run.stages[:index]):
            raise InvalidRequest(f"index: the stages before stage {index} are not all completed")
        if model is not None:
            try:
                self.registry.model(model)
            except UnknownName:
                raise UnknownModel(f"model: unknown model {model!r}") from None

    async def select_branch(self, user: User, session_id: str, message_id: str) -> ChatSession:
        """Select the newest branch through ``message_id`` (refused while a run is active)."""
        session = await self.store.get_session(user.user_id, session_id)
        if session is None:
            raise NotFound("session not found")
        if session.active_run_id is not None and not await self.free_stale_claim(session):
            raise SessionBusy("this session has an active run")
        tree = await load_tree(self.store, user.user_id, session_id)
        if message_id not in tree:
            raise NotFound("message not found")
        head = tree.tip(message_id)
        updated = await self.store.update_session(
            user.user_id, session_id, {"head_message_id": head},
            expect={"active_run_id": None, "head_message_id": session.head_message_id},
        )  # fmt: skip
        if updated is None:
            raise SessionBusy("the session changed meanwhile; reload it")
        if head != session.head_message_id:
            await self._announce_head(session_id, head, None)
        return updated

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


def _versions(stage: StageState, answer: str | None) -> list[StageVersion]:
    """The stage's versions with its current result added (if it was ever attempted)."""
    if stage.attempts == 0 and stage.output is None:
        return list(stage.versions)
    result = stage.model_dump(include=set(StageResult.model_fields))
    current = StageVersion(**result, assistant_message_id=answer)
    return [*stage.versions, current]
