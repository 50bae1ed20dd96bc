"""Real Chorus processes for system tests: web (`python -m chorus`) and worker
(`python -m workers`) children, plus REST and WebSocket clients speaking to them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp

from server.banner import redact
from server.redis_proc import free_port
from server.store.factory import SQLITE_FILE

ROOT = Path(__file__).resolve().parents[2]
SECRET = "system-test-secret-key-0123456789abcdefghij"
PASSWORD = "correct horse battery"
# Settings read by Chorus from the environment: never inherited from the test's shell.
_CHORUS_ENV_PREFIXES = (
    "ENV", "HOST", "PORT", "REDIS_", "MONGODB_", "DATA_DIR", "SECRET_KEY", "ALLOWED_ORIGINS",
    "LOG_LEVEL", "BCRYPT_", "JWT_", "MAX_BODY", "RATE_", "PIPELINES_FILE", "DEMO_", "EMBEDDED_",
    "WORKER_", "STAGE_", "ATTEMPT_", "DELTA_", "EVENT_", "UI_API", "WS_", "LLM_", "REAPER_",
)  # fmt: skip


def store_line(env: dict[str, str]) -> str:
    """What a process started with ``env`` says about its store in its start-up line."""
    if env.get("MONGODB_URL"):
        return f"store: mongodb {redact(env['MONGODB_URL'])} db={env.get('MONGODB_DB', 'chorus')}"
    return f"store: sqlite {Path(env['DATA_DIR']) / SQLITE_FILE}"


class ProcessDied(AssertionError):
    """A child process exited while the test needed it."""


class ChorusProcess:
    """One child process; stdout and stderr go to a log file next to the test's data."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log: Path, port: int | None):
        self.name = name
        self.proc = proc
        self.log = log
        self.port = port

    @property
    def url(self) -> str:
        """The base URL of a web process."""
        assert self.port is not None, f"{self.name} is not a web process"
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc.returncode is None

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the process's output."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        """Fail with the process's output if it exited."""
        if not self.alive:
            raise ProcessDied(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")

    async def wait_output(self, needle: str, within_s: float = 20.0) -> None:
        """Wait until the process printed ``needle``."""
        async with asyncio.timeout(within_s):
            while needle not in self.log.read_text(errors="replace"):
                self.check_alive()
                await asyncio.sleep(0.05)

    async def wait_ready(self, http: aiohttp.ClientSession, within_s: float = 20.0) -> None:
        """Wait until GET /readyz answers 200."""
        async with asyncio.timeout(within_s):
            while True:
                self.check_alive()
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(
                        f"{self.url}/readyz", timeout=aiohttp.ClientTimeout(total=2)
                    ) as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the process (no clean-up of any kind)."""
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)

    async def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``grace_s``; always reap the process."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                async with asyncio.timeout(grace_s):
                    await self.proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
        await self.proc.wait()


