"""The admin tests reuse the WebSocket tests' helpers (users, sockets, frames)."""

from __future__ import annotations

from tests.server.ws.conftest import make_ws, ws_tools

__all__ = ["make_ws", "ws_tools"]
