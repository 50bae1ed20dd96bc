"""Connection-level commands: ping."""

from __future__ import annotations

from server.ws.commands import command
from server.ws.connection import Connection
from server.ws.protocol import CommandModel


class PingCommand(CommandModel):
    pass


@command("ping", PingCommand)
async def ping(conn: Connection, cmd_id: int, cmd: PingCommand) -> None:
    """Answer ``{}`` (an application-level liveness check)."""
    conn.send_result(cmd_id, {})
