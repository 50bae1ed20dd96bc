"""The command decorator: binds a frame type to its input schema and its handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from server.ws.protocol import CommandModel

if TYPE_CHECKING:
    from server.ws.connection import Connection

M = TypeVar("M", bound=CommandModel)
Handler = Callable[["Connection", int, M], Awaitable[None]]


@dataclass(frozen=True)
class Command(Generic[M]):
    """A command type (``name``), the schema its frames are validated against, and its handler.

    Handlers receive the validated frame, answer with ``conn.send_result(cmd_id, data)``
    and raise to answer with an error; they never await the socket.
    """

    name: str
    schema: type[M]
    handler: Handler[M]


def command(type_: str, schema: type[M]) -> Callable[[Handler[M]], Command[M]]:
    """Bind a handler to the command type ``type_`` and its schema."""

    def bind(handler: Handler[M]) -> Command[M]:
        return Command(type_, schema, handler)

    return bind


def command_table(commands: Iterable[Command[Any]]) -> dict[str, Command[Any]]:
    """Index commands by type; refuse a type registered twice."""
    table: dict[str, Command[Any]] = {}
    for cmd in commands:
        if cmd.name in table:
            raise ValueError(f"command type {cmd.name!r} registered twice")
        table[cmd.name] = cmd
    return table
