"""Run commands: send a message (starting a run) and cancel a run, via the RunService."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from server import keys
from server.ws.commands import command
from server.ws.connection import Connection
from server.ws.protocol import CommandModel
from server.ws.sessions import Identifier


class SendCommand(CommandModel):
    session_id: Identifier
    content: Annotated[str, Field(min_length=1, max_length=20_000)]


class CancelCommand(CommandModel):
    run_id: Identifier


@command("send", SendCommand)
async def send(conn: Connection, cmd_id: int, cmd: SendCommand) -> None:
    """Store the user's message and start a run (same rules as the REST call)."""
    runs = conn.app[keys.RUN_SERVICE]
    message, run = await runs.post_message(conn.user, cmd.session_id, cmd.content)
    conn.send_result(
        cmd_id, {"message": message.model_dump(mode="json"), "run": run.model_dump(mode="json")}
    )


@command("cancel", CancelCommand)
async def cancel(conn: Connection, cmd_id: int, cmd: CancelCommand) -> None:
    """Cancel a run; a finished run is returned as it is."""
    run = await conn.app[keys.RUN_SERVICE].cancel_run(conn.user, cmd.run_id)
    conn.send_result(cmd_id, {"run": run.model_dump(mode="json")})
