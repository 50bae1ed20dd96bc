"""EventHub: one Redis pub/sub connection per web process, fanned out to local sockets.

A session's channel is subscribed when its first local socket subscribes and released
after the last leaves. Each event's raw JSON goes to every subscriber by a synchronous
``push`` (a bounded queue): the hub never awaits a socket and reads only ``seq``, once
per event. If the connection drops, the hub reconnects with backoff, subscribes every
channel again, re-checks its sockets' tokens against the denylist and sends each sink a
``resync`` naming its sessions, so the client re-subscribes with ``after_seq``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from server.events.presence import Presence
from server.metrics import Metrics
from server.redis_keys import RedisKeys

log = logging.getLogger("chorus.hub")

_SEQ = b'"seq":'
_POLL_S = 1.0  # bounded reads let redis-py send its health-check pings while idle


# A revocations message naming a user (not a token id): an admin disabled that user.
USER_DISABLED_PREFIX = "user:"


class Sink(Protocol):
    """One WebSocket connection: queue a frame; hear that live delivery of some sessions
    may have had a gap; hear that its token was revoked, or its user disabled. No method
    may block."""

    def push(self, frame: bytes) -> None: ...
    def resync(self, session_ids: list[str]) -> None: ...
    def revoked(self) -> None: ...
    def disabled(self) -> None: ...


def seq_of(frame: bytes) -> int:
    """Read an event frame's ``seq`` without parsing the JSON (ids before it are hex)."""
    start = frame.index(_SEQ) + len(_SEQ)
    return int(frame[start : frame.index(b",", start)])


async def _aclose(pubsub: PubSub) -> None:
    with contextlib.suppress(RedisError, OSError):
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py: unannotated


class Subscription:
    """One sink's subscription to one session: buffers until ``go_live``, then forwards."""

    __slots__ = ("_buffer", "_floor", "_hub", "channel", "member", "session_id", "sink")

    def __init__(self, hub: EventHub, channel: bytes, session_id: str, sink: Sink) -> None:
        self._hub = hub
        self.channel = channel
        self.session_id = session_id
        self.sink = sink
        self._buffer: list[tuple[int, bytes]] | None = []
        self._floor = 0
        self.member: str | None = None  # its id in the session's presence set

    def deliver(self, seq: int, frame: bytes) -> None:
        """Take one live event: keep it while buffering, else push it to the sink."""
        if self._buffer is not None:
            self._buffer.append((seq, frame))
        elif seq > self._floor:
            self.sink.push(frame)

    def go_live(self, after_seq: int) -> list[bytes]:
        """Switch to live delivery; return the buffered events newer than ``after_seq``.

        An event the replay already held may reach this process over pub/sub only after
        the switch (the replay reads the stream, which the publish wrote first): live
        events at or below ``after_seq`` are dropped too, so none arrives twice.
        """
        buffered, self._buffer = self._buffer or [], None
        self._floor = after_seq
        return [frame for seq, frame in buffered if seq > after_seq]

    def cancel(self) -> None:
        """Stop receiving this session's events (idempotent)."""
        self._hub.leave(self)


@dataclass(slots=True)
class _Topic:
    """The local subscribers of one session channel; ``ready`` once Redis confirmed it."""

    session_id: str
    subs: dict[Subscription, None] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)


