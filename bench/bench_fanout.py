"""Event fan-out of one web process to 1,000 WebSockets (bench/README.md).

Chorus: one web process (`python -m chorus`), 1,000 authenticated sockets each
subscribed to one of --sessions sessions; this process publishes ~200-byte
``stage.delta`` events with the EventBus (the workers' path: Lua script → Redis pub/sub
→ the web process's EventHub → each socket's outbox and writer). The publishers keep
at most ~100 events per socket in flight, so the server is driven at its capacity
without tripping the slow-consumer limit. Raw: a bare aiohttp handler calling send_str
in a loop with the same frame to the same number of sockets, measured in the same
run. Clients run in --client-procs processes of their own; what counts is events
received by them. Bar: ≥ 25,000 events/s and ≥ 50 % of raw.

    .venv/bin/python bench/bench_fanout.py [--quick] [--sessions 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import time
from dataclasses import dataclass
from typing import Any

from _harness import (
    PYTHON,
    ROOT,
    Api,
    CpuMeter,
    LeanWs,
    Stack,
    client,
    describe_cpu,
    header,
    lean_connect,
    new_email,
    poll_until,
    raise_nofile,
    run,
    verdict,
    wait_log,
)
from redis.asyncio import Redis

from server.events.bus import EventBus
from server.redis_keys import RedisKeys
from server.redis_proc import free_port

EVENT_BYTES = 200
INFLIGHT_PER_SOCKET = 100

# ---------------------------------------------------------------- client processes


@dataclass
class ClientShare:
    """What a client process shares with the bench: counters and phase flags."""

    received: Any  # multiprocessing Value('q'): event frames received so far
    closed: Any  # multiprocessing Value('q'): sockets closed by the server
    ready: Any  # multiprocessing Event: every socket open (and subscribed)
    go: Any  # multiprocessing Event: raw mode, ask the server to start sending
    stop: Any  # multiprocessing Event: close everything and exit


def client_process(
    port: int, specs: list[tuple[str | None, str | None]], share: ClientShare
) -> None:
    """Child process: hold ``specs`` sockets (token, session to subscribe) and count frames."""
    raise_nofile(len(specs) + 256)
    asyncio.run(_clients(port, specs, share))


async def _clients(
    port: int, specs: list[tuple[str | None, str | None]], share: ClientShare
) -> None:
    gate = asyncio.Semaphore(50)

    async def open_one(token: str | None, session_id: str | None) -> LeanWs:
        async with gate:
            ws = await lean_connect("127.0.0.1", port, token)
            if session_id is not None:
                ws.send_text(json.dumps({"id": 1, "type": "subscribe", "session_id": session_id}))
            return ws

    socks = await asyncio.gather(*(open_one(t, s) for t, s in specs))
    control = 2 if specs[0][1] is not None else 0  # "ready", then the subscribe result
    await poll_until(lambda: all(s.frames >= control for s in socks))
    offset = sum(s.frames for s in socks)
    share.ready.set()
    if control == 0:
        await poll_until(share.go.is_set, 0.005)
        for s in socks:
            s.send_text("go")
    while not share.stop.is_set():
        share.received.value = sum(s.frames for s in socks) - offset
        share.closed.value = sum(1 for s in socks if s.closed.done())
        await asyncio.sleep(0.02)
    for s in socks:
        s.close()


class Clients:
    """Several client processes holding the sockets between them."""

    def __init__(self, port: int, specs: list[tuple[str | None, str | None]], procs: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.shares = [
            ClientShare(ctx.Value("q", 0, lock=False), ctx.Value("q", 0, lock=False),
                        ctx.Event(), ctx.Event(), ctx.Event())
            for _ in range(procs)
        ]  # fmt: skip
        self.procs = [
            ctx.Process(target=client_process, args=(port, specs[i::procs], share))
            for i, share in enumerate(self.shares)
        ]
        for proc in self.procs:
            proc.start()

    async def ready(self, within_s: float = 60) -> None:
        """Wait until every process holds its sockets."""
        deadline = time.monotonic() + within_s
        while not all(s.ready.is_set() for s in self.shares):
            if time.monotonic() > deadline or any(not p.is_alive() for p in self.procs):
                raise RuntimeError("client processes did not get ready")
            await asyncio.sleep(0.05)

    def go(self) -> None:
        """Raw mode: start the servers' send loops."""
        for share in self.shares:
            share.go.set()

    def received(self) -> int:
        """Event frames received so far, over every process."""
        return sum(int(s.received.value) for s in self.shares)

    def closed(self) -> int:
        """Sockets the server closed."""
        return sum(int(s.closed.value) for s in self.shares)

    @property
    def pids(self) -> dict[str, int]:
        """Client process ids by name."""
        return {f"clients{i}": p.pid for i, p in enumerate(self.procs) if p.pid is not None}

    async def stop(self) -> None:
        """Close the sockets and end the processes."""
        for share in self.shares:
            share.stop.set()
        for proc in self.procs:
            await asyncio.to_thread(proc.join, 15)
            if proc.is_alive():
                proc.kill()


