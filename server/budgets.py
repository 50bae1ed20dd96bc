"""BudgetBook: daily token and cost budgets, counted in Redis, reconciled with llm_calls.

Each user's spend on a UTC day is a Redis hash ``usage:<user>:<day>`` {tokens, cost, init}
(everyone's together: ``usage:*:<day>``), kept two days. Workers charge it while a stage
streams (an estimate: characters / 4, priced at the model's rates) and correct it to the
provider's usage when the call ends, so once a call is recorded the counters hold exactly
its ``llm_calls`` tokens and cost. Cost is counted in units of 1e-10 USD (integers: sums
are exact). A counter without ``init`` (a new day, or Redis lost its data) is rebuilt from
the store's ``llm_calls`` of that day the first time it is read, on top of what in-flight
streams charged meanwhile. See docs/budgets.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from redis.asyncio import Redis

from server.config import Settings
from server.errors import BudgetExceeded
from server.redis_keys import RedisKeys
from server.store.base import Store
from server.store.models import User, format_ts

COST_UNITS_PER_USD = 10**10
COUNTER_TTL_S = 2 * 24 * 3600
# Adds the store's sums to a counter once (unless another process did first); answers it.
_INIT = """
if redis.call('HEXISTS', KEYS[1], 'init') == 0 then
  redis.call('HINCRBY', KEYS[1], 'tokens', ARGV[1])
  redis.call('HINCRBY', KEYS[1], 'cost', ARGV[2])
  redis.call('HSET', KEYS[1], 'init', '1')
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return redis.call('HMGET', KEYS[1], 'tokens', 'cost')
"""
# Charges both counters (KEYS: the user's, everyone's) unless the amounts are 0, then, when
# ARGV[4] is '1', answers both {tokens, cost, init}: one command and one round trip.
_CHARGE = """
if ARGV[1] ~= '0' or ARGV[2] ~= '0' then
  for _, key in ipairs(KEYS) do
    redis.call('HINCRBY', key, 'tokens', ARGV[1])
    redis.call('HINCRBY', key, 'cost', ARGV[2])
    redis.call('EXPIRE', key, ARGV[3])
  end
end
if ARGV[4] == '1' then
  return {redis.call('HMGET', KEYS[1], 'tokens', 'cost', 'init'),
          redis.call('HMGET', KEYS[2], 'tokens', 'cost', 'init')}
end
return 0
"""


def cost_units(usd: float) -> int:
    """Convert USD to the counters' integer units (1e-10 USD)."""
    return round(usd * COST_UNITS_PER_USD)


def day_of(now: datetime) -> str:
    """The UTC day of a moment, ``YYYY-MM-DD``."""
    return now.astimezone(UTC).strftime("%Y-%m-%d")


