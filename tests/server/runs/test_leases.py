"""Stage leases and fencing over a real Redis: who holds a stage, lapses, claims, fences."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from server.events.bus import EventBus
from server.redis_keys import RedisKeys
from server.runs.leases import LeaseBook

KEYS = RedisKeys("t")


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def book(redis: Redis, ttl_s: float = 6.0, renew_s: float = 2.0) -> LeaseBook:
    return LeaseBook(redis, KEYS, ttl_s, renew_s)


async def lapse(redis: Redis, run_id: str) -> None:
    """Make the run's lease lapse now (as if its holder stopped renewing long ago)."""
    await redis.zadd(KEYS.lease_deadlines(), {run_id: 0})


async def test_one_holder_per_stage_generation(redis: Redis) -> None:
    a, b = book(redis), book(redis)
    first = await a.acquire("r1", 0, 1)
    assert first is not None
    assert await b.acquire("r1", 0, 1) is None  # a duplicate execution of the same job
    assert await b.acquire("r1", 0, 0) is None  # an older stage cannot take it back
    assert await a.renew(first)


async def test_the_next_stage_or_generation_replaces_a_live_lease(redis: Redis) -> None:
    a, b = book(redis), book(redis)
    plan = await a.acquire("r1", 0, 0)
    assert plan is not None
    draft = await b.acquire("r1", 0, 1)  # the next stage's job started before plan released
    assert draft is not None
    assert not await a.renew(plan)  # plan's holder no longer owns it ...
    await a.release(plan)  # ... and its late release leaves the new lease alone
    assert await b.live(["r1"]) == {"r1"}
    retried = await a.acquire("r1", 1, 1)
    assert retried is not None and not await b.renew(draft)


async def test_a_lapsed_lease_is_claimed_once(redis: Redis) -> None:
    a, w1, w2 = book(redis), book(redis), book(redis)
    lease = await a.acquire("r1", 3, 2)
    assert lease is not None
    fresh, claimed = await w1.claim_lapsed()
    assert fresh is True and claimed == []  # first look at this Redis; nothing lapsed
    await lapse(redis, "r1")
    results = await asyncio.gather(w1.claim_lapsed(), w2.claim_lapsed())
    claims = [c for _fresh, found in results for c in found]
    assert [(c.run_id, c.generation, c.index) for c in claims] == [("r1", 3, 2)]
    assert all(fresh is False for fresh, _ in results)
    assert not await a.renew(lease)  # the holder finds out at its next renewal
    assert await w1.live(["r1"]) == set()


async def test_redis_losing_its_data_is_noticed(redis: Redis) -> None:
    w = book(redis)
    assert (await w.claim_lapsed())[0] is True
    assert (await w.claim_lapsed())[0] is False
    await redis.flushall()  # a restart without persistence
    assert (await w.claim_lapsed())[0] is True


async def test_a_holder_that_cannot_renew_stops(redis: Redis) -> None:
    a = book(redis, ttl_s=0.6, renew_s=0.05)
    async with a.holding("r1", 0, 0) as lease:
        assert lease is not None
        await redis.hdel(KEYS.lease_tokens(), "r1")  # taken over
        async with asyncio.timeout(5):
            await lease.lost.wait()
    assert a.held == {}


async def test_a_stale_generation_cannot_acquire(redis: Redis) -> None:
    a = book(redis)
    await a.fence("r1", 2)
    assert await a.acquire("r1", 1, 0) is None
    assert await a.fenced_out("r1", 1) and not await a.fenced_out("r1", 2)
    assert await a.acquire("r1", 2, 0) is not None


async def test_fenced_events_of_an_old_generation_are_dropped(redis: Redis) -> None:
    bus, leases = EventBus(redis, KEYS, history=50, ttl_s=60), book(redis)
    old = await bus.publish(
        "s1", "stage.delta", {"stage": "draft", "text": "a"}, "r1", generation=0
    )
    assert old is not None and old.seq == 1
    await leases.fence("r1", 1)  # a takeover
    zombie = await bus.publish(
        "s1", "stage.delta", {"stage": "draft", "text": "z"}, "r1", generation=0
    )
    assert zombie is None
    assert (await bus.replay("s1", 0, old.epoch)).events == [(1, old.raw)]
    new = await bus.publish("s1", "stage.reset", {"stage": "draft"}, "r1", generation=1)
    assert new is not None and new.seq == 2


async def test_partial_text_follows_the_running_stage(redis: Redis) -> None:
    bus = EventBus(redis, KEYS, history=50, ttl_s=60)
    await bus.publish("s1", "stage.started", {"stage": "plan"}, "r1")
    await bus.publish("s1", "stage.delta", {"stage": "plan", "text": "Hel"}, "r1")
    last = await bus.publish("s1", "stage.delta", {"stage": "plan", "text": "lo"}, "r1")
    partial = await bus.partial("r1")
    assert partial is not None and last is not None
    assert (partial.stage, partial.text, partial.seq) == ("plan", "Hello", last.seq)
    reset = await bus.publish("s1", "stage.reset", {"stage": "plan"}, "r1")
    partial = await bus.partial("r1")
    assert partial is not None and reset is not None
    assert (partial.text, partial.seq) == ("", reset.seq)
    await bus.publish("s1", "stage.completed", {"stage": "plan", "output": "x"}, "r1")
    assert await bus.partial("r1") is None
