"""Starting runs: a new message on an idle session, and the session's queued messages.

A message sent while the session's run is active may wait in the session's queue
(double texting, docs/http-api.md): stored with ``status = "queued"``, outside the
history. When the run ends (``RunEndings._after_end``), when a message is queued on an
idle session, and on every reaper pass, the session's next queued message is started:
interrupting messages first, then the oldest. Starting is two conditional writes — the
session's claim (``active_run_id`` from None) and the message's status (from "queued") —
so of two parties starting the queue at once, one starts one message, and a message
cancelled meanwhile is never started.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from arq.connections import ArqRedis

from server.errors import InvalidRequest, SessionBusy
from server.events.bus import EventBus
from server.pipelines import AgentRegistry
from server.redis_keys import RedisKeys
from server.runs.queue import enqueue_stage
from server.sessions.branches import load_tree
from server.store.base import Store
from server.store.models import ChatSession, Message, Run, StageState, new_id, utcnow

if TYPE_CHECKING:
    from server.runs.service import RunDeps

log = logging.getLogger("chorus.runs")
# Attempts to start a session's next queued message when others race for it.
_START_TRIES = 5


def next_in_queue(queued: list[Message]) -> Message | None:
    """The queued message to start next: an interrupting one first, then the oldest."""
    interrupting = [m for m in queued if m.double_texting == "interrupt"]
    return next(iter(interrupting or queued), None)


class RunStarts:
    """Create, claim and queue runs (the attributes are set by ``RunEndings.__init__``)."""

    d: RunDeps
    store: Store
    redis: ArqRedis
    keys: RedisKeys
    bus: EventBus
    registry: AgentRegistry

    async def _claim_idle(self, session: ChatSession, run_id: str, head: str | None = None) -> bool:
        """Make ``run_id`` the active run of the session if it has none; True if it did.

        With ``head``, the same write selects the branch ending there, if the selected branch
        is still the one the caller saw (docs/architecture.md, "Branches").
        """
        fields: dict[str, Any] = {
            "active_run_id": run_id,
            "status": "queued",
            "updated_at": utcnow(),
        }
        expect: dict[str, Any] = {"active_run_id": None}
        if head is not None:
            fields["head_message_id"] = head
            expect["head_message_id"] = session.head_message_id
        claimed = await self.store.update_session(
            session.user_id, session.session_id, fields, expect=expect
        )
        return claimed is not None

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

    async def _start_run(
        self, session: ChatSession, message: Message | None, *, run: Run | None = None
    ) -> tuple[Message | None, Run]:
        """Claim the idle session for a run on ``message``, store it, announce it, queue it.

        A new message is stored; a queued one joins the history (sent, dated now). Either is
        placed in the session's tree when it starts: after the selected branch's tip, or
        (``message.edit_of``) beside the edited message. Without a message (a regenerate),
        ``run`` answers its input message again. The claim selects the branch ending at the
        run's input; the message and the run are stored after it (undone if that fails), so
        no run is stored without its input message. Raises SessionBusy if the session has an
        active run, its branch changed, or the queued message was started or cancelled
        meanwhile.
        """
        if run is None:
            assert message is not None
            pipeline = self.registry.pipeline(session.pipeline)
            run = Run(
                session_id=session.session_id, user_id=session.user_id, pipeline=pipeline.name,
                input_message_id=message.message_id, assistant_message_id=new_id(),
                stages=[StageState(name=s.name, agent=s.agent, approve=s.approve)
                        for s in pipeline.stages],
            )  # fmt: skip
        branched = message is None or message.edit_of is not None
        if message is not None:
            message = await self._place(session, message)
        head = run.input_message_id
        if not await self._claim_idle(session, run.run_id, head):
            raise SessionBusy("this session already has an active run")
        message = await self._store_start(session, message, run)
        if message is not None:
            await self.bus.publish(
                session.session_id, "message.created",
                {"message": message.model_dump(mode="json")}, run.run_id,
            )  # fmt: skip
        if branched:
            await self._announce_head(session.session_id, head, run.run_id)
        await self._queue(run, 0)
        return message, run

    async def _start_message(self, session: ChatSession, message: Message) -> tuple[Message, Run]:
        """``_start_run`` on a message: the message as stored, and its run."""
        started, run = await self._start_run(session, message)
        assert started is not None
        return started, run

    async def _store_start(
        self, session: ChatSession, message: Message | None, run: Run
    ) -> Message | None:
        """Store the claimed run and its message (a queued one joins the history, sent and
        dated now); undo the claim, and the message, if that fails."""
        inserted = False
        try:
            if message is not None and message.status == "queued":
                started = await self.store.update_message(
                    message.user_id, message.message_id,
                    {"status": "sent", "run_id": run.run_id, "created_at": utcnow(),
                     "parent_id": message.parent_id},
                    expect={"status": "queued"},
                )  # fmt: skip
                if started is None:
                    raise SessionBusy("the queued message was started or cancelled meanwhile")
                message = started
            elif message is not None:
                message = message.model_copy(update={"run_id": run.run_id})
                inserted = await self.store.insert_message(message)
            await self.store.insert_run(run)
        except BaseException:
            if inserted:  # no message of a run never stored: the switcher would offer it
                assert message is not None
                await self.store.delete_message(
                    session.user_id, session.session_id, message.message_id
                )
            await self._unclaim(run, session.status, {"head_message_id": session.head_message_id})
            raise
        return message

    async def _place(self, session: ChatSession, message: Message) -> Message:
        """The message with its parent: the selected tip, or the edited message's parent."""
        if message.edit_of is None and session.head_message_id is not None:
            return message.model_copy(update={"parent_id": session.head_message_id})
        tree = await load_tree(self.store, session.user_id, session.session_id)
        if message.edit_of is None:
            return message.model_copy(update={"parent_id": tree.head(session)})
        if message.edit_of not in tree or tree.link(message.edit_of).role != "user":
            raise InvalidRequest("edit_of: no such user message in this session")
        return message.model_copy(update={"parent_id": tree.parent(message.edit_of)})

    async def _announce_head(self, session_id: str, head: str, run_id: str | None) -> None:
        await self.bus.publish(session_id, "branch.selected", {"head_message_id": head}, run_id)

    async def _announce_queued(self, message: Message) -> None:
        """Publish message.queued, before the write that queues it: once written, it may
        start at once, and its message.created must follow this event."""
        await self.bus.publish(
            message.session_id, "message.queued", {"message": message.model_dump(mode="json")}
        )

    async def start_next_queued(self, user_id: str, session_id: str) -> tuple[Message, Run] | None:
        """Start the session's next queued message if the session is idle; None if none did."""
        for _ in range(_START_TRIES):
            session = await self.store.get_session(user_id, session_id)
            if session is None or session.active_run_id is not None:
                return None
            queued = await self.store.list_queued_messages(user_id=user_id, session_id=session_id)
            message = next_in_queue(queued)
            if message is None:
                return None
            try:
                return await self._start_message(session, message)
            except SessionBusy:
                continue  # the session was claimed (seen next time) or the message taken
        return None

    async def _requeue_unused_amendments(self, ended: Run) -> None:
        """Queue each amendment of the ended run that no completed stage had in its prompt."""
        used = {
            m for stage in ended.stages if stage.status == "completed" for m in stage.amendments
        }
        for message_id in ended.amendments:
            if message_id in used:
                continue
            linked = {"status": "sent", "run_id": ended.run_id}
            amendment = await self.store.update_message(
                ended.user_id, message_id, {}, expect=linked
            )
            if amendment is None:  # queued already, at an earlier end of this run
                continue
            await self._announce_queued(
                amendment.model_copy(update={"status": "queued", "run_id": None})
            )
            await self.store.update_message(
                ended.user_id, message_id, {"status": "queued", "run_id": None}, expect=linked
            )

    async def _queue_after_end(self, ended: Run) -> None:
        """After a run ended: its unused amendments join the queue; the next queued starts.

        A failure here is logged, never raised: the run has ended, and the reaper starts
        what was left queued.
        """
        try:
            await self._requeue_unused_amendments(ended)
            await self.start_next_queued(ended.user_id, ended.session_id)
        except Exception:
            log.exception("starting the next queued message of session %s", ended.session_id)
