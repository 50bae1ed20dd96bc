"""A small server-sent events parser (the WHATWG event-stream rules), fed line by line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event: its type, data (lines joined by newlines) and last event id."""

    event: str
    data: str
    id: str | None
    retry_ms: int | None = None


class SseParser:
    """Accumulate fields until a blank line, then dispatch the event."""

    def __init__(self) -> None:
        self.last_id: str | None = None
        self._event = ""
        self._data: list[str] = []
        self._retry: int | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        """Take one line (without its end of line); return an event when one is complete."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: heartbeat
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        event, data, retry = self._event or "message", self._data, self._retry
        self._event, self._data, self._retry = "", [], None
        if not data:
            return None
        return ServerSentEvent(event, "\n".join(data), self.last_id, retry)


async def iter_sse(
    content: aiohttp.StreamReader, parser: SseParser | None = None
) -> AsyncIterator[ServerSentEvent]:
    """Yield the events of a response body until it ends."""
    parser = parser or SseParser()
    async for raw in content:
        event = parser.feed(raw.decode().rstrip("\r\n"))
        if event is not None:
            yield event