class Cluster:
    """Start Chorus processes sharing one Redis, one data dir (or MongoDB database, given
    ``MONGODB_URL`` and ``MONGODB_DB`` in ``env``) and one demo model."""

    def __init__(self, data_dir: Path, redis_url: str, demo_url: str, **env: Any) -> None:
        self.data_dir = data_dir
        self.redis_url = redis_url
        self.demo_url = demo_url
        self.env = {k: str(v) for k, v in env.items()}
        self.procs: list[ChorusProcess] = []
        data_dir.mkdir(parents=True, exist_ok=True)

    def environ(self, **overrides: Any) -> dict[str, str]:
        """The child environment: the test's, minus any Chorus setting, plus ours."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(_CHORUS_ENV_PREFIXES)}
        env.update(
            REDIS_URL=self.redis_url, DATA_DIR=str(self.data_dir), SECRET_KEY=SECRET,
            DEMO_MODEL_URL=self.demo_url, EMBEDDED_WORKER="0", BCRYPT_ROUNDS="4",
            LOG_LEVEL="INFO", PYTHONUNBUFFERED="1", RATE_API_PER_USER="100000",
            RATE_LOGIN_PER_EMAIL="1000", RATE_LOGIN_PER_IP="100000",
        )  # fmt: skip
        env.update(self.env)
        env.update({k: str(v) for k, v in overrides.items()})
        return env

    async def _spawn(
        self, name: str, module: str, port: int | None, env: dict[str, str]
    ) -> ChorusProcess:
        log = self.data_dir.parent / f"{name}.log"
        with log.open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", module, cwd=ROOT, env=env,
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        child = ChorusProcess(name, proc, log, port)
        self.procs.append(child)
        return child

    async def web(
        self, http: aiohttp.ClientSession, name: str = "web", **env: Any
    ) -> ChorusProcess:
        """Start `python -m chorus` on a free port and wait for /readyz."""
        port = free_port()
        environ = self.environ(PORT=port, **env)
        child = await self._spawn(name, "server", port, environ)
        await child.wait_ready(http)
        await child.wait_output(store_line(environ))
        return child

    async def worker(self, name: str = "worker", **env: Any) -> ChorusProcess:
        """Start `python -m workers` (metrics on a free port) and wait until it says it runs."""
        env.setdefault("WORKER_METRICS_PORT", free_port())
        environ = self.environ(**env)
        child = await self._spawn(name, "workers", None, environ)
        await child.wait_output("Chorus worker is running")
        await child.wait_output(store_line(environ))
        return child

    def logs(self) -> str:
        """Every process's output tail, for a failing test's report."""
        return "\n".join(f"----- {p.name} -----\n{p.log_tail(80)}" for p in self.procs)

    async def close(self) -> None:
        """Stop every process started (in parallel)."""
        await asyncio.gather(*(p.stop() for p in self.procs), return_exceptions=True)


class Api:
    """A REST client acting as one user of one web process."""

    def __init__(self, http: aiohttp.ClientSession, base: str, token: str | None = None):
        self.http = http
        self.base = base
        self.token = token
        self.user: dict[str, Any] = {}

    @property
    def headers(self) -> dict[str, str]:
        """The bearer header (empty before login)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def on(self, base: str) -> Api:
        """The same user talking to another web process."""
        other = Api(self.http, base, self.token)
        other.user = self.user
        return other

    async def request(self, method: str, path: str, expect: int = 200, **kw: Any) -> Any:
        """Send a request; assert the status; return the JSON body (None when empty)."""
        async with self.http.request(
            method, f"{self.base}/api/v1{path}", headers=self.headers, **kw
        ) as resp:
            text = await resp.text()
            assert resp.status == expect, (method, path, resp.status, text)
            return json.loads(text) if text else None

    async def signup(self, email: str) -> Api:
        """Register and log in; keep the token."""
        body = {"email": email, "password": PASSWORD}
        await self.request("POST", "/auth/register", 201, json=body)
        login = await self.request("POST", "/auth/login", json=body)
        self.token = login["access_token"]
        self.user = login["user"]
        return self

    async def new_session(self, pipeline: str = "default") -> str:
        """Create a session; return its id."""
        body = await self.request("POST", "/sessions", 201, json={"pipeline": pipeline})
        return str(body["session_id"])

    async def send(self, session_id: str, content: str) -> dict[str, Any]:
        """Post a message (202); return {message, run}."""
        body: dict[str, Any] = await self.request(
            "POST", f"/sessions/{session_id}/messages", 202, json={"content": content}
        )
        return body

    async def run(self, run_id: str) -> dict[str, Any]:
        """GET /runs/{id}."""
        body: dict[str, Any] = await self.request("GET", f"/runs/{run_id}")
        return body

    async def wait_run(
        self, run_id: str, within_s: float = 30.0,
        statuses: Iterable[str] = ("completed", "failed", "cancelled"),
    ) -> dict[str, Any]:  # fmt: skip
        """Poll the run until it reaches one of ``statuses``."""
        wanted = tuple(statuses)
        async with asyncio.timeout(within_s):
            while True:
                run = await self.run(run_id)
                if run["status"] in wanted:
                    return run
                await asyncio.sleep(0.1)

    async def messages(self, session_id: str) -> list[dict[str, Any]]:
        """Every message of a session (oldest first)."""
        body = await self.request("GET", f"/sessions/{session_id}/messages?limit=100")
        items: list[dict[str, Any]] = body["items"]
        return sorted(items, key=lambda m: m["created_at"])

    async def socket(self) -> Socket:
        """Open an authenticated WebSocket and read its ``ready`` frame."""
        ws = await self.http.ws_connect(f"{self.base}/api/v1/ws", headers=self.headers)
        sock = Socket(ws)
        ready = await sock.frame()
        assert ready["type"] == "ready", ready
        return sock


