"""Stage leases: who runs a run's stage now, kept alive by heartbeats (DESIGN §9).

A worker executing a stage holds a lease: a token ``<generation>:<index>:<holder>`` in
one hash and a deadline in one sorted set (both keyed by run id, Redis clock). It renews
the lease every ``renew_s``; a lease not renewed for ``ttl_s`` lapses, and a watchdog
(any worker) claims it — one atomic script removes it, so exactly one watchdog gets
it — and the RunService takes the stage over under a new generation.

The run's generation is also written to a fence key: events of an older generation are
dropped by the publish script, and a holder whose lease was taken stops its own stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError

from server.redis_keys import RedisKeys

log = logging.getLogger("chorus.leases")
FENCE_TTL_MS = 7 * 24 * 3600 * 1000

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: deadlines, tokens, fence. ARGV: run id, token, ttl ms, generation, index, fence ttl.
# Taken unless a live lease of the same or a later (generation, stage) is held by another:
# a duplicate execution of one job gets 0; the next stage's job replaces the previous
# stage's lease even if that job has not released it yet.
_ACQUIRE = (
    _NOW
    + """
local fence = redis.call('GET', KEYS[3])
if fence and tonumber(fence) > tonumber(ARGV[4]) then return 0 end
local held = redis.call('HGET', KEYS[2], ARGV[1])
if held and held ~= ARGV[2] then
  local deadline = redis.call('ZSCORE', KEYS[1], ARGV[1])
  local gen, idx = string.match(held, '^(%d+):(%d+):')
  local mine_gen, mine_idx = tonumber(ARGV[4]), tonumber(ARGV[5])
  local newer = tonumber(gen) < mine_gen or
    (tonumber(gen) == mine_gen and tonumber(idx) < mine_idx)
  if deadline and tonumber(deadline) > now and not newer then return 0 end
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
if not fence or tonumber(fence) < tonumber(ARGV[4]) then
  redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[6])
end
return 1
"""
)

# KEYS: deadlines, tokens. ARGV: run id, token, ttl ms. 1 renewed, 0 the lease is not ours.
_RENEW = (
    _NOW
    + """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1
"""
)

# KEYS: deadlines, tokens. ARGV: run id, token. Drop the lease if it is still ours.
_RELEASE = """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""

# KEYS: deadlines, tokens, sentinel. ARGV: max claims. Returns {fresh, run, token, ...}:
# the lapsed leases, removed (so one watchdog gets each), and whether the sentinel was
# missing (Redis lost its data: every lease, queued job and fence is gone).
_CLAIM = (
    _NOW
    + """
local fresh = 0
if redis.call('SET', KEYS[3], now, 'NX') then fresh = 1 end
local out = {fresh}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, run in ipairs(due) do
  local token = redis.call('HGET', KEYS[2], run)
  redis.call('ZREM', KEYS[1], run)
  redis.call('HDEL', KEYS[2], run)
  if token then
    table.insert(out, run)
    table.insert(out, token)
  end
end
return out
"""
)

# KEYS: deadlines. ARGV: run ids. Returns 1/0 per run: whether it holds a live lease.
_LIVE = (
    _NOW
    + """
local out = {}
for i, run in ipairs(ARGV) do
  local deadline = redis.call('ZSCORE', KEYS[1], run)
  out[i] = (deadline and tonumber(deadline) > now) and 1 or 0
end
return out
"""
)

# KEYS: fence. ARGV: generation, fence ttl. Raise the fence to at least this generation.
_FENCE = """
local fence = redis.call('GET', KEYS[1])
if not fence or tonumber(fence) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
"""


@dataclass(frozen=True)
class Claimed:
    """A lapsed lease a watchdog claimed: the stage to take over."""

    run_id: str
    generation: int
    index: int


@dataclass
class Lease:
    """A lease this process holds on one run's stage."""

    run_id: str
    generation: int
    index: int
    token: str
    lost: asyncio.Event = field(default_factory=asyncio.Event)


