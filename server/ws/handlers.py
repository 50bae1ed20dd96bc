"""Every WebSocket command, registered in one explicit list."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from server.ws import runs, sessions, system
from server.ws.commands import Command, command_table

HANDLERS: tuple[Command[Any], ...] = (
    sessions.subscribe,
    sessions.unsubscribe,
    runs.send,
    runs.cancel,
    system.ping,
)

COMMANDS: Mapping[str, Command[Any]] = MappingProxyType(command_table(HANDLERS))
