"""Stage start latency and time to first token added by Chorus (bench/README.md).

(a) enqueue → stage start: the time between a run's ``run.queued`` event (published by
    the SessionManager just before it enqueues the stage job) and its ``stage.started``
    event (published by the StageExecutor once it has claimed the job), both read on
    the same WebSocket, so the delivery path cancels out. 10 sessions, each sending
    again 0 to 1 s after its run ended (so sends fall at every phase of a poll).
    Measured with the tuned poll (WORKER_POLL_S, default 5 ms) and, as the baseline,
    with arq's default 0.5 s poll. Bar: p95 < 20 ms.
(b) time to first token added by Chorus at 100 concurrent sessions: WS ``send`` → first
    ``stage.delta`` on the socket (one-stage ``chat`` pipeline), minus the time to first
    token of a direct openai SDK streaming call to the same demo model server with the
    same messages, made by as many callers, paced the same way, from a process of their
    own. The two alternate in phases so both see the same machine. Each session is a
    user: send, watch the answer stream, think (uniform 0.5 to 1.5 times --think-s), send
    again; ``--think-s 0`` sends back to back (a stress test of one worker process).
    Bar: p50 ≤ 10 ms, p95 ≤ 30 ms.

Processes: redis-server, the demo model, one web process (`python -m chorus`, no
embedded worker), one worker process (`python -m workers`), this client; the direct
SDK callers in a child process. The store is SQLite in a temporary DATA_DIR, or
MongoDB if MONGODB_URL is set in the environment.

    .venv/bin/python bench/bench_stage_latency.py [--quick] [--think-s 0] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import openai
from _harness import (
    CpuMeter,
    Seat,
    Stack,
    client,
    describe_cpu,
    header,
    percentile,
    profile,
    run,
    verdict,
)
from _harness import open_seats as harness_open_seats

from server.pipelines import AgentRegistry

PROMPT = "How do I measure the latency a job queue adds to a chat stage?"
FINAL = ("run.completed", "run.failed", "run.cancelled")
LEGS = ("send→message.created", "→run.queued", "→stage.started", "→first delta")


@dataclass
class Watch:
    """What one session's socket saw of its current run (perf_counter times)."""

    created: float | None = None
    queued: float | None = None
    started: float | None = None
    first_delta: float | None = None
    status: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def reset(self) -> None:
        """Forget the previous run."""
        self.created = self.queued = self.started = self.first_delta = None
        self.status = None
        self.done.clear()

    def see(self, frame: dict[str, Any], now: float) -> None:
        """Record one event of this session."""
        name = frame["name"]
        if name == "message.created":
            self.created = now
        elif name == "run.queued":
            self.queued = now
        elif name == "stage.started" and self.started is None:
            self.started = now
        elif name == "stage.delta" and self.first_delta is None:
            self.first_delta = now
        elif name in FINAL:
            self.status = name
            self.done.set()


async def open_seats(http: aiohttp.ClientSession, base: str, count: int) -> list[Seat[Watch]]:
    """Open ``count`` sockets, each subscribed to its own chat session (10 users)."""
    return await harness_open_seats(http, base, count, Watch, prompt=PROMPT, tag="ttft")


def think(mean_s: float) -> float:
    """A user's pause before the next message: uniform over 0.5 to 1.5 times the mean."""
    return random.uniform(0.5 * mean_s, 1.5 * mean_s)


# ---------------------------------------------------------------- (a) enqueue → stage start


async def stage_start_latency(seats: list[Seat[Watch]], samples: int) -> list[float]:
    """Run chat runs on the seats until ``samples`` queued→started gaps are collected."""
    gaps: list[float] = []

    async def loop(seat: Seat[Watch]) -> None:
        await asyncio.sleep(random.uniform(0, 1.0))  # no burst of ten sends at once
        while len(gaps) < samples:
            await seat.run_once()
            w = seat.watch
            if w.queued is not None and w.started is not None:
                gaps.append(w.started - w.queued)
            await asyncio.sleep(random.uniform(0, 1.0))  # any phase of a 0.5 s poll

    await asyncio.gather(*(loop(s) for s in seats))
    return gaps[:samples]


# ---------------------------------------------------------------- (b) time to first token

Legs = list[tuple[float, float, float, float]]


