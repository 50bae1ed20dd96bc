"""What enforcing daily budgets mid-stream costs a worker (bench/README.md).

While a stage streams, the executor's stop check (about every 50 ms) calls the stage's
BudgetMeter: it charges what the stream added to the Redis counters and, when a budget is
set, reads them back. This bench runs N concurrent sessions (default 50) on the one-stage
``chat`` pipeline, each sending back to back, in phases that alternate on the same machine:

    off      BUDGET_* unset (0): the meter charges, it does not read the counters back
    on       BUDGET_TOKENS_PER_DAY and BUDGET_GLOBAL_TOKENS_PER_DAY set far above what the
             bench spends (never binding): the meter charges and reads
    no-meter the worker with no BudgetMeter at all (bench/_no_meter_worker.py): the stop
             check polls the cancel and fence keys only, as before budgets existed

Each phase starts a fresh worker process (the web process stays; its check before a run
starts reads the counters the same way in every phase), warms up with one run per
session, then measures for a fixed time: stages completed per second, the worker's and
redis-server's CPU per stage, Redis commands per stage (INFO commandstats, which counts
the commands a script runs as well as the script's call; "budget's" are HINCRBY, EXPIRE
and HMGET, less the event bus's one HINCRBY per event), time to first token (WS ``send`` → first
``stage.delta``) and the gap between a stream's successive deltas. It prints the ratios
on/off and off/no-meter. No bar: the figures are for reading.

Processes: redis-server, the demo model, one web process, one worker process, this client.

    .venv/bin/python bench/bench_budget_overhead.py [--quick] [--sessions 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import psutil  # type: ignore[import-untyped]
from _harness import (
    PYTHON,
    ROOT,
    Child,
    Seat,
    Stack,
    client,
    header,
    percentile,
    run,
    wait_log,
)
from _harness import open_seats as harness_open_seats
from redis.asyncio import Redis

PROMPT = "What does charging a budget counter every 50 ms cost a streaming stage?"
FINAL = ("run.completed", "run.failed", "run.cancelled")
NEVER_BINDING = str(10**15)
PHASES: dict[str, dict[str, str]] = {
    "off": {"BUDGET_TOKENS_PER_DAY": "0", "BUDGET_GLOBAL_TOKENS_PER_DAY": "0"},
    "on": {"BUDGET_TOKENS_PER_DAY": NEVER_BINDING, "BUDGET_GLOBAL_TOKENS_PER_DAY": NEVER_BINDING},
    "no-meter": {"BUDGET_TOKENS_PER_DAY": "0", "BUDGET_GLOBAL_TOKENS_PER_DAY": "0"},
}
# What BudgetBook sends, directly or from its scripts (INFO counts both), besides the
# event bus's one HINCRBY per event.
BUDGET_COMMANDS = ("hincrby", "expire", "hmget")
UNSET = ("BUDGET_COST_PER_DAY", "BUDGET_GLOBAL_COST_PER_DAY")


@dataclass
class Watch:
    """One session's current run as its socket sees it (perf_counter times)."""

    first_delta: float | None = None
    last_delta: float | None = None
    gaps: list[float] = field(default_factory=list)
    status: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def reset(self) -> None:
        """Forget the previous run."""
        self.first_delta = self.last_delta = self.status = None
        self.gaps = []
        self.done.clear()

    def see(self, frame: dict[str, Any], now: float) -> None:
        """Record one event of this session."""
        name = frame["name"]
        if name == "stage.delta":
            if self.last_delta is None:
                self.first_delta = now
            else:
                self.gaps.append(now - self.last_delta)
            self.last_delta = now
        elif name in FINAL:
            self.status = name
            self.done.set()


async def open_seats(http: aiohttp.ClientSession, base: str, count: int) -> list[Seat[Watch]]:
    """``count`` sockets, each subscribed to its own chat session (10 users)."""
    return await harness_open_seats(http, base, count, Watch, prompt=PROMPT, tag="budget")


@dataclass
class Figures:
    """What one phase (or the sum of its rounds) measured."""

    seconds: float = 0.0
    stages: int = 0
    cpu_s: float = 0.0
    redis_cpu_s: float = 0.0
    commands: dict[str, int] = field(default_factory=dict)
    ttfts: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)

    def add(self, other: Figures) -> None:
        """Add another round's figures."""
        self.seconds += other.seconds
        self.stages += other.stages
        self.cpu_s += other.cpu_s
        self.redis_cpu_s += other.redis_cpu_s
        for name, calls in other.commands.items():
            self.commands[name] = self.commands.get(name, 0) + calls
        self.ttfts += other.ttfts
        self.gaps += other.gaps

    @property
    def rate(self) -> float:
        return self.stages / self.seconds

    @property
    def cpu_ms(self) -> float:
        return self.cpu_s / self.stages * 1000

    @property
    def per_stage(self) -> float:
        return sum(self.commands.values()) / self.stages

    @property
    def budget_per_stage(self) -> float:
        """The commands of the budget counters (the meter, and the web's check before a run);
        the event bus's publish script runs one HINCRBY per event (one XADD): not counted."""
        c = self.commands
        own = sum(c.get(n, 0) for n in BUDGET_COMMANDS) - c.get("xadd", 0)
        return own / self.stages

    def metrics(self) -> dict[str, float]:
        """The figures compared across phases."""
        return {
            "stages/s": self.rate,
            "worker CPU ms/stage": self.cpu_ms,
            "Redis CPU ms/stage": self.redis_cpu_s / self.stages * 1000,
            "Redis commands/stage": self.per_stage,
            "  of them budget's": self.budget_per_stage,
            "TTFT p50 ms": percentile(self.ttfts, 50) * 1000,
            "TTFT p95 ms": percentile(self.ttfts, 95) * 1000,
            "delta gap p50 ms": percentile(self.gaps, 50) * 1000,
            "delta gap p95 ms": percentile(self.gaps, 95) * 1000,
        }


