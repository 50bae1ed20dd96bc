"""What the client hands back from event streams: typed, immutable values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FINAL_RUN_EVENTS = frozenset({"run.completed", "run.failed", "run.cancelled"})


@dataclass(frozen=True)
class Event:
    """One session event, as the WebSocket and SSE deliver it."""

    session_id: str
    epoch: str
    seq: int
    name: str
    run_id: str | None
    data: dict[str, Any]
    ts: str

    @classmethod
    def from_json(cls, frame: dict[str, Any]) -> Event:
        """Build an event from its wire form."""
        return cls(
            session_id=frame["session_id"], epoch=frame["epoch"], seq=int(frame["seq"]),
            name=frame["name"], run_id=frame.get("run_id"), data=frame.get("data") or {},
            ts=frame.get("ts", ""),
        )  # fmt: skip

    @property
    def event_id(self) -> str:
        """The SSE id of this event: ``<epoch>:<seq>``."""
        return f"{self.epoch}:{self.seq}"


@dataclass(frozen=True)
class Subscribed:
    """The server's verdict on a (re)connection: ``recovered`` false means reload over REST."""

    last_seq: int
    epoch: str
    recovered: bool


class ChorusError(Exception):
    """An error answer from the server: HTTP status, error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class HistoryLost(Exception):
    """The server no longer holds the events after our position (``recovered: false``)."""
