"""The wire format of /api/v1/ws: limits, close codes, frame shapes and the command base.

Server → client frames (each one JSON text frame):

- ``{"type": "ready", "user": {...}}`` once authenticated;
- ``{"id": n, "type": "result", "ok": true, "data": {...}}`` answering command ``n``;
- ``{"id": n | null, "type": "error", "error": {"code": "...", "message": "..."}}``
  (``id`` is null when the frame had no usable id);
- ``{"type": "event", "session_id", "epoch", "seq", "name", "run_id", "data", "ts"}``;
- ``{"type": "resync", "session_ids": ["..."]}``: the server's live feed of these
  sessions may have had a gap (its Redis connection dropped). The subscriptions stay
  active; the client re-sends ``subscribe`` with ``after_seq``/``epoch`` = the last event
  it holds in order, and gets the missed events or ``recovered: false``.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

MAX_FRAME_BYTES = 64 * 1024
CLOSE_TIMEOUT_S = 10.0

# Close codes (DESIGN §5).
GOING_AWAY = 1001
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
AUTH_FAILED = 4401
ACCOUNT_DISABLED = 4403


class CommandModel(BaseModel):
    """Base of command frames: strict types, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    id: StrictInt
    type: str = Field(max_length=32)


def encode(frame: dict[str, Any]) -> bytes:
    """Serialise one frame as compact JSON bytes (sent as a text frame)."""
    return json.dumps(frame, separators=(",", ":")).encode()


def result_frame(cmd_id: int, data: dict[str, Any]) -> bytes:
    """Answer command ``cmd_id`` successfully."""
    return encode({"id": cmd_id, "type": "result", "ok": True, "data": data})


def error_frame(
    cmd_id: int | None, code: str, message: str, details: dict[str, Any] | None = None
) -> bytes:
    """Answer command ``cmd_id`` (or an unreadable frame) with an error."""
    error = {**(details or {}), "code": code, "message": message}
    return encode({"id": cmd_id, "type": "error", "error": error})


def ready_frame(user: dict[str, Any]) -> bytes:
    """Tell the client it is authenticated, and as whom."""
    return encode({"type": "ready", "user": user})


def resync_frame(session_ids: list[str]) -> bytes:
    """Ask the client to re-subscribe these sessions with ``after_seq``."""
    return encode({"type": "resync", "session_ids": session_ids})
