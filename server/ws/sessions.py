"""Session commands: subscribe (with lossless resume) and unsubscribe."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from server import keys
from server.errors import NotFound
from server.ws.commands import command
from server.ws.connection import Connection
from server.ws.protocol import CommandModel

Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class SubscribeCommand(CommandModel):
    session_id: Identifier
    after_seq: Annotated[int, Field(ge=0)] | None = None
    epoch: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class UnsubscribeCommand(CommandModel):
    session_id: Identifier


@command("subscribe", SubscribeCommand)
async def subscribe(conn: Connection, cmd_id: int, cmd: SubscribeCommand) -> None:
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
async def unsubscribe(conn: Connection, cmd_id: int, cmd: UnsubscribeCommand) -> None:
    """Stop the session's events (a session not subscribed is answered the same)."""
    conn.remove_subscription(cmd.session_id)
    conn.send_result(cmd_id, {})