async def chorus_ttft(
    seats: list[Seat[Watch]], seconds: float, think_s: float, legs: Legs
) -> list[float]:
    """Every seat chats for ``seconds``; return send → first delta of each run.

    ``legs`` collects where the time went: send → message.created → run.queued →
    stage.started → first stage.delta.
    """
    ttfts: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def loop(seat: Seat[Watch]) -> None:
        await asyncio.sleep(random.uniform(0, think_s or 0.2))
        while time.perf_counter() < stop_at:
            sent = await seat.run_once()
            w = seat.watch
            if w.first_delta is not None:
                ttfts.append(w.first_delta - sent)
                if w.created and w.queued and w.started:
                    legs.append((w.created - sent, w.queued - w.created,
                                 w.started - w.queued, w.first_delta - w.started))  # fmt: skip
            await asyncio.sleep(think(think_s))

    await asyncio.gather(*(loop(s) for s in seats))
    return ttfts


def direct_ttft(url: str, concurrency: int, seconds: float, think_s: float, queue: Any) -> None:
    """Child process: ``concurrency`` SDK callers stream and think; put their TTFTs."""
    queue.put(asyncio.run(_direct(url, concurrency, seconds, think_s)))


async def _direct(url: str, concurrency: int, seconds: float, think_s: float) -> list[float]:
    registry = AgentRegistry.load(None, demo_url=url)
    agent = registry.agent("assistant")
    client = openai.AsyncOpenAI(base_url=url, api_key="not-needed", max_retries=0, timeout=60)
    ttfts: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def call(history: list[tuple[str, str]]) -> float | None:
        """One streamed call with the messages the worker would build; grow the history."""
        messages: Any = registry.build_messages(
            agent, history=history, message=PROMPT, stage="answer"
        )
        sent, first, parts = time.perf_counter(), None, []
        stream = await client.chat.completions.create(
            model="chorus-demo", messages=messages, stream=True,
            stream_options={"include_usage": True},
            temperature=agent.temperature, max_tokens=agent.max_tokens,
        )  # fmt: skip
        async with stream:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    first = first or time.perf_counter()
                    parts.append(chunk.choices[0].delta.content)
        history += [("user", PROMPT), ("assistant", "".join(parts))]
        return None if first is None else first - sent

    async def loop() -> None:
        history: list[tuple[str, str]] = []
        await call(history)  # warm-up, as the Chorus sessions had theirs
        await asyncio.sleep(random.uniform(0, think_s or 0.2))
        while time.perf_counter() < stop_at:
            ttft = await call(history)
            if ttft is not None:
                ttfts.append(ttft)
            await asyncio.sleep(think(think_s))

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    await client.close()
    return ttfts