class EventHub:
    """Fan session events and token revocations out from one pub/sub connection."""

    def __init__(
        self,
        redis: Redis,
        keys: RedisKeys,
        metrics: Metrics,
        *,
        subscribe_timeout_s: float = 10.0,
        # Capped at 1 s: back on pub/sub soon after Redis, so stages restarted after an
        # outage mostly reach clients live rather than through a REST resync.
        backoff_s: tuple[float, float] = (0.05, 1.0),
        presence: Presence | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._metrics = metrics
        self._subscribe_timeout_s = subscribe_timeout_s
        self._backoff_s = backoff_s
        # Told who watches which session, so any process can ask (docs/webhooks.md).
        self._presence = presence
        self._revocations = keys.revocations_channel().encode()
        self._topics: dict[bytes, _Topic] = {}
        self._sinks: dict[Sink, str] = {}
        self._by_jti: dict[str, dict[Sink, None]] = {}
        self._by_user: dict[str, dict[Sink, None]] = {}
        self._pubsub: PubSub | None = None
        self._lock = asyncio.Lock()  # serialises SUBSCRIBE/UNSUBSCRIBE and reconnects
        self._subscribed: set[bytes] = set()
        self._inflight: dict[bytes, int] = {}  # SUBSCRIBEs sent but not yet confirmed
        self._changes: asyncio.Queue[bytes] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.connected = asyncio.Event()

    async def start(self) -> None:
        """Start the reader and the subscription tasks."""
        self._tasks = [
            asyncio.create_task(self._read_forever(), name="event-hub-reader"),
            asyncio.create_task(self._apply_changes(), name="event-hub-subscriptions"),
        ]

    async def close(self) -> None:
        """Cancel and await the hub's tasks and close the pub/sub connection."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self._drop_connection()

    def attach(self, sink: Sink, jti: str, user_id: str | None = None) -> Callable[[], None]:
        """Register a socket (for revocations, disabled users and shutdown); return its
        detach callable."""
        self._sinks[sink] = jti
        self._by_jti.setdefault(jti, {})[sink] = None
        if user_id is not None:
            self._by_user.setdefault(user_id, {})[sink] = None

        def detach() -> None:
            self._sinks.pop(sink, None)
            for index, name in ((self._by_jti, jti), (self._by_user, user_id)):
                if name is None:
                    continue
                same = index.get(name, {})
                same.pop(sink, None)
                if not same:
                    index.pop(name, None)

        return detach

    @property
    def sinks(self) -> tuple[Sink, ...]:
        """Every attached socket."""
        return tuple(self._sinks)

    async def subscribe(self, session_id: str, sink: Sink) -> Subscription:
        """Start buffering a session's live events; return once Redis delivers them to us."""
        channel = self._keys.session_channel(session_id).encode()
        topic = self._topics.get(channel)
        if topic is None:
            topic = self._topics[channel] = _Topic(session_id)
            if channel in self._subscribed and not self._inflight.get(channel):
                topic.ready.set()  # still subscribed in Redis: the last leave is not applied
            else:
                self._changes.put_nowait(channel)
        sub = Subscription(self, channel, session_id, sink)
        topic.subs[sub] = None
        try:
            async with asyncio.timeout(self._subscribe_timeout_s):
                await topic.ready.wait()
            if self._presence is not None:
                sub.member = await self._presence.enter(session_id)
        except BaseException:
            sub.cancel()
            raise
        return sub

    async def settled(self) -> None:
        """Wait until Redis no longer counts the subscribers that left as watching."""
        if self._presence is not None:
            await self._presence.settled()

    def leave(self, sub: Subscription) -> None:
        """Drop a subscription; unsubscribe the channel after its last local subscriber."""
        topic = self._topics.get(sub.channel)
        if topic is None or sub not in topic.subs:
            return
        del topic.subs[sub]
        if self._presence is not None and sub.member is not None:
            self._presence.leave(sub.session_id, sub.member)
        if not topic.subs:
            del self._topics[sub.channel]
            self._changes.put_nowait(sub.channel)

    async def _apply_changes(self) -> None:
        while True:
            channel = await self._changes.get()
            async with self._lock:
                try:
                    await self._sync_channel(channel)
                except (RedisError, OSError) as exc:
                    # The reader sees the same broken connection and resubscribes everything.
                    log.warning("event hub could not (un)subscribe %s: %s", channel, exc)

    async def _sync_channel(self, channel: bytes) -> None:
        pubsub = self._pubsub
        if pubsub is None:
            return  # disconnected: the reconnect subscribes every current topic
        wanted, subscribed = channel in self._topics, channel in self._subscribed
        if wanted and not subscribed:
            self._subscribed.add(channel)
            self._inflight[channel] = self._inflight.get(channel, 0) + 1
            await pubsub.subscribe(channel)
        elif subscribed and not wanted:
            self._subscribed.discard(channel)
            await pubsub.unsubscribe(channel)

    async def _read_forever(self) -> None:
        low, high = self._backoff_s
        delay, lost = low, False
        while True:
            try:
                await self._connect()
                if lost:
                    await self._after_reconnect()
                delay, lost = low, False
                await self._pump()
            except (RedisError, OSError) as exc:
                log.warning("event hub lost its Redis pub/sub connection: %s", exc)
            except Exception:
                log.exception("event hub reader failed; reconnecting")
            lost = lost or self.connected.is_set()
            await self._drop_connection()
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, high)

    async def _connect(self) -> None:
        async with self._lock:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.connect()  # type: ignore[no-untyped-call]  # redis-py: unannotated
                channels = list(self._topics)
                self._subscribed = set(channels)
                self._inflight = dict.fromkeys(channels, 1)
                self._pubsub = pubsub
                await pubsub.subscribe(self._revocations, *channels)
            except BaseException:
                self._pubsub = None
                await _aclose(pubsub)
                raise
        self.connected.set()

    async def _drop_connection(self) -> None:
        self.connected.clear()
        pubsub, self._pubsub = self._pubsub, None
        self._subscribed.clear()
        self._inflight.clear()
        for topic in self._topics.values():
            topic.ready.clear()  # a subscribe now waits for the reconnect's confirmation
        if pubsub is not None:
            await _aclose(pubsub)

    async def _after_reconnect(self) -> None:
        self._metrics.hub_reconnects.inc()
        log.info("event hub reconnected to Redis; asking %d sockets to resync", len(self._sinks))
        jtis = list(self._by_jti)  # revocations announced while away were missed
        async with self._redis.pipeline(transaction=False) as pipe:
            for jti in jtis:
                pipe.exists(self._keys.jwt_denied(jti))
            denied = await pipe.execute() if jtis else []
        for jti in (jti for jti, hit in zip(jtis, denied, strict=True) if hit):
            self._revoke(jti)
        await self._recheck_users()
        affected: dict[Sink, list[str]] = {}
        for topic in self._topics.values():
            for sub in topic.subs:
                affected.setdefault(sub.sink, []).append(topic.session_id)
        for sink, session_ids in affected.items():
            sink.resync(sorted(session_ids))

    async def _pump(self) -> None:
        pubsub = self._pubsub
        assert pubsub is not None
        while True:
            message = await pubsub.get_message(timeout=_POLL_S)
            if message is not None:
                self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        if message["type"] == "message":
            self._dispatch(message["channel"], message["data"])
        elif message["type"] == "subscribe":
            self._confirmed(message["channel"])

    def _confirmed(self, channel: bytes) -> None:
        left = self._inflight.get(channel, 0) - 1
        if left > 0:
            self._inflight[channel] = left
            return
        self._inflight.pop(channel, None)
        topic = self._topics.get(channel)
        if topic is not None:
            topic.ready.set()

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        topic = self._topics.get(channel)
        if topic is None:
            if channel == self._revocations:
                self._revoke(data.decode())
            return
        try:
            seq = seq_of(data)
        except ValueError:
            log.error("dropping a malformed event on %s", channel)
            return
        subs = tuple(topic.subs)
        for sub in subs:
            sub.deliver(seq, data)
        self._metrics.events_delivered.inc(len(subs))

    async def _recheck_users(self) -> None:
        """Close the sockets of users disabled while this hub was away from Redis."""
        users = list(self._by_user)
        if not users:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id in users:
                pipe.exists(self._keys.user_disabled(user_id))
            flags = await pipe.execute()
        for user_id in (u for u, hit in zip(users, flags, strict=True) if hit):
            self._disable(user_id)

    def _revoke(self, jti: str) -> None:
        if jti.startswith(USER_DISABLED_PREFIX):
            self._disable(jti.removeprefix(USER_DISABLED_PREFIX))
            return
        for sink in tuple(self._by_jti.get(jti, ())):
            sink.revoked()

    def _disable(self, user_id: str) -> None:
        for sink in tuple(self._by_user.get(user_id, ())):
            sink.disabled()
