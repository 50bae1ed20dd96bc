"""bcrypt hashing, off the event loop and below it in priority.

bcrypt releases the GIL, so hashing in threads leaves the loop free in principle. But at
the machine's bcrypt capacity every core is busy hashing, and the loop then waits for the
OS to give it a core back: event delivery p99 rose about 7x in bench_loop_blocking.py.
So hashing runs in its own pool, one thread per core, whose threads put themselves in
the idle scheduling class (on Linux that is per thread): the loop thread gets a core as
soon as it has work, and hashing still has every idle cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import bcrypt

_T = TypeVar("_T")
MAX_PASSWORD_BYTES = 72  # bcrypt's input limit


def _lower_priority() -> None:
    """Schedule this thread only when nothing else wants the core (Linux: SCHED_IDLE).

    A SCHED_IDLE thread is preempted at once when a normal one wakes; a merely niced one
    kept the loop waiting up to a scheduler slice (p99 still 4x its idle value).
    """
    if not sys.platform.startswith("linux"):  # elsewhere a native id is no thread's pid
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        return
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, tid, 19)


class PasswordHasher:
    """Hash and check passwords with bcrypt at a fixed cost."""

    def __init__(self, rounds: int, threads: int | None = None) -> None:
        self.rounds = rounds
        self._dummy: bytes | None = None
        self._pool = ThreadPoolExecutor(
            max_workers=threads or os.cpu_count() or 1,
            thread_name_prefix="bcrypt",
            initializer=_lower_priority,
        )

    async def _run(self, fn: Callable[[bytes, bytes], _T], first: bytes, second: bytes) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, first, second)

    async def hash(self, password: str) -> str:
        """Return the bcrypt hash of a password (computed off the loop)."""
        digest = await self._run(bcrypt.hashpw, password.encode(), bcrypt.gensalt(self.rounds))
        return digest.decode()

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """Check a password; with no hash, or one too long to be set, spend the time and say no.

        bcrypt refuses input over 72 bytes, and registration refuses such passwords: one
        can never match, but its check costs the same as any other (no timing oracle).
        """
        candidate = password.encode()
        too_long = len(candidate) > MAX_PASSWORD_BYTES
        candidate = candidate[:MAX_PASSWORD_BYTES]
        if password_hash is None:
            if self._dummy is None:
                self._dummy = (await self.hash("chorus-timing-equaliser")).encode()
            await self._run(bcrypt.checkpw, candidate, self._dummy)
            return False
        matches = await self._run(bcrypt.checkpw, candidate, password_hash.encode())
        return matches and not too_long

    async def close(self, _app: object = None) -> None:
        """Stop the hashing threads (an aiohttp ``on_cleanup`` handler)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