async def run_direct(url: str, concurrency: int, seconds: float, think_s: float) -> list[float]:
    """Run the direct SDK callers in a child process (its CPU is not this process's)."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=direct_ttft, args=(url, concurrency, seconds, think_s, queue))
    proc.start()
    result: list[float] = await asyncio.to_thread(queue.get, True, seconds + 120)
    await asyncio.to_thread(proc.join, 30)
    return result


def ms(values: list[float], q: float) -> float:
    """A percentile in milliseconds."""
    return percentile(values, q) * 1000


def report_a(a: dict[str, list[float]]) -> bool:
    """Print part (a); return whether it meets its bar."""
    print("(a) enqueue → stage start (run.queued → stage.started), 10 sessions")
    rows = (
        ("chorus", "Chorus worker (wake on enqueue, 5 ms poll)"),
        ("plain-5ms", "arq Worker, 5 ms poll (WORKER_POLL_S)"),
        ("plain-0.5s", "arq Worker, default 0.5 s poll (baseline)"),
    )
    for key, label in rows:
        v = a[key]
        print(f"    {label:44s} p50 {ms(v, 50):6.1f} ms  p95 {ms(v, 95):6.1f} ms  "
              f"p99 {ms(v, 99):6.1f} ms  ({len(v)} runs)")  # fmt: skip
    tuned, base = a["chorus"], a["plain-0.5s"]
    ok = ms(tuned, 95) < 20
    print(f"    baseline / Chorus: p50 {percentile(base, 50) / percentile(tuned, 50):.0f}x, "
          f"p95 {percentile(base, 95) / percentile(tuned, 95):.0f}x   "
          f"bar p95 < 20 ms: {verdict(ok)}")  # fmt: skip
    return ok


def report_b(direct: list[float], chorus: list[float], legs: Legs, info: str) -> bool:
    """Print part (b); return whether it meets its bar."""
    added50 = ms(chorus, 50) - ms(direct, 50)
    added95 = ms(chorus, 95) - ms(direct, 95)
    print(f"(b) time to first token, {info}")
    print(f"    direct SDK call:       p50 {ms(direct, 50):6.1f} ms  p95 {ms(direct, 95):6.1f} ms"
          f"  ({len(direct)} calls)")  # fmt: skip
    print(f"    Chorus send → delta:   p50 {ms(chorus, 50):6.1f} ms  p95 {ms(chorus, 95):6.1f} ms"
          f"  ({len(chorus)} runs)")  # fmt: skip
    print("    where Chorus's time goes (p50 / p95 ms): " + ", ".join(
        f"{n} {ms([leg[i] for leg in legs], 50):.1f} / {ms([leg[i] for leg in legs], 95):.1f}"
        for i, n in enumerate(LEGS)))  # fmt: skip
    ok = added50 <= 10 and added95 <= 30
    print(f"    added by Chorus:       p50 {added50:6.1f} ms  p95 {added95:6.1f} ms"
          f"   bar p50 ≤ 10, p95 ≤ 30: {verdict(ok)}")  # fmt: skip
    return ok


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a < 20 s smoke run")
    parser.add_argument("--sessions", type=int, default=100, help="concurrent sessions in (b)")
    parser.add_argument(
        "--think-s",
        type=float,
        default=None,
        help="mean pause between a session's runs in (b) (default 5; 0: none)",
    )
    parser.add_argument(
        "--token-delay-ms",
        type=float,
        default=None,
        help="demo model delay per token (default 20, ~50 tokens/s; quick 5)",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the web and worker in (b)")
    args = parser.parse_args()
    quick = args.quick
    samples, baseline_samples = (30, 16) if quick else (120, 40)
    phase_s, rounds = (3.0, 1) if quick else (10.0, 2)
    sessions = min(args.sessions, 30) if quick else args.sessions
    think_s = args.think_s if args.think_s is not None else (1.0 if quick else 5.0)
    delay_ms = args.token_delay_ms if args.token_delay_ms is not None else (5 if quick else 20)
    header("bench_stage_latency")

    async with Stack(keep=args.profile) as stack, client() as http:
        _demo, demo_url = await stack.demo(delay_ms)
        web, base = await stack.web()
        seats = await open_seats(http, base, 10)  # (a)
        chatters = await open_seats(http, base, sessions)  # (b): fresh, short histories

        # (a) Chorus's worker; arq's own Worker at the 5 ms poll; at arq's default poll.
        a: dict[str, list[float]] = {}
        for name, plain, poll, count in (
            ("chorus", False, None, samples), ("plain-5ms", True, None, baseline_samples),
            ("plain-0.5s", True, "0.5", baseline_samples),
        ):  # fmt: skip
            env = {"DEMO_MODEL_URL": demo_url} | ({"WORKER_POLL_S": poll} if poll else {})
            worker = await stack.worker(f"worker-{name}", plain=plain, **env)
            await stage_start_latency(seats, 10)  # warm-up: a new worker opens its connections
            a[name] = await stage_start_latency(seats, count)
            worker.stop()

        # (b) direct SDK calls and Chorus, alternating, at the same concurrency and pace.
        worker = await stack.worker("worker", DEMO_MODEL_URL=demo_url)
        await asyncio.gather(*(seat.run_once() for seat in chatters))  # warm-up: one run each
        meter = CpuMeter(stack.pids("web", "worker", "demo"))
        direct: list[float] = []
        chorus: list[float] = []
        legs: Legs = []
        cpu: dict[str, float] = {}
        for _ in range(rounds):
            direct += await run_direct(demo_url, sessions, phase_s, think_s)
            spies = [profile(stack, c, phase_s, c.name) for c in (web, worker) if args.profile]
            meter.start()
            chorus += await chorus_ttft(chatters, phase_s, think_s, legs)
            cpu = meter.stop()
            for spy in spies:
                spy.wait()
        for seat in seats + chatters:
            await seat.conn.close()

    ok_a = report_a(a)
    rate = len(chorus) / (phase_s * rounds)
    info = (f"{sessions} concurrent sessions, think {think_s:g} s, demo token delay "
            f"{delay_ms:g} ms; {rate:.0f} runs/s; CPU in the last Chorus phase: "
            f"{describe_cpu(cpu)}")  # fmt: skip
    ok_b = report_b(direct, chorus, legs, info)
    print(f"RESULT bench_stage_latency: {verdict(ok_a and ok_b)}")


if __name__ == "__main__":
    run(main)
