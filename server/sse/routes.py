"""GET /api/v1/sessions/{id}/events: a session's events as server-sent events.

Each event is ``id: <epoch>:<seq>`` plus ``data: <the WebSocket event frame>``; a
client that reconnects sends the last id back (``Last-Event-ID`` header, or the
``last_event_id`` query parameter where it cannot set headers) and gets what it missed,
with the WebSocket's rules: the first frame, ``event: subscribed``, says
``{last_seq, epoch, recovered}``; ``recovered: false`` means reload state over REST.
Comment lines (``: ping``) keep idle connections alive through proxies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field

from server import keys
from server.api.body import QueryModel, parse_query
from server.auth.identity import authenticate, origin_allowed
from server.errors import Forbidden, InvalidRequest, NotFound
from server.events.bus import Replay
from server.logs import session_id_var
from server.sse.agui import to_ag_ui
from server.sse.feed import FeedClosed, FeedLost, SessionFeed

log = logging.getLogger("chorus.sse")
routes = web.RouteTableDef()
RETRY_MS = 1000
_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
}


class EventsQuery(QueryModel):
    format: Literal["chorus", "ag-ui"] = "chorus"
    last_event_id: Annotated[str, Field(max_length=100)] | None = None


def parse_event_id(raw: str | None) -> tuple[int | None, str | None]:
    """Split ``<epoch>:<seq>`` into (seq, epoch); (None, None) when absent; 422 if malformed."""
    if raw is None or not raw.strip():
        return None, None
    epoch, sep, seq = raw.strip().rpartition(":")
    if not sep or not epoch or not seq.isdigit() or len(epoch) > 64:
        raise InvalidRequest("Last-Event-ID: expected <epoch>:<seq>")
    return int(seq), epoch


def sse_frame(data: Any, *, event_id: str | None = None, event: str | None = None) -> bytes:
    """Encode one server-sent event (the JSON has no newline, so one data line)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    head += f"event: {event}\n" if event is not None else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def encode_events(events: list[dict[str, Any]], fmt: str) -> bytes:
    """Encode events in the requested format, each under its ``<epoch>:<seq>`` id."""
    out = []
    for event in events:
        event_id = f"{event['epoch']}:{event['seq']}"
        payloads = [event] if fmt == "chorus" else to_ag_ui(event)
        out += [sse_frame(p, event_id=event_id) for p in payloads]
    return b"".join(out)


def _subscribed(replay: Replay) -> bytes:
    info = {"last_seq": replay.last_seq, "epoch": replay.epoch, "recovered": replay.recovered}
    return f"retry: {RETRY_MS}\n".encode() + sse_frame(info, event="subscribed")


async def _pump(resp: web.StreamResponse, feed: SessionFeed, fmt: str, heartbeat_s: float) -> None:
    while True:
        events = await feed.next(heartbeat_s)
        await resp.write(encode_events(events, fmt) if events else b": ping\n\n")


@routes.get("/api/v1/sessions/{session_id}/events")
async def session_events(request: web.Request) -> web.StreamResponse:
    """Stream a session's events (replay after Last-Event-ID, then live) until disconnect."""
    identity = await authenticate(request)
    foreign = "Origin" in request.headers and not origin_allowed(
        request, request.app[keys.SETTINGS]
    )
    if identity.via == "cookie" and foreign:
        raise Forbidden("origin not allowed")  # as the WebSocket handshake does
    query = parse_query(request.query, EventsQuery)
    after_seq, epoch = parse_event_id(request.headers.get("Last-Event-ID") or query.last_event_id)
    session_id = request.match_info["session_id"]
    session_id_var.set(session_id)
    app = request.app
    if await app[keys.STORE].get_session(identity.user.user_id, session_id) is None:
        raise NotFound("session not found")
    settings = app[keys.SETTINGS]
    feed = SessionFeed(app, session_id, settings.ws_queue_size)
    detach = app[keys.EVENT_HUB].attach(feed, identity.claims.jti, identity.user.user_id)
    expiry = asyncio.get_running_loop().call_later(
        max(0.0, identity.claims.seconds_left()), feed.close_with, "token expired"
    )
    resp = web.StreamResponse(headers=_HEADERS)
    try:
        replay = await feed.open(after_seq, epoch)
        await resp.prepare(request)
        await resp.write(_subscribed(replay))
        await _pump(resp, feed, query.format, settings.sse_heartbeat_s)
    except FeedLost:
        # The next reconnect (with the same Last-Event-ID) answers recovered: false.
        with contextlib.suppress(ConnectionError):
            await resp.write(sse_frame({"session_ids": [session_id]}, event="resync"))
    except (FeedClosed, ConnectionError):
        pass  # revoked, expired or shutting down; or the client left
    finally:
        expiry.cancel()
        detach()
        feed.close()
    return resp


async def close_streams(app: web.Application) -> None:
    """End every event stream at shutdown (clients reconnect with Last-Event-ID)."""
    hub = app.get(keys.EVENT_HUB)
    for sink in hub.sinks if hub is not None else ():
        if isinstance(sink, SessionFeed):
            sink.close_with("server shutting down")


def setup_sse(app: web.Application) -> None:
    """Add the events route and end the streams at shutdown."""
    app.add_routes(routes)
    app.on_shutdown.append(close_streams)
