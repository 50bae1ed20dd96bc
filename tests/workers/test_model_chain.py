"""ModelChain against the live demo model through the real openai SDK: retries and fallback."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.workers.chain_support import (
    Recorder,
    chain_settings,
    live_chain,
    make_registry,
    messages,
)
from workers.attempt import estimate_tokens
from workers.demo_model import DemoConfig
from workers.model_chain import ModelChain, StageFailed
from workers.retry import retry_after


async def test_a_stage_streams_and_records_one_call() -> None:
    async with live_chain() as live:
        recorder = Recorder()
        result = await live.chain.run(
            live.registry.agent("planner"), messages("Bake bread"), recorder
        )
    assert result.text == recorder.text and "Bake bread" in result.text
    assert (result.model, result.provider, result.attempts) == ("main", "demo", 1)
    assert result.finish_reason == "stop"
    [call] = recorder.calls
    assert call["outcome"] == "ok" and call["status_code"] == 200 and call["attempt"] == 1
    assert call["ttft_ms"] is not None and call["latency_ms"] >= call["ttft_ms"]
    assert call["completion_tokens"] == len([e for e in recorder.events if e[0] == "delta"])
    assert result.usage.prompt_tokens == call["prompt_tokens"] > 0
    expected = (call["prompt_tokens"] * 0.15 + call["completion_tokens"] * 0.60) / 1e6
    assert call["cost_usd"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("kind", ["500", "503", "429", "408", "409", "timeout", "stall", "cut"])
async def test_retryable_failures_are_retried_on_the_same_model(kind: str) -> None:
    config = DemoConfig(token_delay_ms=0, retry_after_s=0.05)
    async with live_chain(config, chain_settings(attempt_timeout_s=0.3)) as live:
        recorder = Recorder()
        text = f"Explain DNS [[fail:{kind}*2]]"
        result = await live.chain.run(live.registry.agent("planner"), messages(text), recorder)
    assert (result.model, result.attempts) == ("main", 3)
    assert [c["outcome"] for c in recorder.calls][-1] == "ok"
    assert [e[1] for e in recorder.events if e[0] == "retrying"] == [2, 3]
    assert "Explain DNS" in result.text and result.text == recorder.text


async def test_a_cut_stream_resets_then_the_text_is_whole() -> None:
    prompt = messages("Why is the sky blue? [[fail:cut*1]]")
    async with live_chain() as live:
        recorder = Recorder()
        result = await live.chain.run(live.registry.agent("planner"), prompt, recorder)
        clean = await live.chain.run(live.registry.agent("planner"), prompt, Recorder())
    names = recorder.names()
    assert names.index("delta") < names.index("reset") < names.index("retrying")
    assert names.count("reset") == 1
    assert recorder.calls[0]["outcome"] == "broken_stream"
    assert recorder.calls[0]["error"].startswith("stream broken")
    assert result.text == recorder.text == clean.text
    assert "Why is the sky blue" in result.text


@pytest.mark.parametrize(
    ("agent", "text", "status"),
    [
        ("planner", "hi [[fail:400@chorus-demo]]", 400),
        ("planner", "hi [[fail:401@chorus-demo]]", 401),
        ("finder", "hi", 404),
    ],
)
async def test_refusals_go_straight_to_the_next_model(agent: str, text: str, status: int) -> None:
    async with live_chain() as live:
        recorder = Recorder()
        result = await live.chain.run(live.registry.agent(agent), messages(text), recorder)
    assert (result.model, result.attempts) == ("backup", 2)
    first, second = recorder.calls
    assert (first["status_code"], first["outcome"], second["outcome"]) == (status, "error", "ok")
    assert next(e for e in recorder.events if e[0] == "retrying")[1:] == (
        2,
        first["error"],
        "backup",
    )


async def test_a_provider_without_its_key_is_skipped_without_a_request() -> None:
    async with live_chain() as live:
        recorder = Recorder()
        result = await live.chain.run(live.registry.agent("locked"), messages("hi"), recorder)
        assert live.server.stats.calls == 1
    assert result.model == "backup"
    assert "LOCKED_API_KEY" in recorder.calls[0]["error"]


async def test_all_down_fails_clearly_before_the_deadline() -> None:
    async with live_chain(DemoConfig(down=True), chain_settings(stage_timeout_s=5.0)) as live:
        started = time.monotonic()
        with pytest.raises(StageFailed) as caught:
            await live.chain.run(live.registry.agent("planner"), messages("hi"), Recorder())
        elapsed = time.monotonic() - started
    assert elapsed < 5.0
    assert caught.value.attempts == 6
    message = str(caught.value)
    assert "every model failed (main, backup)" in message and "HTTP 503" in message


async def test_a_hanging_model_fails_at_the_stage_deadline() -> None:
    settings = chain_settings(attempt_timeout_s=0.3, stage_timeout_s=1.0)
    async with live_chain(DemoConfig(token_delay_ms=0), settings) as live:
        recorder = Recorder()
        started = time.monotonic()
        with pytest.raises(StageFailed) as caught:
            await live.chain.run(
                live.registry.agent("planner"), messages("x [[fail:timeout]]"), recorder
            )
        elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 3.0
    assert "deadline of 1s passed" in str(caught.value)
    assert {c["outcome"] for c in recorder.calls} == {"timeout"}
    assert "no token within 0.3s" in recorder.calls[0]["error"]


async def test_retry_after_is_honoured() -> None:
    async with live_chain(DemoConfig(token_delay_ms=0, retry_after_s=0.4)) as live:
        recorder = Recorder()
        started = time.monotonic()
        result = await live.chain.run(
            live.registry.agent("planner"), messages("x [[fail:429*1]]"), recorder
        )
        elapsed = time.monotonic() - started
    assert elapsed >= 0.4
    assert (result.model, result.attempts) == ("main", 2)
    assert recorder.calls[0]["status_code"] == 429


async def test_a_retry_after_beyond_the_deadline_moves_to_the_next_model() -> None:
    config = DemoConfig(token_delay_ms=0, retry_after_s=30)
    async with live_chain(config, chain_settings(stage_timeout_s=3.0)) as live:
        started = time.monotonic()
        result = await live.chain.run(
            live.registry.agent("planner"), messages("x [[fail:429@chorus-demo]]"), Recorder()
        )
    assert result.model == "backup" and time.monotonic() - started < 2.0


def test_retry_after_header_forms() -> None:
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None
    # As a gateway (LiteLLM) forwards the provider's headers.
    assert retry_after({"llm_provider-retry-after-ms": "1500"}) == 1.5
    assert retry_after({"llm_provider-retry-after": "3"}) == 3.0
    assert retry_after({"retry-after": "4", "llm_provider-retry-after": "3"}) == 4.0


async def test_recorded_usage_matches_the_model_server_exactly() -> None:
    async with live_chain(DemoConfig(token_delay_ms=0, retry_after_s=0.01)) as live:
        recorders = [Recorder() for _ in range(4)]
        prompts = ["plain", "cut [[fail:cut*1]]", "boom [[fail:500*2]]", "slow [[fail:429*1]]"]
        results = [
            await live.chain.run(live.registry.agent("planner"), messages(p), r)
            for p, r in zip(prompts, recorders, strict=True)
        ]
        stats = live.server.stats
        provider = live.registry.provider("demo")
    every = [c for r in recorders for c in r.calls]
    # The cut stream sent no usage: its tokens are estimated and flagged; the rest are exact.
    estimated = [c for c in every if c["usage_estimated"]]
    assert [c["outcome"] for c in estimated] == ["broken_stream"]
    assert estimated[0]["completion_tokens"] > 0
    calls = [c for c in every if not c["usage_estimated"]]
    assert sum(c["prompt_tokens"] for c in calls) == stats.prompt_tokens
    assert sum(c["completion_tokens"] for c in calls) == stats.completion_tokens
    assert sum(r.usage.completion_tokens for r in results) == sum(
        c["completion_tokens"] for c in every
    )
    expected = provider.cost(stats.prompt_tokens, stats.completion_tokens)
    assert sum(c["cost_usd"] for c in calls) == pytest.approx(expected, abs=1e-9)
    assert len(every) == stats.calls


async def test_attempts_are_counted_in_metrics() -> None:
    async with live_chain() as live:
        await live.chain.run(
            live.registry.agent("planner"), messages("m [[fail:500*1]]"), Recorder()
        )
        registry = live.chain.metrics.registry
    labels = {"provider": "demo", "model": "main"}
    assert registry.get_sample_value("chorus_llm_attempts_total", {**labels, "outcome": "ok"}) == 1
    assert (
        registry.get_sample_value("chorus_llm_attempts_total", {**labels, "outcome": "error"}) == 1
    )
    assert registry.get_sample_value("chorus_llm_stages_total", {"result": "ok"}) == 1
    assert registry.get_sample_value("chorus_llm_tokens_total", {**labels, "kind": "completion"})


async def test_twenty_stages_against_a_30_percent_failing_server_all_succeed() -> None:
    config = DemoConfig(
        token_delay_ms=1, fail_rate=0.3, seed=23, retry_after_s=0.05,
        fail_kinds=("500", "503", "429", "timeout", "stall", "cut"),
    )  # fmt: skip
    settings = chain_settings(attempt_timeout_s=0.3, stage_timeout_s=20.0)
    async with live_chain(config, settings) as live:
        agent = live.registry.agent("planner")
        recorders = [Recorder() for _ in range(20)]
        results = await asyncio.gather(
            *(
                live.chain.run(agent, messages(f"Question number {i}?"), recorders[i])
                for i in range(20)
            )
        )
        outcomes = live.server.stats.outcomes
    # Seed 23 fails 11 of 31 calls, every kind at least once, one stage three times in a row.
    assert set(outcomes) == {"ok", *config.fail_kinds}
    assert sum(n for kind, n in outcomes.items() if kind != "ok") >= 8
    assert any(r.model == "backup" for r in results)
    for i, (result, recorder) in enumerate(zip(results, recorders, strict=True)):
        assert f"Question number {i}" in result.text
        assert result.text == recorder.text
        assert recorder.calls[-1]["outcome"] == "ok"


async def test_an_unreachable_provider_is_a_connection_error_and_retried() -> None:
    registry = make_registry("http://127.0.0.1:9/v1")
    chain = ModelChain(registry, chain_settings(llm_attempts_per_model=2))
    recorder = Recorder()
    try:
        with pytest.raises(StageFailed) as caught:
            await chain.run(registry.agent("planner"), messages("hi"), recorder)
    finally:
        await chain.close()
    assert caught.value.attempts == 4
    assert all(c["error"].startswith("connection failed") for c in recorder.calls)


async def test_an_abandoned_stream_records_an_estimate_of_what_it_streamed() -> None:
    # A stall: some tokens, then silence until the attempt timeout abandons the stream.
    async with live_chain(DemoConfig(token_delay_ms=0)) as live:
        recorder = Recorder()
        prompt = messages("Tell a story [[fail:stall*1]]")
        await live.chain.run(live.registry.agent("planner"), prompt, recorder)
    abandoned, finished = recorder.calls[0], recorder.calls[-1]
    assert abandoned["outcome"] == "timeout" and abandoned["usage_estimated"] is True
    streamed = "".join(e[1] for e in recorder.events[: recorder.events.index(("reset",))]
                       if e[0] == "delta")  # fmt: skip
    assert streamed
    assert abandoned["completion_tokens"] == estimate_tokens(streamed) > 0
    assert abandoned["prompt_tokens"] == sum(estimate_tokens(m["content"]) for m in prompt)
    assert abandoned["cost_usd"] > 0
    assert finished["outcome"] == "ok" and finished["usage_estimated"] is False


def test_the_token_estimate_is_chars_over_four_rounded_up() -> None:
    assert [estimate_tokens("x" * n) for n in (0, 1, 4, 5, 8)] == [0, 1, 1, 2, 2]
