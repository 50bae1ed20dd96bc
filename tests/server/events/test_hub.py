"""EventHub over a real Redis: shared channel subscriptions, fan-out, revocations, reconnects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from server.events.bus import EventBus
from server.events.hub import EventHub, seq_of
from server.metrics import Metrics
from server.redis_keys import RedisKeys

KEYS = RedisKeys("t")


class FakeSink:
    """Records what the hub hands it."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.resyncs: list[list[str]] = []
        self.revocations = 0

    def push(self, frame: bytes) -> None:
        self.frames.append(frame)

    def resync(self, session_ids: list[str]) -> None:
        self.resyncs.append(session_ids)

    def revoked(self) -> None:
        self.revocations += 1

    def disabled(self) -> None:
        self.revocations += 1


@pytest.fixture
def bus(redis: Redis) -> EventBus:
    return EventBus(redis, KEYS, history=100, ttl_s=60)


@pytest.fixture
async def hub(redis: Redis) -> AsyncIterator[EventHub]:
    hub = EventHub(redis, KEYS, Metrics(), backoff_s=(0.01, 0.1))
    await hub.start()
    await asyncio.wait_for(hub.connected.wait(), 5)
    yield hub
    await hub.close()


async def _until(predicate: Callable[[], object]) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met within 5 s")


async def _numsub(redis: Redis, session_id: str) -> int:
    [(_, count)] = await redis.pubsub_numsub(KEYS.session_channel(session_id))
    return int(count)


async def test_seq_of_reads_the_published_frame(bus: EventBus) -> None:
    published = await bus.publish("s1", "run.started", {"seq": "not this one"})
    assert seq_of(published.raw.encode()) == 1
    with pytest.raises(ValueError):
        seq_of(b'{"type":"event"}')


async def test_one_redis_subscription_per_channel(hub: EventHub, redis: Redis) -> None:
    a, b = FakeSink(), FakeSink()
    sub_a = await hub.subscribe("s1", a)
    sub_b = await hub.subscribe("s1", b)
    assert await _numsub(redis, "s1") == 1
    sub_a.cancel()
    sub_a.cancel()  # idempotent
    await asyncio.sleep(0.05)
    assert await _numsub(redis, "s1") == 1
    sub_b.cancel()
    for _ in range(500):
        if not await _numsub(redis, "s1"):
            break
        await asyncio.sleep(0.01)
    assert await _numsub(redis, "s1") == 0


async def test_fan_out_forwards_the_same_raw_bytes(hub: EventHub, bus: EventBus) -> None:
    sinks = [FakeSink() for _ in range(3)]
    for sink in sinks:
        (await hub.subscribe("s1", sink)).go_live(0)
    published = await bus.publish("s1", "stage.delta", {"stage": "p", "text": "x"})
    await _until(lambda: all(s.frames for s in sinks))
    assert sinks[0].frames == [published.raw.encode()]
    assert sinks[0].frames[0] is sinks[1].frames[0] is sinks[2].frames[0]


async def test_buffered_events_at_or_below_the_replay_are_dropped(
    hub: EventHub, bus: EventBus
) -> None:
    sink, probe = FakeSink(), FakeSink()
    sub = await hub.subscribe("s1", sink)
    (await hub.subscribe("s1", probe)).go_live(0)  # sees what the buffer sees, as it comes
    for _ in range(3):
        await bus.publish("s1", "run.started", {})
    replay = await bus.replay("s1", 1, None)  # read while 4 and 5 are being published
    for _ in range(2):
        await bus.publish("s1", "run.started", {})
    await _until(lambda: len(probe.frames) == 5)
    assert [s for s, _ in replay.events] == [2, 3] and replay.last_seq == 3
    assert [seq_of(f) for f in sub.go_live(replay.last_seq)] == [4, 5]
    assert sink.frames == []
    await bus.publish("s1", "run.started", {})
    await _until(lambda: sink.frames)
    assert [seq_of(f) for f in sink.frames] == [6]


async def test_resubscribe_before_the_unsubscribe_is_applied(hub: EventHub, bus: EventBus) -> None:
    sink = FakeSink()
    (await hub.subscribe("s1", sink)).cancel()
    sub = await asyncio.wait_for(hub.subscribe("s1", sink), 2)
    sub.go_live(0)
    await bus.publish("s1", "run.started", {})
    await _until(lambda: sink.frames)


async def test_revocation_reaches_the_sinks_of_that_token(hub: EventHub, redis: Redis) -> None:
    mine, other = FakeSink(), FakeSink()
    detach = hub.attach(mine, "jti-1")
    hub.attach(other, "jti-2")
    await redis.publish(KEYS.revocations_channel(), "jti-1")
    await _until(lambda: mine.revocations == 1)
    assert other.revocations == 0
    detach()
    assert mine not in hub.sinks and other in hub.sinks
    await redis.publish(KEYS.revocations_channel(), "jti-1")
    await asyncio.sleep(0.05)
    assert mine.revocations == 1


async def test_reconnect_resubscribes_and_resyncs(
    hub: EventHub, bus: EventBus, redis: Redis
) -> None:
    sink, idle = FakeSink(), FakeSink()
    (await hub.subscribe("s1", sink)).go_live(0)
    (await hub.subscribe("s2", sink)).go_live(0)
    hub.attach(idle, "jti")
    assert await redis.client_kill_filter(_type="pubsub") == 1
    await _until(lambda: sink.resyncs)
    assert sink.resyncs == [["s1", "s2"]] and idle.resyncs == []
    await bus.publish("s1", "run.started", {})
    await _until(lambda: sink.frames)


async def test_subscribe_times_out_while_redis_is_unreachable() -> None:
    redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    hub = EventHub(redis, KEYS, Metrics(), subscribe_timeout_s=0.2, backoff_s=(0.01, 0.05))
    await hub.start()
    with pytest.raises(TimeoutError):
        await hub.subscribe("s1", FakeSink())
    assert not hub.connected.is_set()
    await hub.close()
    await redis.aclose()


async def test_a_replayed_event_arriving_live_after_the_switch_is_dropped(
    hub: EventHub, bus: EventBus
) -> None:
    # The replay reads the stream, which each publish writes before it publishes: an
    # event can be in the replay and reach this process over pub/sub only after go_live.
    sink, probe = FakeSink(), FakeSink()
    sub = await hub.subscribe("s1", sink)
    (await hub.subscribe("s1", probe)).go_live(0)
    published = [await bus.publish("s1", "run.started", {}) for _ in range(3)]
    await _until(lambda: len(probe.frames) == 3)  # the buffer holds 1, 2, 3 too
    assert sub.go_live(2) == [published[2].raw.encode()]
    late = published[1]  # seq 2, in the replay: its pub/sub copy comes late
    sub.deliver(late.seq, late.raw.encode())
    assert sink.frames == []
    sub.deliver(4, b"four")
    assert sink.frames == [b"four"]