async def command_calls(redis: Redis) -> dict[str, int]:
    """Calls per command so far (INFO commandstats)."""
    stats = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


async def measure(
    seats: list[Seat[Watch]], seconds: float, worker: Child, redis: Redis, redis_pid: int
) -> Figures:
    """Every seat sends back to back for ``seconds`` (then finishes its run)."""
    proc, server = psutil.Process(worker.pid), psutil.Process(redis_pid)
    figures = Figures()
    stop_at = time.perf_counter() + seconds

    async def loop(seat: Seat[Watch]) -> None:
        while time.perf_counter() < stop_at:
            sent = await seat.run_once()
            w = seat.watch
            figures.stages += 1
            if w.first_delta is not None:
                figures.ttfts.append(w.first_delta - sent)
            figures.gaps += w.gaps

    before = await command_calls(redis)
    cpu0, t0 = sum(proc.cpu_times()[:2]), time.perf_counter()
    redis_cpu0 = sum(server.cpu_times()[:2])
    await asyncio.gather(*(loop(s) for s in seats))
    figures.seconds = time.perf_counter() - t0
    figures.cpu_s = sum(proc.cpu_times()[:2]) - cpu0
    figures.redis_cpu_s = sum(server.cpu_times()[:2]) - redis_cpu0
    after = await command_calls(redis)
    figures.commands = {n: c - before.get(n, 0) for n, c in after.items() if c > before.get(n, 0)}
    figures.commands["info"] = figures.commands.get("info", 1) - 1  # the bench's own INFO
    return figures


async def start_worker(stack: Stack, phase: str, demo_url: str) -> Child:
    """A fresh worker process configured for ``phase``."""
    script = ROOT / "bench" / "_no_meter_worker.py"
    args = [PYTHON, str(script)] if phase == "no-meter" else [PYTHON, "-m", "workers"]
    env = stack.chorus_env(DEMO_MODEL_URL=demo_url, **PHASES[phase], **dict.fromkeys(UNSET, "0"))
    child = stack.spawn(f"worker-{phase}", args, env)
    await wait_log(child, "Chorus worker is running")
    return child


def report(phases: dict[str, Figures], top: int = 14) -> None:
    """Print each phase's figures and the ratios."""
    table = {name: f.metrics() for name, f in phases.items()}
    print(f"    {'':24s}" + "".join(f"{name:>12s}" for name in table)
          + f"{'on/off':>10s}{'off/no-meter':>14s}")  # fmt: skip
    for metric in next(iter(table.values())):
        row = [table[name][metric] for name in table]
        on, off, bare = (table[p][metric] for p in ("on", "off", "no-meter"))
        print(f"    {metric:24s}" + "".join(f"{v:12.2f}" for v in row)
              + f"{on / off:10.3f}{off / bare:14.3f}")  # fmt: skip
    for name, f in phases.items():
        busiest = sorted(f.commands.items(), key=lambda kv: -kv[1])[:top]
        print(f"    {name} commands/stage: "
              + ", ".join(f"{n} {c / f.stages:.1f}" for n, c in busiest))  # fmt: skip
    print("    stages measured: " + ", ".join(f"{n} {f.stages}" for n, f in phases.items()))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a < 40 s smoke run")
    parser.add_argument("--sessions", type=int, default=None, help="concurrent sessions (50)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of the phases (3)")
    parser.add_argument("--phase-s", type=float, default=None, help="seconds per phase (10)")
    parser.add_argument("--token-delay-ms", type=float, default=20.0,
                        help="demo model delay per token (default 20, ~50 tokens/s)")  # fmt: skip
    args = parser.parse_args()
    sessions = args.sessions or (20 if args.quick else 50)
    rounds = args.rounds or (1 if args.quick else 3)
    phase_s = args.phase_s or (3.0 if args.quick else 10.0)
    header("bench_budget_overhead")

    phases = {name: Figures() for name in PHASES}
    async with Stack() as stack, client() as http:
        redis = Redis.from_url(stack.redis_url)
        _demo, demo_url = await stack.demo(args.token_delay_ms)
        _web, base = await stack.web()
        seats = await open_seats(http, base, sessions)
        order = list(PHASES)
        worker = await start_worker(stack, "off", demo_url)  # warm up the web process and store
        redis_pid = stack.pids()["redis"]
        await measure(seats, phase_s, worker, redis, redis_pid)
        worker.stop()
        stack.children.remove(worker)
        for r in range(rounds):
            # Each round rotates the order: no phase always comes first or last.
            for name in order[r % len(order) :] + order[: r % len(order)]:
                worker = await start_worker(stack, name, demo_url)
                await asyncio.gather(*(seat.run_once() for seat in seats))  # warm-up
                figures = await measure(seats, phase_s, worker, redis, redis_pid)
                worker.stop()
                stack.children.remove(worker)
                phases[name].add(figures)
                print(f"  round {r + 1} {name:9s} {figures.rate:6.1f} stages/s  "
                      f"{figures.cpu_ms:5.1f} CPU ms/stage  "
                      f"{figures.per_stage:6.1f} Redis commands/stage", flush=True)  # fmt: skip
        for seat in seats:
            await seat.conn.close()
        await redis.aclose()

    print(f"{sessions} sessions sending back to back on the one-stage chat pipeline, demo token "
          f"delay {args.token_delay_ms:g} ms, {rounds} × {phase_s:g} s per phase")  # fmt: skip
    report(phases)
    print("RESULT bench_budget_overhead: figures only (no bar)")


if __name__ == "__main__":
    run(main)
