"""SessionFeed: one HTTP stream's view of a session's events — replay, then live, in order.

It subscribes through the EventHub and reads the EventBus replay exactly as the
WebSocket ``subscribe`` does (live subscription first, buffering; then the replay; then
the buffered events newer than the replay). Unlike a socket it never closes a slow
reader: when its bounded buffer overflows, or the hub reports a gap (Redis pub/sub
reconnected), it drops the buffer and reads the missed events back from the replay log,
dropping any seq it has already handed out. Only a replay that no longer covers its
position (history trimmed, epoch changed) ends it with ``FeedLost``.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any

from aiohttp import web

from server import keys
from server.events.bus import Replay
from server.events.hub import Subscription


class FeedLost(Exception):
    """The replay log no longer covers the feed's position: reload state over REST."""


class FeedClosed(Exception):
    """The feed was ended: token revoked or expired, or the server is shutting down."""


class SessionFeed:
    """A Sink for the EventHub that yields a session's events as parsed dicts, in seq order."""

    def __init__(self, app: web.Application, session_id: str, limit: int) -> None:
        self._app = app
        self.session_id = session_id
        self._limit = limit
        self._frames: deque[bytes] = deque()
        self._gap = False
        self._closed: str | None = None
        self._wake = asyncio.Event()
        self._sub: Subscription | None = None
        self.last_seq = 0
        self.epoch = ""

    # the Sink protocol: called by the hub, never blocks

    def push(self, frame: bytes) -> None:
        """Take a live event; on overflow forget the buffer and read the replay log later."""
        if len(self._frames) >= self._limit:
            self._frames.clear()
            self._gap = True
        else:
            self._frames.append(frame)
        self._wake.set()

    def resync(self, session_ids: list[str]) -> None:
        """The hub's live feed may have had a gap: read the replay log before going on."""
        self._gap = True
        self._wake.set()

    def revoked(self) -> None:
        """The caller's token was revoked: end the feed."""
        self.close_with("token revoked")

    def disabled(self) -> None:
        """An admin disabled the caller: end the feed."""
        self.close_with("account disabled")

    def close_with(self, reason: str) -> None:
        """End the feed (its reader raises FeedClosed)."""
        self._closed = reason
        self._wake.set()

    # the reader's side

    async def open(self, after_seq: int | None, epoch: str | None) -> Replay:
        """Subscribe, then replay after ``after_seq``; answer the replay's verdict."""
        sub = await self._app[keys.EVENT_HUB].subscribe(self.session_id, self)
        try:
            replay = await self._app[keys.EVENT_BUS].replay(self.session_id, after_seq, epoch)
        except BaseException:
            sub.cancel()
            raise
        self._sub = sub
        self.epoch = replay.epoch
        self.last_seq = after_seq if replay.recovered and after_seq is not None else 0
        backlog = [raw.encode() for _seq, raw in replay.events]
        backlog += sub.go_live(replay.last_seq)
        self._frames.extendleft(reversed(backlog))
        if not replay.recovered or after_seq is None:
            self.last_seq = replay.last_seq  # nothing before the head is owed to this reader
        return replay

    def close(self) -> None:
        """Leave the session's channel (idempotent)."""
        if self._sub is not None:
            self._sub.cancel()
            self._sub = None

    async def next(self, timeout_s: float) -> list[dict[str, Any]]:
        """Return the next events (none if ``timeout_s`` passed idle); raise FeedLost/Closed."""
        if not self._frames and not self._gap and self._closed is None:
            self._wake.clear()
            try:
                async with asyncio.timeout(timeout_s):
                    await self._wake.wait()
            except TimeoutError:
                return []
        if self._closed is not None:
            raise FeedClosed(self._closed)
        if self._gap:
            await self._refill()
        frames, self._frames = list(self._frames), deque()
        return self._fresh(frames)

    async def _refill(self) -> None:
        self._gap = False
        replay = await self._app[keys.EVENT_BUS].replay(self.session_id, self.last_seq, self.epoch)
        if not replay.recovered:
            raise FeedLost("the session's history no longer covers this stream")
        live, self._frames = list(self._frames), deque(raw.encode() for _s, raw in replay.events)
        self._frames.extend(live)

    def _fresh(self, frames: list[bytes]) -> list[dict[str, Any]]:
        events = []
        for frame in frames:
            event = json.loads(frame)
            if event.get("epoch") != self.epoch:
                raise FeedLost("the session's event counter restarted")
            if event["seq"] <= self.last_seq:
                continue  # already handed out (a replay overlapping the live buffer)
            self.last_seq = event["seq"]
            events.append(event)
        return events
