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
from typing import Any, Literal

from arq.connections import ArqRedis

from server.budgets import BudgetBook
from server.config import Settings
from server.errors import (
    InvalidRequest,
    MessageNotQueued,
    NotAwaitingApproval,
    NotFound,
    NotLatest,
    SessionBusy,
    Unauthorized,
    UnknownModel,
)
from server.events.bus import EventBus
from server.pipelines import AgentRegistry
from server.pipelines.registry import UnknownName
from server.ratelimit import RateLimiter, Rule
from server.redis_keys import RedisKeys
from server.runs.endings import pending_gate
from server.runs.leases import LeaseBook
from server.runs.recovery import RunRecovery
from server.sessions.branches import load_tree
from server.store.base import Store
from server.store.models import (
    AWAITING_APPROVAL,
    FINAL_RUN_STATUSES,
    ChatSession,
    DoubleTexting,
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
# Attempts to append an amendment while other amendments race for the same run.
_AMEND_TRIES = 5


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


@dataclass(frozen=True)
class Posted:
    """What a sent message became: a run started on it, queued, or amended into a run."""

    message: Message
    run: Run | None  # the run started or amended; None while the message is queued
    outcome: Literal["started", "queued", "amended"]

    def body(self) -> dict[str, Any]:
        """The answer of REST and WebSocket sends."""
        return {
            "message": self.message.model_dump(mode="json"), "outcome": self.outcome,
            "run": None if self.run is None else self.run.model_dump(mode="json"),
        }  # fmt: skip


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

    async def _claim(self, session: ChatSession, run_id: str, head: str | None = None) -> None:
        """Make ``run_id`` the session's active run (a claim on an ended run is freed first).

        With ``head``, the same write selects the branch ending there (docs/architecture.md,
        "Branches").
        """
        if not await self.free_stale_claim(session) or not await self._claim_idle(
            session, run_id, head
        ):
            raise SessionBusy("this session already has an active run")

    def policy(self, session: ChatSession, override: DoubleTexting | None) -> DoubleTexting:
        """The double-texting policy of a send: its own, else the session's, else the server's."""
        return override or session.double_texting or self.d.settings.double_texting

    async def post_message(
        self,
        user: User,
        session_id: str,
        content: str,
        double_texting: DoubleTexting | None = None,
        *,
        edit_of: str | None = None,
    ) -> Posted:
        """Store the user's message and start a run; if the session is busy, apply the policy.

        ``reject``: SessionBusy (409). ``enqueue``: the message waits in the session's queue.
        ``interrupt``: the active run is cancelled and the message starts next. ``amend``:
        the message joins the active run's context at its next stage boundary (an edit is
        queued instead).

        ``edit_of`` names an earlier user message: the new one becomes its alternative (the
        same parent), a new branch the session selects when it starts; the old branch stays
        readable.
        """
        if not content.strip():
            raise InvalidRequest("content: must not be blank")
        session = await self.store.get_session(user.user_id, session_id)
        if session is None:
            raise NotFound("session not found")
        policy = self.policy(session, double_texting)
        await self._limit_llm_work(user)
        message = Message(session_id=session_id, user_id=user.user_id, role="user", content=content)
        if edit_of is not None:
            tree = await load_tree(self.store, user.user_id, session_id)
            if edit_of not in tree or tree.link(edit_of).role != "user":
                raise InvalidRequest("edit_of: no such user message in this session")
            message.edit_of = edit_of
        idle = session.active_run_id is None or await self.free_stale_claim(session)
        if idle and (policy == "reject" or not await self._has_queue(session)):
            try:
                return Posted(*await self._start_message(session.model_copy(
                    update={"active_run_id": None}), message), "started")  # fmt: skip
            except SessionBusy:
                if policy == "reject":
                    raise
        if policy == "reject":
            raise SessionBusy("this session already has an active run")
        if policy == "amend" and edit_of is None:
            return await self._amend(session, message)
        return await self._enqueue(session, message, policy)

    async def _has_queue(self, session: ChatSession) -> bool:
        queued = await self.store.list_queued_messages(
            user_id=session.user_id, session_id=session.session_id, limit=1
        )
        return bool(queued)

    async def _enqueue(
        self, session: ChatSession, message: Message, policy: DoubleTexting
    ) -> Posted:
        """Store the message as queued, then see to it (``_queued``)."""
        queued = message.model_copy(update={"status": "queued", "double_texting": policy})
        await self._announce_queued(queued)
        await self.store.insert_message(queued)
        return await self._queued(session, queued)

    async def _queued(self, session: ChatSession, queued: Message) -> Posted:
        """Cancel the active run if the queued message interrupts it, then start the queue.

        Starting the queue here closes the race with a run that ended between the caller's
        look at the session and the message's write: that run's end found nothing queued.
        """
        if queued.double_texting == "interrupt":
            await self._interrupt(session)
        started = await self.start_next_queued(session.user_id, session.session_id)
        if started is not None and started[0].message_id == queued.message_id:
            return Posted(*started, "started")
        # The run's end may have started it meanwhile (an update setting nothing reads it).
        now = await self.store.update_message(queued.user_id, queued.message_id, {})
        run = None if now is None or now.run_id is None else await self.store.get_run(now.run_id)
        if now is not None and run is not None and now.status == "sent":
            return Posted(now, run, "started")
        return Posted(now or queued, None, "queued")

    async def _interrupt(self, session: ChatSession) -> None:
        """Cancel the session's active run: its end starts the interrupting message."""
        current = await self.store.get_session(session.user_id, session.session_id)
        if current is None or current.active_run_id is None:
            return
        run = await self.store.get_run(current.active_run_id, session.user_id)
        if run is not None:
            await self.request_cancel(run)

    async def _amend(self, session: ChatSession, message: Message) -> Posted:
        """Add the message to the active run's context, or queue it if the run has ended.

        The message is stored first (sent, linked to the run, whose own prompt leaves it
        out of the history), then appended to ``Run.amendments`` by a write conditional on
        the run being active and its amendments unchanged. If the run ended first, the
        message moves to the queue instead.
        """
        current = await self.store.get_session(session.user_id, session.session_id)
        run_id = current.active_run_id if current is not None else None
        run = None if run_id is None else await self.store.get_run(run_id, session.user_id)
        if run is None:
            return await self._enqueue(session, message, "amend")
        # In the branch tree an amendment follows the run's input message (or the run's last
        # amendment); the answer then follows the last amendment its stages read.
        amending = message.model_copy(update={
            "run_id": run.run_id, "double_texting": "amend",
            "parent_id": run.amendments[-1] if run.amendments else run.input_message_id,
        })  # fmt: skip
        await self.store.insert_message(amending)
        for _ in range(_AMEND_TRIES):
            if run is None or run.status in FINAL_RUN_STATUSES:
                break
            amended = await self.store.update_run(
                run.run_id, {"amendments": [*run.amendments, amending.message_id]},
                expect={"status": run.status, "amendments": run.amendments},
            )  # fmt: skip
            if amended is not None:
                parent = run.amendments[-1] if run.amendments else run.input_message_id
                if parent != amending.parent_id:  # another amendment came first meanwhile
                    amending = amending.model_copy(update={"parent_id": parent})
                    await self.store.update_message(
                        amending.user_id, amending.message_id, {"parent_id": parent}
                    )
                await self.bus.publish(
                    session.session_id, "run.amended",
                    {"message": amending.model_dump(mode="json")}, amended.run_id,
                )  # fmt: skip
                return Posted(amending, amended, "amended")
            run = await self.store.get_run(run.run_id)
        queued = amending.model_copy(update={"status": "queued", "run_id": None})
        await self._announce_queued(queued)
        await self.store.update_message(
            amending.user_id, amending.message_id, {"status": "queued", "run_id": None},
            expect={"status": "sent", "run_id": amending.run_id},
        )  # fmt: skip
        return await self._queued(session, queued)

    async def cancel_queued(self, user: User, session_id: str, message_id: str) -> Message:
        """Take a queued message off its session's queue (409 once it has started)."""
        cancelled = await self.store.update_message(
            user.user_id, message_id, {"status": "cancelled"},
            expect={"session_id": session_id, "status": "queued"},
        )  # fmt: skip
        if cancelled is None:
            found = await self.store.update_message(
                user.user_id, message_id, {}, expect={"session_id": session_id}
            )
            if found is None:
                raise NotFound("message not found")
            raise MessageNotQueued(f"the message is {found.status}, not queued")
        await self.bus.publish(
            session_id, "message.cancelled", {"message": cancelled.model_dump(mode="json")}
        )
        return cancelled

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
        if flagged.status == AWAITING_APPROVAL:  # paused at a gate: nothing runs, end it now
            ended = await self.cancel(flagged, expect={"awaiting_stage": flagged.awaiting_stage})
            return ended or await self.store.get_run(run.run_id) or flagged
        index = flagged.current_stage()
        if flagged.stages[index].status == "pending":
            # Queued, or between stages: no stage streams, so cancel wins here and now. A
            # stage that starts meanwhile fails its start (it expects no cancel request).
            ended = await self.cancel(flagged, expect={f"stages.{index}.status": "pending"})
            if ended is not None:
                return ended
        return await self.store.get_run(run.run_id) or flagged

    async def approve_run(self, user: User, run_id: str, output: str | None = None) -> Run:
        """Approve the stage the run awaits (``output``: its edited text) and go on."""
        return await self.approve(await self._own_run(user, run_id), output)

    async def approve(self, run: Run, output: str | None = None) -> Run:
        """Move the run from its gate to queued (once) and queue the next stage.

        An edited ``output`` replaces the stage's output (what later stages and the answer
        read); the model's text is kept as ``output_original``. A gate on the last stage
        completes the run with that output as the answer.
        """
        index = run.awaiting_stage
        if run.status != AWAITING_APPROVAL or index is None:
            raise NotAwaitingApproval("the run is not awaiting approval")
        stage, now = run.stages[index], utcnow()
        fields: dict[str, Any] = {
            "status": "queued", "awaiting_stage": None, "awaiting_since": None,
            "updated_at": now, f"stages.{index}.approved_at": now,
        }  # fmt: skip
        edited = output is not None and output != stage.output
        if edited:
            fields[f"stages.{index}.output"] = output
            fields[f"stages.{index}.output_original"] = stage.output
        approved = await self.store.update_run(
            run.run_id, fields,
            expect={"status": AWAITING_APPROVAL, "awaiting_stage": index,
                    "generation": run.generation, "cancel_requested": False},
        )  # fmt: skip
        if approved is None:
            raise NotAwaitingApproval("the run is no longer awaiting approval")
        await self.store.update_session(
            run.user_id, run.session_id, {"status": "queued", "updated_at": now},
            expect={"active_run_id": run.run_id},
        )  # fmt: skip
        await self.bus.publish(
            run.session_id, "run.approved",
            {"stage": stage.name, "index": index, "output": approved.stages[index].output or "",
             "edited": edited},
            run.run_id,
        )  # fmt: skip
        if index + 1 < len(approved.stages):
            await self._queue(approved, index + 1)
        else:
            await self.advance(approved, index)
        return await self.store.get_run(run.run_id) or approved

    async def reject_run(self, user: User, run_id: str, reason: str = "") -> Run:
        """Reject the stage the run awaits: the run ends cancelled, its error "rejected"."""
        run = await self._own_run(user, run_id)
        error = f"rejected: {reason}" if reason else "rejected"
        ended = await self.end_awaiting(run, error, "run.rejected", {"reason": reason})
        if ended is None:
            raise NotAwaitingApproval("the run is not awaiting approval")
        return ended

    async def retry_run(self, user: User, run_id: str) -> Run:
        """Resume a failed or cancelled run from its first stage not completed.

        A gate not approved (the run was rejected, timed out or cancelled at it) counts as
        not completed: its stage runs again and the run pauses there again.
        """
        run = await self._own_run(user, run_id)
        if run.status not in ("failed", "cancelled"):
            raise SessionBusy("only a failed or cancelled run can be retried")
        gate = pending_gate(run)
        first = next((i for i, s in enumerate(run.stages) if s.status != "completed"), None)
        if gate is not None and (first is None or gate < first):
            first = gate
        if first is None:
            raise InvalidRequest("run_id: every stage of this run is completed")
        await self._limit_llm_work(user)
        session = await self.store.get_session(user.user_id, run.session_id)
        if session is None:
            raise NotFound("session not found")
        # The session shows the run's branch while it runs (the answer extends it).
        await self._claim(session, run.run_id, head=run.input_message_id)
        fields: dict[str, Any] = {
            "status": "queued", "error": None, "error_code": None, "cancel_requested": False,
            "finished_at": None,
            "generation": run.generation + 1, "recoveries": 0, "updated_at": utcnow(),
        }  # fmt: skip
        for i in range(first, len(run.stages)):
            stage = run.stages[i]  # a fresh state; attempts, versions and a chosen model carry on
            fields[f"stages.{i}"] = StageState(
                name=stage.name, agent=stage.agent, attempts=stage.attempts, approve=stage.approve,
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
            stages=[StageState(name=s.name, agent=s.agent, approve=s.approve)
                    for s in chosen.stages],
        )  # fmt: skip
        await self._start_run(session, None, run=run)
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
            "status": "queued", "error": None, "error_code": None, "cancel_requested": False,
            "finished_at": None, "generation": run.generation + 1, "recoveries": 0,
            "updated_at": utcnow(), "assistant_message_id": new_id(),
        }  # fmt: skip
        answer = run.assistant_message_id if run.status == "completed" else None
        for i in range(index, len(run.stages)):
            stage = run.stages[i]
            fields[f"stages.{i}"] = StageState(
                name=stage.name, agent=stage.agent, approve=stage.approve,
                versions=_versions(stage, answer), model_override=model if i == index else None,
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
