"""Every WebSocket command: its frame schema and its handler, registered in one explicit list.

Session commands: subscribe (with lossless resume), unsubscribe, select a branch. Run
commands: send a message or an edit (starting a run, or queued or amended by the
double-texting policy), cancel a run, cancel a queued message, approve or reject the stage
a run awaits, regenerate an answer, re-run a stage, all through the RunService.
Connection-level:
ping. Handlers are typed against ``CommandContext`` (decorators.py) and never await
the socket.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import Field

from server import keys
from server.errors import NotFound
from server.runs.schemas import ModelName
from server.sessions.schemas import PipelineName
from server.ws.decorators import Command, CommandContext, command, command_table
from server.ws.protocol import CommandModel

Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class SubscribeCommand(CommandModel):
    session_id: Identifier
    after_seq: Annotated[int, Field(ge=0)] | None = None
    epoch: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class UnsubscribeCommand(CommandModel):
    session_id: Identifier


@command("subscribe", SubscribeCommand)
async def subscribe(conn: CommandContext, cmd_id: int, cmd: SubscribeCommand) -> None:
    """Answer {last_seq, epoch, recovered}, then the missed events, then live ones.

    The live subscription is registered (buffering) before the replay is read, so an
    event published meanwhile is in the replay, in the buffer, or both: buffered events
    at or below the replay's last seq are dropped, the rest follow the replay in order.
    """
    if await conn.app[keys.STORE].get_session(conn.user.user_id, cmd.session_id) is None:
        raise NotFound("session not found")
    conn.remove_subscription(cmd.session_id)  # subscribing again restarts from after_seq
    sub = await conn.app[keys.EVENT_HUB].subscribe(cmd.session_id, conn)
    conn.add_subscription(cmd.session_id, sub.cancel)
    try:
        replay = await conn.app[keys.EVENT_BUS].replay(cmd.session_id, cmd.after_seq, cmd.epoch)
    except BaseException:
        conn.remove_subscription(cmd.session_id)
        raise
    frames = [raw.encode() for _seq, raw in replay.events]
    frames += sub.go_live(replay.last_seq)
    conn.send_result(
        cmd_id,
        {"last_seq": replay.last_seq, "epoch": replay.epoch, "recovered": replay.recovered},
    )
    if frames:
        conn.push_replay(cmd.session_id, frames)


@command("unsubscribe", UnsubscribeCommand)
async def unsubscribe(conn: CommandContext, cmd_id: int, cmd: UnsubscribeCommand) -> None:
    """Stop the session's events (a session not subscribed is answered the same).

    Answered once Redis no longer counts this socket as watching the session, so a run
    ending after the answer notifies the user's webhook (docs/webhooks.md).
    """
    conn.remove_subscription(cmd.session_id)
    await conn.app[keys.EVENT_HUB].settled()
    conn.send_result(cmd_id, {})


class SendCommand(CommandModel):
    session_id: Identifier
    content: Annotated[str, Field(min_length=1, max_length=20_000)]
    double_texting: Literal["reject", "enqueue", "interrupt", "amend"] | None = None
    edit_of: Identifier | None = None


class CancelQueuedCommand(CommandModel):
    session_id: Identifier
    message_id: Identifier


class CancelCommand(CommandModel):
    run_id: Identifier


@command("send", SendCommand)
async def send(conn: CommandContext, cmd_id: int, cmd: SendCommand) -> None:
    """Store the user's message and start a run, or queue or amend (as the REST call)."""
    runs = conn.app[keys.RUN_SERVICE]
    posted = await runs.post_message(
        conn.user, cmd.session_id, cmd.content, cmd.double_texting, edit_of=cmd.edit_of
    )
    conn.send_result(cmd_id, posted.body())


