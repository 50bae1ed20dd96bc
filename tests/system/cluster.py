"""Real Chorus processes for system tests: web (`python -m chorus`) and worker
(`python -m workers`) children. Their REST and WebSocket client: tests/support/api.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp

from server.banner import redact
from server.redis_proc import free_port
from server.store.factory import SQLITE_FILE

ROOT = Path(__file__).resolve().parents[2]
SECRET = "system-test-secret-key-0123456789abcdefghij"
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