def next_midnight(now: datetime) -> datetime:
    """The start of the UTC day after ``now``'s: when daily budgets reset."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(days=1)


@dataclass(frozen=True)
class Spend:
    """Tokens (prompt + completion) and cost spent on one day."""

    tokens: int = 0
    cost_units: int = 0

    @property
    def cost_usd(self) -> float:
        return round(self.cost_units / COST_UNITS_PER_USD, 10)


@dataclass(frozen=True)
class Limit:
    """A daily budget; None is unlimited."""

    tokens: int | None
    cost_usd: float | None

    @classmethod
    def of(cls, tokens: int | None, cost_usd: float | None) -> Limit:
        """A limit where 0 (or None) means unlimited."""
        return cls(tokens or None, cost_usd or None)

    def spent(self, spend: Spend) -> bool:
        """Whether ``spend`` reached this budget (tokens or cost)."""
        return (self.tokens is not None and spend.tokens >= self.tokens) or (
            self.cost_usd is not None and spend.cost_units >= cost_units(self.cost_usd)
        )


def _spend(raw: Any) -> Spend:
    tokens, cost = raw
    return Spend(int(tokens or 0), int(cost or 0))


class BudgetBook:
    """Read and charge the day's counters; check a user's and the global budget."""

    def __init__(
        self,
        redis: Redis,
        keys: RedisKeys,
        store: Store,
        settings: Settings,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._store = store
        self._default = Limit.of(settings.budget_tokens_per_day, settings.budget_cost_per_day)
        self.global_limit = Limit.of(
            settings.budget_global_tokens_per_day, settings.budget_global_cost_per_day
        )
        self._clock = clock or (lambda: datetime.now(UTC))
        self._init = redis.register_script(_INIT)
        self._charge = redis.register_script(_CHARGE)

    @property
    def unlimited(self) -> bool:
        """Whether no global budget is set."""
        return self.global_limit.tokens is None and self.global_limit.cost_usd is None

    def now(self) -> datetime:
        """The current time (a test may set the clock)."""
        return self._clock()

    def limit_of(self, user: User) -> Limit:
        """The user's daily budget: their own where an admin set one, else the default."""
        tokens = user.budget_tokens_per_day
        cost = user.budget_cost_per_day
        return Limit.of(
            self._default.tokens if tokens is None else tokens,
            self._default.cost_usd if cost is None else cost,
        )

    async def charge(self, user_id: str, tokens: int, units: int, day: str | None = None) -> None:
        """Add (or, to correct an estimate, take away) spend on the user's and global counters."""
        if tokens == 0 and units == 0:
            return
        day = day or day_of(self.now())
        keys = [self._keys.usage_day(user_id, day), self._keys.usage_day(None, day)]
        await self._charge(keys=keys, args=[tokens, units, COUNTER_TTL_S, 0])

    async def charge_and_spend(self, user_id: str, tokens: int, units: int) -> tuple[Spend, Spend]:
        """``charge`` (0 charges nothing) then ``spent`` today, in one script: one round trip."""
        day = day_of(self.now())
        keys = [self._keys.usage_day(user_id, day), self._keys.usage_day(None, day)]
        raw = await self._charge(keys=keys, args=[tokens, units, COUNTER_TTL_S, 1])
        return await self._spends(cast(list[list[Any]], raw), keys, day, user_id)

    async def spent(self, user_id: str, day: str | None = None) -> tuple[Spend, Spend]:
        """The user's and everyone's spend on the day (today), rebuilt from the store if lost."""
        day = day or day_of(self.now())
        keys = [self._keys.usage_day(user_id, day), self._keys.usage_day(None, day)]
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, ["tokens", "cost", "init"])
            raw = await pipe.execute()
        return await self._spends(raw, keys, day, user_id)

    async def _spends(
        self, raw: list[list[Any]], keys: list[str], day: str, user_id: str
    ) -> tuple[Spend, Spend]:
        mine, everyone = raw
        if mine[2] is None:
            mine = await self._rebuild(keys[0], day, user_id)
        if everyone[2] is None:
            everyone = await self._rebuild(keys[1], day, None)
        return _spend(mine[:2]), _spend(everyone[:2])

    async def _rebuild(self, key: str, day: str, user_id: str | None) -> list[Any]:
        usage = await self._store.usage_of_day(day, user_id)
        tokens = usage.prompt_tokens + usage.completion_tokens
        args = [tokens, cost_units(usage.cost_usd), COUNTER_TTL_S]
        return [*cast(list[Any], await self._init(keys=[key], args=args)), b"1"]

    async def exceeded(self, user: User) -> str | None:
        """Which budget the user's spend today reached ("user", "global"), if any."""
        mine, everyone = await self.spent(user.user_id)
        if self.limit_of(user).spent(mine):
            return "user"
        if self.global_limit.spent(everyone):
            return "global"
        return None

    async def check(self, user: User) -> None:
        """Raise BudgetExceeded (429, with ``resets_at`` and Retry-After) if a budget is spent."""
        which = await self.exceeded(user)
        if which is None:
            return
        raise self.error(which)

    def error(self, which: str) -> BudgetExceeded:
        """The 429 for a spent budget ("user" or "global")."""
        now = self.now()
        resets = next_midnight(now)
        whose = "your daily budget" if which == "user" else "the server's daily budget"
        return BudgetExceeded(
            f"{whose} is spent; it resets at {format_ts(resets)}",
            headers={"Retry-After": str(max(1, int((resets - now).total_seconds()) + 1))},
            details={"resets_at": format_ts(resets), "budget": which},
        )

    async def status(self, user: User) -> dict[str, Any]:
        """The user's budget today as ``/usage`` shows it."""
        mine, everyone = await self.spent(user.user_id)
        limit = self.limit_of(user)
        now = self.now()
        return {
            "day": day_of(now),
            "resets_at": format_ts(next_midnight(now)),
            "tokens": _meter(limit.tokens, mine.tokens),
            "cost_usd": _meter(limit.cost_usd, mine.cost_usd),
            "exceeded": limit.spent(mine),
            "global_exceeded": self.global_limit.spent(everyone),
        }


def _meter(limit: float | None, used: float) -> dict[str, Any]:
    remaining = None if limit is None else max(0, round(limit - used, 10))
    return {"limit": limit, "used": used, "remaining": remaining}
