"""ModelChain cancellation: a cancelled stage stops promptly wherever it is waiting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from tests.workers.chain_support import Recorder, chain_settings, live_chain, messages
from workers.demo_model import DemoConfig
from workers.model_chain import StageCancelled


class Flag:
    """A cancel check the test flips; it remembers when it was flipped and how often it ran."""

    def __init__(self) -> None:
        self.set_at: float | None = None
        self.checks: list[float] = []

    def set(self) -> None:
        self.set_at = time.monotonic()

    async def __call__(self) -> bool:
        self.checks.append(time.monotonic())
        return self.set_at is not None


def _after(delay: float, action: Callable[[], None]) -> asyncio.TimerHandle:
    return asyncio.get_running_loop().call_later(delay, action)


async def _run_until_cancelled(live_run: Awaitable[object], flag: Flag) -> float:
    with pytest.raises(StageCancelled):
        await live_run
    assert flag.set_at is not None
    return time.monotonic() - flag.set_at


async def test_cancel_while_streaming_stops_promptly() -> None:
    flag = Flag()
    recorder = Recorder()

    async def on_delta(text: str) -> None:
        await Recorder.on_delta(recorder, text)
        if flag.set_at is None:
            _after(0.1, flag.set)

    recorder.on_delta = on_delta  # type: ignore[method-assign]
    async with live_chain(DemoConfig(token_delay_ms=50)) as live:
        run = live.chain.run(
            live.registry.agent("planner"), messages("Tell me a story"), recorder, flag
        )
        stopped_after = await _run_until_cancelled(run, flag)
        deltas_at_stop = len(recorder.parts)
        await asyncio.sleep(0.2)
    assert stopped_after < 1.0
    assert 0 < deltas_at_stop == len(recorder.parts)
    assert recorder.calls[-1]["outcome"] == "cancelled"
    assert (
        live.chain.metrics.registry.get_sample_value(
            "chorus_llm_stages_total", {"result": "cancelled"}
        )
        == 1
    )


async def test_cancel_while_the_model_hangs_stops_promptly() -> None:
    flag = Flag()
    async with live_chain(settings=chain_settings(attempt_timeout_s=5.0)) as live:
        _after(0.2, flag.set)
        run = live.chain.run(
            live.registry.agent("planner"), messages("x [[fail:timeout]]"), Recorder(), flag
        )
        assert await _run_until_cancelled(run, flag) < 1.0


async def test_cancel_during_a_backoff_stops_promptly() -> None:
    flag = Flag()
    config = DemoConfig(token_delay_ms=0, retry_after_s=3.0)
    async with live_chain(config) as live:
        recorder = Recorder()
        _after(0.2, flag.set)
        run = live.chain.run(
            live.registry.agent("planner"), messages("x [[fail:429]]"), recorder, flag
        )
        assert await _run_until_cancelled(run, flag) < 1.0
    assert recorder.names() == ["call", "retrying"]


async def test_the_cancel_check_is_polled_at_most_every_50_ms() -> None:
    flag = Flag()
    async with live_chain(DemoConfig(token_delay_ms=10)) as live:
        started = time.monotonic()
        await live.chain.run(
            live.registry.agent("planner"), messages("A long story"), Recorder(), flag
        )
        elapsed = time.monotonic() - started
    assert flag.checks
    assert len(flag.checks) <= elapsed / 0.05 + 1
    gaps = [b - a for a, b in zip(flag.checks, flag.checks[1:], strict=False)]
    assert all(gap >= 0.045 for gap in gaps)


async def test_a_failing_cancel_check_does_not_stop_the_stage() -> None:
    async def broken() -> bool:
        raise RuntimeError("redis is away")

    async with live_chain(DemoConfig(token_delay_ms=5)) as live:
        result = await live.chain.run(
            live.registry.agent("planner"), messages("hi"), Recorder(), broken
        )
    assert result.text


async def test_cancelling_the_task_itself_is_a_plain_cancellation() -> None:
    async with live_chain(settings=chain_settings(attempt_timeout_s=5.0)) as live:
        task = asyncio.create_task(
            live.chain.run(
                live.registry.agent("planner"), messages("x [[fail:timeout]]"), Recorder()
            )
        )
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_check_under_way_is_not_interrupted_when_the_stage_ends() -> None:
    started: list[float] = []
    finished: list[float] = []

    async def slow_check() -> bool:  # like the executor's: it flushes deltas to Redis
        started.append(time.monotonic())
        await asyncio.sleep(0.5)
        finished.append(time.monotonic())
        return False

    # The stage streams for about 0.2 s; the first check starts at 0.05 s and lasts 0.5 s.
    async with live_chain(DemoConfig(token_delay_ms=5)) as live:
        await live.chain.run(live.registry.agent("planner"), messages("hi"), Recorder(), slow_check)
        ended = time.monotonic()
    assert len(started) == len(finished) == 1
    assert finished[0] <= ended