class LeaseBook:
    """Acquire, renew, release and claim stage leases; raise run fences."""

    def __init__(self, redis: Redis, keys: RedisKeys, ttl_s: float, renew_s: float) -> None:
        self._redis = redis
        self._keys = keys
        self.ttl_s = ttl_s
        self.renew_s = renew_s
        self.holder = secrets.token_hex(6)
        self.held: dict[str, Lease] = {}
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._claim = redis.register_script(_CLAIM)
        self._live = redis.register_script(_LIVE)
        self._fence = redis.register_script(_FENCE)

    @property
    def _pair(self) -> list[str]:
        return [self._keys.lease_deadlines(), self._keys.lease_tokens()]

    async def acquire(self, run_id: str, generation: int, index: int) -> Lease | None:
        """Take the lease on the stage, or None if another holder runs it (or it is stale)."""
        token = f"{generation}:{index}:{self.holder}.{secrets.token_hex(4)}"
        ok = await self._acquire(
            keys=[*self._pair, self._keys.run_fence(run_id)],
            args=[run_id, token, int(self.ttl_s * 1000), generation, index, FENCE_TTL_MS],
        )
        if not ok:
            return None
        lease = Lease(run_id, generation, index, token)
        self.held[token] = lease
        return lease

    async def renew(self, lease: Lease) -> bool:
        """Push the lease's deadline on; False if it is no longer ours."""
        ok = await self._renew(
            keys=self._pair, args=[lease.run_id, lease.token, int(self.ttl_s * 1000)]
        )
        return bool(ok)

    async def release(self, lease: Lease) -> None:
        """Give the lease up (best effort: a lease that cannot be released lapses)."""
        self.held.pop(lease.token, None)
        try:
            await self._release(keys=self._pair, args=[lease.run_id, lease.token])
        except (RedisError, OSError) as exc:
            log.warning("could not release the lease on run %s: %s", lease.run_id, exc)

    async def claim_lapsed(self, limit: int = 100) -> tuple[bool, list[Claimed]]:
        """Claim lapsed leases; also say whether Redis lost its data since the last look."""
        reply = await self._claim(keys=[*self._pair, self._keys.redis_sentinel()], args=[limit])
        fresh, rest = bool(int(reply[0])), reply[1:]
        claimed = []
        for run_id, token in zip(rest[::2], rest[1::2], strict=True):
            gen, index, _ = _text(token).split(":", 2)
            claimed.append(Claimed(_text(run_id), int(gen), int(index)))
        return fresh, claimed

    async def live(self, run_ids: list[str]) -> set[str]:
        """Return the runs among ``run_ids`` whose stage holds a live lease."""
        if not run_ids:
            return set()
        flags = await self._live(keys=[self._keys.lease_deadlines()], args=run_ids)
        return {run for run, flag in zip(run_ids, flags, strict=True) if int(flag)}

    async def fence(self, run_id: str, generation: int) -> None:
        """Raise the run's fence: events of older generations are dropped from now on."""
        await self._fence(keys=[self._keys.run_fence(run_id)], args=[generation, FENCE_TTL_MS])

    async def fenced_out(self, run_id: str, generation: int) -> bool:
        """Whether the run has moved on past ``generation``."""
        fence = await self._redis.get(self._keys.run_fence(run_id))
        return fence is not None and int(fence) > generation

    @contextlib.asynccontextmanager
    async def holding(
        self, run_id: str, generation: int, index: int
    ) -> AsyncIterator[Lease | None]:
        """Hold the stage's lease (None if another holds it), renewed until the block ends."""
        lease = await self.acquire(run_id, generation, index)
        if lease is None:
            yield None
            return
        keeper = asyncio.create_task(self._keep(lease), name=f"lease:{run_id}")
        try:
            yield lease
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            if not lease.lost.is_set():
                await self.release(lease)
            self.held.pop(lease.token, None)

    async def _keep(self, lease: Lease) -> None:
        """Renew every renew_s; mark the lease lost once it is not ours or has lapsed."""
        valid_until = time.monotonic() + self.ttl_s
        while True:
            await asyncio.sleep(self.renew_s)
            try:
                ours = await self.renew(lease)
            except (RedisError, OSError) as exc:  # transient: keep trying while still valid
                log.warning("could not renew the lease on run %s: %s", lease.run_id, exc)
                ours = time.monotonic() < valid_until
            else:
                valid_until = time.monotonic() + self.ttl_s
            if not ours:
                log.warning(
                    "lost the lease on stage %d of run %s (generation %d): stopping it",
                    lease.index, lease.run_id, lease.generation,
                )  # fmt: skip
                lease.lost.set()
                return


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