class Socket:
    """A WebSocket client: commands answered by id; events and other frames queued apart."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = 0
        self.pending: list[dict[str, Any]] = []  # non-result frames read while awaiting a result

    async def frame(self, within_s: float = 10.0) -> dict[str, Any]:
        """The next frame (queued ones first)."""
        if self.pending:
            return self.pending.pop(0)
        msg = await self.ws.receive(timeout=within_s)
        assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, msg.data)
        frame: dict[str, Any] = json.loads(msg.data)
        return frame

    async def call(self, kind: str, within_s: float = 10.0, **fields: Any) -> dict[str, Any]:
        """Send a command; return its result's data (events read meanwhile stay queued)."""
        self._ids += 1
        cmd_id = self._ids
        await self.ws.send_json({"id": cmd_id, "type": kind, **fields})
        early: list[dict[str, Any]] = []
        async with asyncio.timeout(within_s):
            while True:
                msg = await self.ws.receive()
                assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, msg.data)
                frame = json.loads(msg.data)
                if frame.get("id") == cmd_id and frame["type"] in ("result", "error"):
                    assert frame["type"] == "result", frame
                    self.pending.extend(early)
                    data: dict[str, Any] = frame["data"]
                    return data
                early.append(frame)

    async def close(self) -> None:
        """Close the socket."""
        await self.ws.close()


class Transcript:
    """Events of one session as a client received them: contiguous seqs, stage texts."""

    def __init__(self, after_seq: int = 0, epoch: str | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.epoch = epoch
        self._start = after_seq

    @property
    def last_seq(self) -> int:
        """The seq of the last event held (``after_seq`` before any)."""
        return int(self.events[-1]["seq"]) if self.events else self._start

    def add(self, event: dict[str, Any]) -> None:
        """Take the next event; it must follow the last one exactly."""
        assert event["type"] == "event", event
        if self.epoch is None:
            self.epoch = event["epoch"]
        assert event["epoch"] == self.epoch, (event, self.epoch)
        assert event["seq"] == self.last_seq + 1, (
            f"seq {event['seq']} after {self.last_seq}: {event['name']}"
        )
        self.events.append(event)

    def names(self) -> list[str]:
        """Event names in order."""
        return [e["name"] for e in self.events]

    def texts(self, run_id: str | None = None) -> dict[str, str]:
        """Each stage's text (of one run, or all): its deltas after its last ``stage.reset``."""
        texts: dict[str, str] = {}
        for e in self.events:
            if run_id is not None and e["run_id"] != run_id:
                continue
            if e["name"] == "stage.reset":
                texts[e["data"]["stage"]] = ""
            elif e["name"] == "stage.delta":
                stage = e["data"]["stage"]
                texts[stage] = texts.get(stage, "") + e["data"]["text"]
        return texts

    def ended(self, run_id: str) -> bool:
        """Whether the run's final event is held."""
        final = ("run.completed", "run.failed", "run.cancelled")
        return any(e["name"] in final and e["run_id"] == run_id for e in self.events)


def resynced_texts(rest_run: dict[str, Any], live: Transcript) -> dict[str, str]:
    """Each stage's text as a client that resynced over REST shows it: the REST state (stored
    outputs, the running stage's partial as of ``partial_seq``), then the live events after."""
    texts = {s["name"]: s["output"] or s.get("partial") or "" for s in rest_run["stages"]}
    since = {s["name"]: s.get("partial_seq") or 0 for s in rest_run["stages"]}
    for e in live.events:
        stage = e["data"].get("stage") if e["run_id"] == rest_run["run_id"] else None
        if stage is None or e["seq"] <= since.get(stage, 0):
            continue
        if e["name"] in ("stage.reset", "stage.started"):
            texts[stage] = ""
        elif e["name"] == "stage.delta":
            texts[stage] += e["data"]["text"]
        elif e["name"] == "stage.completed":
            texts[stage] = e["data"]["output"]
    return texts


def stored_outputs(run: dict[str, Any]) -> dict[str, str]:
    """Each stage's stored output (checkpoint) of a run."""
    return {s["name"]: s["output"] or "" for s in run["stages"]}


async def follow(sock: Socket, transcript: Transcript, run_id: str, within_s: float = 30.0) -> None:
    """Read the socket's events into the transcript until the run's final event."""
    async with asyncio.timeout(within_s):
        while not transcript.ended(run_id):
            frame = await sock.frame(within_s=within_s)
            if frame["type"] == "event":
                transcript.add(frame)