async def measure(clients: Clients, warm_s: float, seconds: float) -> float:
    """Events received per second over ``seconds``, after ``warm_s``."""
    await asyncio.sleep(warm_s)
    t0, n0 = time.monotonic(), clients.received()
    await asyncio.sleep(seconds)
    t1, n1 = time.monotonic(), clients.received()
    return (n1 - n0) / (t1 - t0)


# ---------------------------------------------------------------- the two sides


@dataclass
class Setup:
    """The Chorus side: users' tokens and sessions, and the socket specs over them."""

    sessions: list[str]
    specs: list[tuple[str | None, str | None]]


async def chorus_setup(base: str, sockets: int, sessions: int) -> Setup:
    """Register 10 users and ``sessions`` sessions; spread the sockets evenly over them."""
    async with client() as http:
        api = Api(http, base)
        tokens = [await api.user(new_email("fanout")) for _ in range(10)]
        owners = [tokens[i % len(tokens)] for i in range(sessions)]
        ids = [await api.session(token) for token in owners]
    specs: list[tuple[str | None, str | None]] = [
        (owners[i % sessions], ids[i % sessions]) for i in range(sockets)
    ]
    return Setup(ids, specs)


def event_text(bus_raw: str) -> str:
    """Text for a delta that makes the whole event frame ~EVENT_BYTES bytes."""
    return "x" * max(1, EVENT_BYTES - len(bus_raw.encode()))


async def run_chorus(
    stack: Stack, port: int, setup: Setup, text: str, args: argparse.Namespace
) -> tuple[float, dict[str, float], int, bool]:
    """Drive the Chorus side; return (events/s, CPU, sockets closed, all delivered)."""
    clients = Clients(port, setup.specs, args.client_procs)
    redis = Redis.from_url(stack.redis_url)
    bus = EventBus(redis, RedisKeys(), history=5000, ttl_s=3600)
    fan = {sid: sum(1 for _, s in setup.specs if s == sid) for sid in setup.sessions}
    window = INFLIGHT_PER_SOCKET * len(setup.specs)
    data = {"stage": "draft", "text": text}
    sent = 0
    stop = asyncio.Event()

    async def publisher(session_id: str) -> None:
        nonlocal sent
        while not stop.is_set():
            if sent - clients.received() > window:
                await asyncio.sleep(0.001)
                continue
            await bus.publish(session_id, "stage.delta", data, "bench-run")
            sent += fan[session_id]

    try:
        await clients.ready()
        sent = 0
        meter = CpuMeter({**stack.pids("web"), **clients.pids, "bench": os.getpid()})
        tasks = [asyncio.create_task(publisher(sid)) for sid in setup.sessions]
        await asyncio.sleep(args.warm_s)
        meter.start()
        rate = await measure(clients, 0, args.seconds)
        cpu = meter.stop()
        stop.set()
        await asyncio.gather(*tasks)
        complete = await poll_until(lambda: clients.received() >= sent, 0.05, 10)
        closed = clients.closed()
    finally:
        await clients.stop()
        await redis.aclose()
    return rate, cpu, closed, complete


