"""chorus_client: a typed async client for Chorus (REST + SSE with resume) and the `chorus` CLI."""

from __future__ import annotations

from chorus_client.client import ChorusClient, StreamItem
from chorus_client.models import ChorusError, Event, HistoryLost, Subscribed
from chorus_client.sse import ServerSentEvent, SseParser, iter_sse

__all__ = [
    "ChorusClient",
    "ChorusError",
    "Event",
    "HistoryLost",
    "ServerSentEvent",
    "SseParser",
    "StreamItem",
    "Subscribed",
    "iter_sse",
]
