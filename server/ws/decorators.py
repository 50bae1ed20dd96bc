"""The ``@command`` decorator and registry; the small protocol every handler is typed against.

Handlers see a ``CommandContext`` (what a connection offers them), never the connection
class itself, so ``commands.py`` and ``connection.py`` do not import each other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from aiohttp import web

from server.events.hub import Sink
from server.store.models import User
from server.ws.protocol import CommandModel


class CommandContext(Sink, Protocol):
    """What a handler may use: the app, the user, answering, and the socket's subscriptions."""

    @property
    def app(self) -> web.Application: ...
    @property
    def user(self) -> User: ...
    def send_result(self, cmd_id: int, data: dict[str, Any]) -> None: ...
    def push_replay(self, session_id: str, frames: list[bytes]) -> None: ...
    def add_subscription(self, session_id: str, unsubscribe: Callable[[], None]) -> None: ...
    def remove_subscription(self, session_id: str) -> bool: ...


M = TypeVar("M", bound=CommandModel)
Handler = Callable[[CommandContext, int, M], Awaitable[None]]


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