async def run_raw(
    stack: Stack, sockets: int, frame: str, args: argparse.Namespace
) -> tuple[float, dict[str, float]]:
    """Drive the raw side; return (events/s, CPU)."""
    port = free_port()
    payload_file = stack.tmp / "payload.txt"
    payload_file.write_text(frame)
    raw = stack.spawn(
        "raw", [PYTHON, str(ROOT / "bench" / "_raw_ws_server.py"), str(port), str(payload_file)]
    )
    await wait_log(raw, "raw server ready")
    clients = Clients(port, [(None, None)] * sockets, args.client_procs)
    try:
        await clients.ready()
        meter = CpuMeter({"raw": raw.pid, **clients.pids})
        clients.go()
        await asyncio.sleep(args.warm_s)
        meter.start()
        rate = await measure(clients, 0, args.seconds)
        cpu = meter.stop()
    finally:
        await clients.stop()
        raw.stop()
    return rate, cpu


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a < 20 s smoke run")
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=10, help="sessions the sockets watch")
    parser.add_argument("--client-procs", type=int, default=2)
    args = parser.parse_args()
    args.seconds, args.warm_s = (3.0, 1.0) if args.quick else (8.0, 2.0)
    rounds = 1 if args.quick else 2
    header("bench_fanout")
    raise_nofile(args.sockets + 256)

    async with Stack() as stack:
        _web, base = await stack.web()
        port = int(base.rsplit(":", 1)[1])
        setup = await chorus_setup(base, args.sockets, args.sessions)
        probe = Redis.from_url(stack.redis_url)
        sample = await EventBus(probe, RedisKeys(), 5000, 3600).publish(
            setup.sessions[0], "stage.delta", {"stage": "draft", "text": ""}, "bench-run"
        )
        await probe.aclose()
        text = event_text(sample.raw)
        frame = sample.raw.replace('"text":""', f'"text":"{text}"')
        raws: list[float] = []
        chorus: list[float] = []
        notes: list[str] = []
        cpu_raw: dict[str, float] = {}
        cpu_chorus: dict[str, float] = {}
        for _ in range(rounds):
            rate, cpu_raw = await run_raw(stack, args.sockets, frame, args)
            raws.append(rate)
            rate, cpu_chorus, closed, complete = await run_chorus(stack, port, setup, text, args)
            chorus.append(rate)
            if closed or not complete:
                notes.append(f"{closed} sockets closed by the server; all delivered: {complete}")

    raw_rate, chorus_rate = max(raws), max(chorus)
    ratio = chorus_rate / raw_rate
    each = args.sockets // args.sessions
    print(f"{args.sockets} sockets, {args.sessions} sessions ({each} sockets each), "
          f"{len(frame)}-byte events, {args.client_procs} client processes, "
          f"best of {rounds} x {args.seconds:g} s")  # fmt: skip
    runs_raw = ", ".join(f"{r:,.0f}" for r in raws)
    runs_chorus = ", ".join(f"{r:,.0f}" for r in chorus)
    print(f"    raw aiohttp send_str loop: {raw_rate:10,.0f} events/s   "
          f"(runs: {runs_raw}; CPU {describe_cpu(cpu_raw)})")  # fmt: skip
    print(f"    Chorus EventHub fan-out:   {chorus_rate:10,.0f} events/s   "
          f"(runs: {runs_chorus}; CPU {describe_cpu(cpu_chorus)})")  # fmt: skip
    for note in notes:
        print(f"    NOTE: {note}")
    ok = chorus_rate >= 25_000 and ratio >= 0.5 and not notes
    print(f"    Chorus / raw: {ratio:.0%}   bar ≥ 25,000 events/s and ≥ 50 % of raw: {verdict(ok)}")
    print(f"RESULT bench_fanout: {verdict(ok)}")


if __name__ == "__main__":
    run(main)
