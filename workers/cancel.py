"""CancelWatch: poll a cancel check beside a running stage and stop it promptly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from types import TracebackType

log = logging.getLogger("chorus.chain")

CancelCheck = Callable[[], Awaitable[bool]]


class StageCancelled(Exception):
    """The stage was cancelled while it ran."""


class CancelWatch:
    """Poll ``check`` every ``interval`` seconds while the stage runs.

    The stage is interrupted only while it waits (for the network, the rate limiter
    or a backoff), inside ``waiting()``; elsewhere — in the middle of publishing a
    delta — it notices the flag at ``raise_if_cancelled()``. Either way the stage
    sees ``StageCancelled``, never a stray ``CancelledError``.
    """

    def __init__(self, check: CancelCheck | None, interval: float) -> None:
        self._check = check
        self._interval = interval
        self._owner: asyncio.Task[object] | None = None
        self._poller: asyncio.Task[None] | None = None
        self._waiting = 0
        self._checking = False
        self._stopping = False
        self._interrupted = False
        self.fired = False

    async def __aenter__(self) -> CancelWatch:
        if self._check is not None:
            self._owner = asyncio.current_task()
            self._poller = asyncio.create_task(self._poll())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        poller, self._poller = self._poller, None
        if poller is None:
            return
        self._stopping = True
        # A check under way may be publishing (the executor's check flushes deltas): let it end.
        if not self._checking:
            poller.cancel()
        await asyncio.wait([poller])

    async def _poll(self) -> None:
        assert self._check is not None
        while not self.fired and not self._stopping:
            await asyncio.sleep(self._interval)
            self._checking = True
            try:
                self.fired = await self._check()
            except Exception:  # a flaky check must not kill the stage
                log.warning("cancel check failed", exc_info=True)
            finally:
                self._checking = False
        if self.fired and not self._stopping and self._waiting and self._owner is not None:
            self._interrupted = True
            self._owner.cancel()

    def raise_if_cancelled(self) -> None:
        """Raise StageCancelled if the check has said so."""
        if self.fired:
            raise StageCancelled("the stage was cancelled")

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """Mark a wait that a cancel may interrupt at once."""
        self.raise_if_cancelled()
        self._waiting += 1
        try:
            yield
        except asyncio.CancelledError:
            if not self._interrupted or self._owner is None:
                raise
            self._interrupted = False
            self._owner.uncancel()
            raise StageCancelled("the stage was cancelled") from None
        finally:
            self._waiting -= 1

    async def sleep(self, delay: float) -> None:
        """Sleep, unless the stage is cancelled first."""
        with self.waiting():
            await asyncio.sleep(delay)
