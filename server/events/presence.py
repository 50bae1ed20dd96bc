"""Presence: whether anyone is watching a session, as any process (web or worker) sees it.

Each web process's EventHub tells its ``Presence`` when a local subscriber (a WebSocket,
an SSE stream, a ``/v1/chat/completions`` request waiting for its run) starts or stops
following a session. Redis keeps one sorted set per session: member a subscriber id,
score its expiry (ms, Redis clock). The process refreshes its entries every third of
``PRESENCE_TTL_S``, removes an entry when its subscriber leaves, and a crashed
process's entries lapse after the TTL. ``watching`` counts a session's entries not yet
expired. Only the session's owner can subscribe to it, so a watcher is always a socket
(or stream) of the session's user.

Presence is best effort: a Redis error while entering or leaving is logged, and the next
refresh (or the TTL) mends it; subscribing never fails because of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

from redis.asyncio import Redis
from redis.exceptions import RedisError

from server.redis_keys import RedisKeys

log = logging.getLogger("chorus.presence")

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
# KEYS: watcher sets. ARGV: ttl ms, then one member per key. Mark each member present.
_TOUCH = (
    _NOW
    + """
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[i + 1])
  redis.call('PEXPIRE', key, ttl)
end
return #KEYS
"""
)
# KEYS: a watcher set. Drop the expired members; return how many are left.
_COUNT = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""
)
_CHUNK = 500  # entries per refresh script call


async def watching(redis: Redis, keys: RedisKeys, session_id: str) -> bool:
    """Whether some subscriber (of any web process) is watching the session now."""
    count = await redis.eval(_COUNT, 1, keys.session_watchers(session_id))  # type: ignore[misc]
    return int(count) > 0


class Presence:
    """This process's watchers, mirrored into Redis and kept fresh there."""

    def __init__(self, redis: Redis, keys: RedisKeys, ttl_s: float) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._touch = redis.register_script(_TOUCH)
        self._local: dict[str, str] = {}  # member -> session id
        self._removals: set[asyncio.Task[None]] = set()
        self._refresher: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start refreshing this process's entries (every third of the TTL)."""
        self._refresher = asyncio.create_task(self._refresh_forever(), name="presence-refresh")

    async def close(self) -> None:
        """Stop refreshing; remove what is still local (best effort: the rest lapses)."""
        refresher, self._refresher = self._refresher, None
        if refresher is not None:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
        for member, session_id in list(self._local.items()):
            self.leave(session_id, member)
        await self.settled()

    async def enter(self, session_id: str) -> str:
        """Mark a new subscriber of the session present; return its member id."""
        member = secrets.token_hex(8)
        self._local[member] = session_id
        await self._write([(session_id, member)])
        return member

    def leave(self, session_id: str, member: str) -> None:
        """The subscriber stopped watching: remove it from Redis (in the background)."""
        if self._local.pop(member, None) is None:
            return
        task = asyncio.create_task(self._remove(session_id, member), name="presence-leave")
        self._removals.add(task)
        task.add_done_callback(self._removals.discard)

    async def settled(self) -> None:
        """Wait until every removal asked for so far has reached Redis (or failed)."""
        if self._removals:
            await asyncio.gather(*self._removals, return_exceptions=True)

    async def _remove(self, session_id: str, member: str) -> None:
        try:
            await self._redis.zrem(self._keys.session_watchers(session_id), member)
        except (RedisError, OSError) as exc:
            log.info("could not remove a watcher of session %s (it lapses): %s", session_id, exc)

    async def _write(self, entries: list[tuple[str, str]]) -> None:
        for start in range(0, len(entries), _CHUNK):
            chunk = entries[start : start + _CHUNK]
            try:
                await self._touch(
                    keys=[self._keys.session_watchers(sid) for sid, _ in chunk],
                    args=[self._ttl_ms, *(member for _, member in chunk)],
                )
            except (RedisError, OSError) as exc:
                log.info("could not mark %d watcher(s) present (retried): %s", len(chunk), exc)
                return

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._ttl_ms / 3000)
            entries = [(sid, member) for member, sid in self._local.items()]
            if entries:
                await self._write(entries)
