"""EventBus over a real Redis: atomic seq, replay log, epochs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from server.events.bus import EventBus
from server.redis_keys import RedisKeys


@pytest.fixture
async def bus(redis_url: str) -> AsyncIterator[EventBus]:
    redis = Redis.from_url(redis_url)
    yield EventBus(redis, RedisKeys("t"), history=50, ttl_s=60)
    await redis.aclose()


async def test_publish_assigns_contiguous_seq_and_envelope(bus: EventBus) -> None:
    first = await bus.publish("s1", "run.started", {"run_id": "r"}, "r")
    second = await bus.publish("s1", "stage.delta", {"stage": "plan", "text": "hé"}, "r")
    assert (first.seq, second.seq) == (1, 2)
    assert first.epoch == second.epoch
    event = json.loads(second.raw)
    assert event["type"] == "event" and event["session_id"] == "s1"
    assert event["seq"] == 2 and event["epoch"] == first.epoch
    assert event["name"] == "stage.delta" and event["data"]["text"] == "hé"
    assert event["run_id"] == "r" and event["ts"].endswith("Z")


async def test_unknown_event_name_refused(bus: EventBus) -> None:
    with pytest.raises(ValueError, match="unknown event"):
        await bus.publish("s1", "run.exploded", {})


async def test_replay_after_seq(bus: EventBus) -> None:
    for i in range(5):
        await bus.publish("s1", "stage.delta", {"stage": "p", "text": str(i)})
    seq, epoch = await bus.head("s1")
    replay = await bus.replay("s1", 2, epoch)
    assert replay.recovered and replay.last_seq == 5 == seq
    assert [s for s, _ in replay.events] == [3, 4, 5]
    assert [json.loads(raw)["data"]["text"] for _, raw in replay.events] == ["2", "3", "4"]


async def test_replay_wrong_epoch_or_future_is_not_recovered(bus: EventBus) -> None:
    await bus.publish("s1", "run.started", {})
    assert not (await bus.replay("s1", 0, "other-epoch")).recovered
    assert not (await bus.replay("s1", 7, None)).recovered


async def test_replay_trimmed_history_is_not_recovered(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    small = EventBus(redis, RedisKeys("t"), history=10, ttl_s=60)
    for _ in range(300):
        await small.publish("s2", "run.started", {})
    _, epoch = await small.head("s2")
    assert not (await small.replay("s2", 1, epoch)).recovered
    assert (await small.replay("s2", 299, epoch)).recovered
    await redis.aclose()


async def test_lost_counter_starts_new_epoch(bus: EventBus, redis_url: str) -> None:
    old = await bus.publish("s1", "run.started", {})
    redis = Redis.from_url(redis_url)
    await redis.flushall()
    await redis.aclose()
    new = await bus.publish("s1", "run.started", {})
    assert new.seq == 1 and new.epoch != old.epoch
    assert not (await bus.replay("s1", old.seq, old.epoch)).recovered
