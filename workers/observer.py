"""StageObserver: turns a model stream into session events and llm_calls records.

Deltas are coalesced: the first one goes out at once (time to first token matters),
later ones at most every ``flush_ms``; a timer flushes a tail that no later token
would carry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from redis.exceptions import RedisError

from server.events.bus import EventBus
from server.store.base import Store
from server.store.models import LlmCall, Usage
from workers.budget_meter import BudgetMeter

log = logging.getLogger("chorus.executor")


class StageObserver:
    """Publish a stage's deltas, resets and retries; record every LLM call attempt."""

    def __init__(
        self,
        *,
        bus: EventBus,
        store: Store,
        session_id: str,
        run_id: str,
        user_id: str,
        stage: str,
        flush_ms: int,
        generation: int | None = None,
        meter: BudgetMeter | None = None,
    ) -> None:
        self._bus = bus
        self._store = store
        self._session_id = session_id
        self._run_id = run_id
        self._user_id = user_id
        self.stage = stage
        self._generation = generation
        self._flush_s = flush_ms / 1000
        self._buffer: list[str] = []
        self._last_flush = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self.calls: list[LlmCall] = []
        self.meter = meter

    async def _publish(self, name: str, data: dict[str, Any]) -> None:
        # Fenced: once the run has moved on to a newer generation, nothing more is published.
        await self._bus.publish(
            self._session_id, name, data, self._run_id, generation=self._generation
        )

    async def on_delta(self, text: str) -> None:
        """Buffer text; flush now if the last flush is old enough, else soon."""
        self._buffer.append(text)
        if self.meter is not None:
            self.meter.on_delta(text)
        if time.monotonic() - self._last_flush >= self._flush_s:
            await self.flush()
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._flush_s, self._flush_soon)

    def _flush_soon(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self.flush())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def flush(self) -> None:
        """Publish buffered text as one stage.delta."""
        async with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._last_flush = time.monotonic()
            if self._buffer:
                text, self._buffer = "".join(self._buffer), []
                await self._publish("stage.delta", {"stage": self.stage, "text": text})

    async def on_reset(self) -> None:
        """Drop unsent text and tell clients to discard the stage's partial text."""
        async with self._lock:
            self._buffer.clear()
            await self._publish("stage.reset", {"stage": self.stage})

    async def on_retrying(self, attempt: int, error: str, next_model: str | None) -> None:
        """Announce a retry or a fallback to the next model."""
        if self.meter is not None:
            self.meter.on_model(next_model)
        await self.flush()
        await self._publish(
            "stage.retrying",
            {"stage": self.stage, "attempt": attempt, "error": error, "next_model": next_model},
        )

    async def on_call(self, record: dict[str, Any]) -> None:
        """Store one attempt in llm_calls."""
        call = LlmCall(run_id=self._run_id, user_id=self._user_id, stage=self.stage, **record)
        self.calls.append(call)
        await self._store.insert_llm_call(call)
        if self.meter is not None:
            try:
                await self.meter.on_call(record)
            except RedisError:  # the call is recorded; a missed correction must not fail it
                log.warning("could not correct the budget counters", exc_info=True)

    def usage(self) -> Usage:
        """What every call recorded so far spent."""
        total = Usage()
        for call in self.calls:
            total = total.plus(
                Usage(prompt_tokens=call.prompt_tokens, completion_tokens=call.completion_tokens,
                      cost_usd=call.cost_usd)
            )  # fmt: skip
        return total

    async def close(self) -> None:
        """Flush what is left and wait for timer-started flushes."""
        await self.flush()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