@command("cancel_queued", CancelQueuedCommand)
async def cancel_queued(conn: CommandContext, cmd_id: int, cmd: CancelQueuedCommand) -> None:
    """Take a queued message off its session's queue (as the REST DELETE)."""
    runs = conn.app[keys.RUN_SERVICE]
    message = await runs.cancel_queued(conn.user, cmd.session_id, cmd.message_id)
    conn.send_result(cmd_id, {"message": message.model_dump(mode="json")})


@command("cancel", CancelCommand)
async def cancel(conn: CommandContext, cmd_id: int, cmd: CancelCommand) -> None:
    """Cancel a run; a finished run is returned as it is."""
    run = await conn.app[keys.RUN_SERVICE].cancel_run(conn.user, cmd.run_id)
    conn.send_result(cmd_id, {"run": run.model_dump(mode="json")})


class ApproveCommand(CommandModel):
    run_id: Identifier
    output: Annotated[str, Field(max_length=100_000)] | None = None


class RejectCommand(CommandModel):
    run_id: Identifier
    reason: Annotated[str, Field(max_length=2_000)] = ""


@command("approve", ApproveCommand)
async def approve(conn: CommandContext, cmd_id: int, cmd: ApproveCommand) -> None:
    """Approve the stage the run awaits (``output``: edited); the run goes on."""
    run = await conn.app[keys.RUN_SERVICE].approve_run(conn.user, cmd.run_id, cmd.output)
    conn.send_result(cmd_id, {"run": run.model_dump(mode="json")})


@command("reject", RejectCommand)
async def reject(conn: CommandContext, cmd_id: int, cmd: RejectCommand) -> None:
    """Reject the stage the run awaits: the run ends cancelled."""
    run = await conn.app[keys.RUN_SERVICE].reject_run(conn.user, cmd.run_id, cmd.reason)
    conn.send_result(cmd_id, {"run": run.model_dump(mode="json")})


class RegenerateCommand(CommandModel):
    run_id: Identifier
    pipeline: PipelineName | None = None


class RerunStageCommand(CommandModel):
    run_id: Identifier
    index: Annotated[int, Field(ge=0, le=9999)]
    model: ModelName | None = None


class SelectBranchCommand(CommandModel):
    session_id: Identifier
    message_id: Identifier


@command("regenerate", RegenerateCommand)
async def regenerate(conn: CommandContext, cmd_id: int, cmd: RegenerateCommand) -> None:
    """Answer the run's message again in a new run (same rules as the REST call)."""
    run = await conn.app[keys.RUN_SERVICE].regenerate(conn.user, cmd.run_id, cmd.pipeline)
    conn.send_result(cmd_id, {"run": run.model_dump(mode="json")})


@command("rerun_stage", RerunStageCommand)
async def rerun_stage(conn: CommandContext, cmd_id: int, cmd: RerunStageCommand) -> None:
    """Run one stage of a finished run again, then the rest (same rules as the REST call)."""
    run = await conn.app[keys.RUN_SERVICE].rerun_stage(conn.user, cmd.run_id, cmd.index, cmd.model)
    conn.send_result(cmd_id, {"run": run.model_dump(mode="json")})


@command("select_branch", SelectBranchCommand)
async def select_branch(conn: CommandContext, cmd_id: int, cmd: SelectBranchCommand) -> None:
    """Select the newest branch through a message (same rules as PUT .../head)."""
    session = await conn.app[keys.RUN_SERVICE].select_branch(
        conn.user, cmd.session_id, cmd.message_id
    )
    conn.send_result(cmd_id, {"session": session.model_dump(mode="json")})


class PingCommand(CommandModel):
    pass


@command("ping", PingCommand)
async def ping(conn: CommandContext, cmd_id: int, cmd: PingCommand) -> None:
    """Answer ``{}`` (an application-level liveness check)."""
    conn.send_result(cmd_id, {})


COMMANDS: Mapping[str, Command[Any]] = MappingProxyType(
    command_table(
        (
            subscribe,
            unsubscribe,
            send,
            cancel,
            cancel_queued,
            approve,
            reject,
            regenerate,
            rerun_stage,
            select_branch,
            ping,
        )
    )
)
