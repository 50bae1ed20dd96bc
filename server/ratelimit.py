"""Sliding-window rate limits kept in Redis, shared by every web process."""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from server.errors import RateLimited
from server.redis_keys import RedisKeys

# KEYS: one sorted set per window. ARGV: now_ms, member, then (limit, window_ms) per key.
# Counts a hit in every window only if every window has room (all or nothing), so a
# request refused by the global limit does not use up the user's allowance.
_SLIDING_WINDOW = """
local now = tonumber(ARGV[1])
local member = ARGV[2]
local worst_index, worst_reset = 0, 0
local counts = {}
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[1 + 2 * i])
  local window = tonumber(ARGV[2 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  counts[i] = count
  if count >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    local reset = window
    if oldest[2] then reset = tonumber(oldest[2]) + window - now end
    if reset > worst_reset then worst_index, worst_reset = i, reset end
  end
end
if worst_index > 0 then
  return {0, worst_index, worst_reset, counts[worst_index]}
end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, tonumber(ARGV[2 + 2 * i]))
end
return {1, 1, tonumber(ARGV[4]), counts[1] + 1}
"""


@dataclass(frozen=True)
class Rule:
    """A limit of ``limit`` hits per ``window_s`` for one scope and subject."""

    scope: str
    subject: str
    limit: int
    window_s: int


@dataclass(frozen=True)
class Decision:
    """The outcome of a rate-limit check, for the response headers."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: float

    def headers(self) -> dict[str, str]:
        """X-RateLimit-* headers (and Retry-After when refused)."""
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_s)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.reset_s)))
        return headers


class RateLimiter:
    """Check and count hits against one or more sliding windows atomically."""

    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self._keys = keys
        self._script = redis.register_script(_SLIDING_WINDOW)

    async def hit(self, *rules: Rule) -> Decision:
        """Count one hit in every rule's window if all have room; say which refused."""
        keys = [self._keys.rate(r.scope, r.subject) for r in rules]
        args: list[int | str] = [int(time.time() * 1000), secrets.token_hex(8)]
        for rule in rules:
            args += [rule.limit, rule.window_s * 1000]
        allowed, index, reset_ms, count = await self._script(keys=keys, args=args)
        rule = rules[int(index) - 1]
        return Decision(
            allowed=bool(allowed),
            limit=rule.limit,
            remaining=max(0, rule.limit - int(count)),
            reset_s=int(reset_ms) / 1000,
        )

    async def enforce(self, *rules: Rule) -> Decision:
        """Like hit, but raise RateLimited (429 with headers) when refused."""
        decision = await self.hit(*rules)
        if not decision.allowed:
            raise RateLimited(
                f"rate limit exceeded; retry in {math.ceil(decision.reset_s)} s",
                headers=decision.headers(),
            )
        return decision
