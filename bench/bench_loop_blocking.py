"""Event delivery latency while logins run at the machine's bcrypt capacity (bench/README.md).

One web process (`python -m chorus`) with the production bcrypt cost (12). This process
publishes --rate events/s with the EventBus (as a worker does) to a session that
--sockets sockets watch, and times each event from publish to receipt. Phases
alternate: idle, then loaded, where a separate process keeps --logins concurrent
logins going back to back (enough to keep every core busy hashing: "the machine's
bcrypt capacity", ≈ 8 logins/s on 2 cores). Bar: loaded p99 ≤ 2 × idle p99.

    .venv/bin/python bench/bench_loop_blocking.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
from typing import Any

import aiohttp
from _harness import (
    PASSWORD,
    Api,
    ChorusWs,
    CpuMeter,
    Stack,
    client,
    describe_cpu,
    header,
    new_email,
    percentile,
    run,
    verdict,
)
from redis.asyncio import Redis

from server.events.bus import EventBus
from server.redis_keys import RedisKeys


def login_process(base: str, email: str, concurrency: int, done: Any, stop: Any) -> None:
    """Child process: ``concurrency`` login loops until ``stop``; count successes in ``done``."""
    asyncio.run(_logins(base, email, concurrency, done, stop))


async def _logins(base: str, email: str, concurrency: int, done: Any, stop: Any) -> None:
    async with aiohttp.ClientSession() as http:

        async def loop() -> None:
            while not stop.is_set():
                body = {"email": email, "password": PASSWORD}
                async with http.post(f"{base}/api/v1/auth/login", json=body) as resp:
                    await resp.read()
                    if resp.status == 200:
                        done.value += 1

        await asyncio.gather(*(loop() for _ in range(concurrency)))


class Probe:
    """Publish timestamped events and time their arrival on the sockets."""

    def __init__(self, bus: EventBus, session_id: str) -> None:
        self._bus = bus
        self._session_id = session_id
        self.latencies: list[float] | None = None

    def on_event(self, frame: dict[str, Any], now: float) -> None:
        """Record one event's delivery time (only while a phase is measured)."""
        if self.latencies is not None and frame["name"] == "stage.delta":
            self.latencies.append(now - float(frame["data"]["text"]))

    async def phase(self, rate: float, seconds: float) -> list[float]:
        """Publish at ``rate`` per second for ``seconds``; return the delivery latencies."""
        latencies: list[float] = []
        self.latencies = latencies
        interval, start = 1 / rate, time.perf_counter()
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + i * interval - time.perf_counter()))
            data = {"stage": "probe", "text": repr(time.perf_counter())}
            await self._bus.publish(self._session_id, "stage.delta", data, "probe-run")
        await asyncio.sleep(0.5)  # the last ones arrive
        self.latencies = None
        return latencies


def ms(values: list[float], q: float) -> float:
    """A percentile in milliseconds."""
    return percentile(values, q) * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a < 20 s smoke run")
    parser.add_argument("--rate", type=float, default=200, help="probe events per second")
    parser.add_argument("--sockets", type=int, default=10, help="sockets watching the session")
    parser.add_argument("--logins", type=int, default=2 * (os.cpu_count() or 1),
                        help="concurrent login loops (default 2 per core)")  # fmt: skip
    args = parser.parse_args()
    seconds, rounds = (4.0, 1) if args.quick else (8.0, 2)
    header("bench_loop_blocking")
    ctx = multiprocessing.get_context("spawn")

    async with Stack() as stack, client() as http:
        _web, base = await stack.web(BCRYPT_ROUNDS="12")
        api = Api(http, base)
        email = new_email("loop")
        token = await api.user(email)
        session_id = await api.session(token)
        redis = Redis.from_url(stack.redis_url)
        probe = Probe(EventBus(redis, RedisKeys(), 5000, 3600), session_id)
        conns = [
            await ChorusWs.open(http, base, token, probe.on_event) for _ in range(args.sockets)
        ]
        for conn in conns:
            await conn.command("subscribe", session_id=session_id)
        await probe.phase(args.rate, 1.0)  # warm-up
        idle: list[float] = []
        loaded: list[float] = []
        logins_per_s: list[float] = []
        cpu: dict[str, float] = {}
        for _ in range(rounds):
            idle += await probe.phase(args.rate, seconds)
            done, stop = ctx.Value("q", 0, lock=False), ctx.Event()
            hammer = ctx.Process(target=login_process, args=(base, email, args.logins, done, stop))
            hammer.start()
            await asyncio.sleep(2.0)  # the logins reach their pace
            meter = CpuMeter({**stack.pids("web"), "logins": hammer.pid or 0, "bench": os.getpid()})
            meter.start()
            n0, t0 = done.value, time.monotonic()
            loaded += await probe.phase(args.rate, seconds)
            logins_per_s.append((done.value - n0) / (time.monotonic() - t0))
            cpu = meter.stop()
            stop.set()
            await asyncio.to_thread(hammer.join, 30)
            await asyncio.sleep(1.0)  # the last logins finish
        for conn in conns:
            await conn.close()
        await redis.aclose()

    ratio = percentile(loaded, 99) / percentile(idle, 99)
    print(f"{args.rate:g} events/s to {args.sockets} sockets on one session; "
          f"{rounds} x {seconds:g} s per phase; bcrypt cost 12")  # fmt: skip
    print(f"    idle:   p50 {ms(idle, 50):6.2f} ms  p99 {ms(idle, 99):6.2f} ms  "
          f"max {ms(idle, 100):6.1f} ms  ({len(idle)} deliveries)")  # fmt: skip
    print(f"    logins: p50 {ms(loaded, 50):6.2f} ms  p99 {ms(loaded, 99):6.2f} ms  "
          f"max {ms(loaded, 100):6.1f} ms  ({len(loaded)} deliveries; "
          f"{sum(logins_per_s) / len(logins_per_s):.1f} logins/s with {args.logins} in flight; "
          f"CPU {describe_cpu(cpu)})")  # fmt: skip
    ok = ratio <= 2
    print(f"    loaded p99 / idle p99: {ratio:.2f}   bar ≤ 2: {verdict(ok)}")
    print(f"RESULT bench_loop_blocking: {verdict(ok)}")


if __name__ == "__main__":
    run(main)
