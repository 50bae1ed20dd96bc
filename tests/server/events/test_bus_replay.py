"""EventBus.replay edge cases the WebSocket resume relies on."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from server.events.bus import EventBus
from server.redis_keys import RedisKeys

KEYS = RedisKeys("t")


@pytest.fixture
async def bus(redis: Redis) -> EventBus:
    bus = EventBus(redis, KEYS, history=100, ttl_s=60)
    for _ in range(5):
        await bus.publish("s1", "run.started", {})
    return bus


async def test_no_after_seq_is_recovered_with_nothing_to_replay(bus: EventBus) -> None:
    replay = await bus.replay("s1", None, None)
    assert (replay.last_seq, replay.recovered, replay.events) == (5, True, [])


async def test_after_seq_at_the_head_is_recovered_and_empty(bus: EventBus) -> None:
    _, epoch = await bus.head("s1")
    replay = await bus.replay("s1", 5, epoch)
    assert (replay.last_seq, replay.epoch, replay.recovered, replay.events) == (5, epoch, True, [])


async def test_after_zero_replays_everything(bus: EventBus) -> None:
    replay = await bus.replay("s1", 0, None)
    assert replay.recovered and [s for s, _ in replay.events] == [1, 2, 3, 4, 5]


async def test_missing_stream_with_live_counter_is_not_recovered(
    bus: EventBus, redis: Redis
) -> None:
    await redis.delete(KEYS.session_stream("s1"))
    replay = await bus.replay("s1", 2, None)
    assert (replay.last_seq, replay.recovered, replay.events) == (5, False, [])


async def test_unknown_session_starts_a_counter(bus: EventBus) -> None:
    replay = await bus.replay("fresh", None, None)
    assert replay.last_seq == 0 and replay.recovered and replay.epoch
    assert (await bus.head("fresh"))[1] == replay.epoch
