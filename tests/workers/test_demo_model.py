"""The demo model server, exercised through the real openai SDK over HTTP."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest

from workers.demo_model import DemoConfig, DemoModelServer
from workers.demo_model.__main__ import parse_args

PLAN = "You are the planner of a writing team."
DRAFT = "You are the drafter of a writing team."
REVIEW = "You are the reviewer of a writing team."


def _messages(text: str, system: str = PLAN) -> Any:
    return [{"role": "system", "content": system}, {"role": "user", "content": text}]


@pytest.fixture
async def server() -> AsyncIterator[DemoModelServer]:
    async with DemoModelServer(DemoConfig(token_delay_ms=0, retry_after_s=0.25)) as srv:
        yield srv


@pytest.fixture
async def client(server: DemoModelServer) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = openai.AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=5)
    yield sdk
    await sdk.close()


async def _stream(client: openai.AsyncOpenAI, msgs: Any, **kw: Any) -> tuple[list[str], Any]:
    stream = await client.chat.completions.create(
        model="chorus-demo", messages=msgs, stream=True,
        stream_options={"include_usage": True}, **kw,
    )  # fmt: skip
    parts: list[str] = []
    usage = None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            assert chunk.choices == []
            usage = chunk.usage
    return parts, usage


async def test_stream_equals_non_stream_with_the_same_usage(
    client: openai.AsyncOpenAI, server: DemoModelServer
) -> None:
    msgs = _messages("How do I keep sourdough starter alive?")
    whole = await client.chat.completions.create(model="chorus-demo", messages=msgs)
    parts, usage = await _stream(client, msgs)
    assert "".join(parts) == whole.choices[0].message.content
    assert whole.choices[0].finish_reason == "stop"
    assert usage is not None and whole.usage is not None
    assert usage.completion_tokens == len(parts) == whole.usage.completion_tokens
    assert usage.prompt_tokens == whole.usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert server.stats.usage_reports == 2
    assert server.stats.completion_tokens == 2 * len(parts)


async def test_answers_are_deterministic_and_differ_by_stage(client: openai.AsyncOpenAI) -> None:
    answers = {}
    for name, system in (("plan", PLAN), ("draft", DRAFT), ("review", REVIEW)):
        first, _ = await _stream(client, _messages("Explain TCP slow start", system))
        again, _ = await _stream(client, _messages("Explain TCP slow start", system))
        assert first == again
        answers[name] = "".join(first)
        assert "Explain TCP slow start" in answers[name]
    assert len(set(answers.values())) == 3
    assert (
        "Plan" in answers["plan"] and "Draft" in answers["draft"] and "Answer" in answers["review"]
    )


async def test_max_tokens_truncates_with_finish_reason_length(client: openai.AsyncOpenAI) -> None:
    whole = await client.chat.completions.create(
        model="chorus-demo", messages=_messages("Tell me about owls"), max_tokens=5
    )
    assert whole.choices[0].finish_reason == "length"
    assert whole.usage is not None and whole.usage.completion_tokens == 5
    parts, usage = await _stream(client, _messages("Tell me about owls"), max_tokens=5)
    assert len(parts) == 5 and usage is not None and usage.completion_tokens == 5


async def test_status_markers_fail_with_that_status(client: openai.AsyncOpenAI) -> None:
    cases = [(500, openai.InternalServerError), (400, openai.BadRequestError),
             (401, openai.AuthenticationError), (503, openai.InternalServerError)]  # fmt: skip
    for status, error in cases:
        with pytest.raises(error) as caught:
            await _stream(client, _messages(f"hello [[fail:{status}]]"))
        assert caught.value.status_code == status


async def test_429_carries_retry_after(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(
            model="chorus-demo", messages=_messages("x [[fail:429]]")
        )
    headers = caught.value.response.headers
    assert headers["retry-after"] == "1"
    assert headers["retry-after-ms"] == "250"


async def test_timeout_marker_hangs(client: openai.AsyncOpenAI) -> None:
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        await _stream(client, _messages("hi [[fail:timeout]]"), timeout=0.3)
    assert time.monotonic() - started >= 0.3


async def test_cut_marker_breaks_the_stream_midway(client: openai.AsyncOpenAI) -> None:
    full, _ = await _stream(client, _messages("Tell me a story"))
    got: list[str] = []
    stream = await client.chat.completions.create(
        model="chorus-demo", messages=_messages("Tell me a story [[fail:cut]]"), stream=True
    )
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                got.append(chunk.choices[0].delta.content)
    assert 0 < len(got) < len(full)


async def test_stall_marker_streams_then_hangs(client: openai.AsyncOpenAI) -> None:
    got: list[str] = []
    stream = await client.chat.completions.create(
        model="chorus-demo", messages=_messages("Stories [[fail:stall]]"), stream=True, timeout=0.3
    )
    with pytest.raises(openai.APITimeoutError):
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                got.append(chunk.choices[0].delta.content)
    assert got


async def test_markers_scope_to_a_model_and_first_n_calls(client: openai.AsyncOpenAI) -> None:
    msgs = _messages("scoped [[fail:500@chorus-demo*2]]")
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="chorus-demo", messages=msgs)
    ok = await client.chat.completions.create(model="chorus-demo", messages=msgs)
    assert "[[fail" not in (ok.choices[0].message.content or "")
    backup = await client.chat.completions.create(
        model="chorus-demo-backup", messages=_messages("other [[fail:500@chorus-demo]]")
    )
    assert backup.model == "chorus-demo-backup"


async def test_markers_in_earlier_turns_are_ignored(client: openai.AsyncOpenAI) -> None:
    msgs: Any = [
        {"role": "system", "content": PLAN},
        {"role": "user", "content": "old [[fail:500]]"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "new question"},
    ]
    whole = await client.chat.completions.create(model="chorus-demo", messages=msgs)
    assert whole.choices[0].message.content


async def test_unknown_model_is_404(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="nope", messages=_messages("hi"))


async def test_api_key_is_enforced_when_configured() -> None:
    async with DemoModelServer(DemoConfig(api_key="sesame")) as srv:
        for key, ok in (("wrong", False), ("sesame", True)):
            sdk = openai.AsyncOpenAI(base_url=srv.base_url, api_key=key, max_retries=0)
            try:
                if ok:
                    await sdk.chat.completions.create(model="chorus-demo", messages=_messages("hi"))
                else:
                    with pytest.raises(openai.AuthenticationError):
                        await sdk.chat.completions.create(
                            model="chorus-demo", messages=_messages("hi")
                        )
            finally:
                await sdk.close()


async def test_down_switch_fails_every_call(
    client: openai.AsyncOpenAI, server: DemoModelServer
) -> None:
    server.configure(down=True)
    with pytest.raises(openai.InternalServerError) as caught:
        await client.chat.completions.create(model="chorus-demo", messages=_messages("hi"))
    assert caught.value.status_code == 503
    server.configure(down=False)
    await client.chat.completions.create(model="chorus-demo", messages=_messages("hi"))


async def _outcomes(config: DemoConfig, prompts: list[str]) -> list[str]:
    async with DemoModelServer(config) as srv:
        sdk = openai.AsyncOpenAI(base_url=srv.base_url, api_key="x", max_retries=0, timeout=0.2)
        results = []
        try:
            for text in prompts:
                try:
                    await sdk.chat.completions.create(model="chorus-demo", messages=_messages(text))
                    results.append("ok")
                except openai.APIError as exc:
                    results.append(type(exc).__name__)
        finally:
            await sdk.close()
        return results


async def test_seeded_fail_rate_is_reproducible() -> None:
    config = DemoConfig(token_delay_ms=0, fail_rate=0.5, seed=3, fail_kinds=("500", "429"))
    prompts = [f"question {i}" for i in range(12)]
    first = await _outcomes(config, prompts)
    assert first == await _outcomes(config, prompts)
    assert "ok" in first and len(set(first)) > 1


async def test_models_endpoint_and_bad_requests(server: DemoModelServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.base_url}/models") as resp:
            ids = [m["id"] for m in (await resp.json())["data"]]
        assert ids == ["chorus-demo", "chorus-demo-backup"]
        async with http.post(f"{server.base_url}/chat/completions", data=b"{not json") as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["type"] == "invalid_request_error"


def test_command_line_builds_a_config() -> None:
    config = parse_args(["--port", "9", "--token-delay-ms", "2", "--fail-rate", "0.3",
                         "--fail-kinds", "500,cut", "--down"])  # fmt: skip
    assert (config.port, config.token_delay_ms, config.fail_rate) == (9, 2.0, 0.3)
    assert config.fail_kinds == ("500", "cut") and config.down
