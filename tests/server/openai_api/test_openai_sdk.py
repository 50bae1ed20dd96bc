"""/v1/chat/completions and /v1/models through the real openai SDK (sync and async)."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from server import keys
from tests.server.openai_api.conftest import Keyed
from tests.workers.conftest import wait_run

QUESTION = "How do I brew green tea?"


def _async(k: Keyed) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=k.base_url, api_key=k.key, max_retries=0)


async def _stored(k: Keyed, session_id: str, run_id: str) -> tuple[str, dict[str, Any]]:
    """The stored answer of the session and the run's usage, from the Chorus API."""
    run = await wait_run(k.client, k.auth, run_id)
    assert run["status"] == "completed"
    session = await (await k.client.get(f"/api/v1/sessions/{session_id}", headers=k.auth)).json()
    answer = session["messages"][-1]
    assert answer["role"] == "assistant" and answer["run_id"] == run_id
    return answer["content"], run["usage"]


async def _llm_call_tokens(k: Keyed, run_id: str) -> tuple[int, int]:
    calls = await k.client.app[keys.STORE].list_llm_calls(run_id)
    assert len(calls) == 3  # one call per stage
    return sum(c.prompt_tokens for c in calls), sum(c.completion_tokens for c in calls)


async def test_async_stream_of_a_three_stage_pipeline_with_exact_usage(keyed: Keyed) -> None:
    async with _async(keyed) as sdk:
        stream = await sdk.chat.completions.create(
            model="default", messages=[{"role": "user", "content": QUESTION}], stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        chunks = [chunk async for chunk in stream]
    first, last = chunks[0], chunks[-1]
    ext = first.model_extra or {}
    session_id, run_id = ext["chorus"]["session_id"], ext["chorus"]["run_id"]
    assert first.choices[0].delta.role == "assistant" and first.id == f"chatcmpl-{run_id}"
    assert all(c.id == first.id and c.model == "default" for c in chunks)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    answer, usage = await _stored(keyed, session_id, run_id)
    assert text == answer and len(answer) > 20
    # The last chunk carries the usage and no choice; the one before it says "stop".
    assert last.choices == [] and last.usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "stop"
    prompt, completion = await _llm_call_tokens(keyed, run_id)
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (prompt, completion)
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (prompt, completion)
    assert last.usage.total_tokens == prompt + completion
    # Stage progress rides in the "chorus" extension field of empty-delta chunks.
    progress = [(c.model_extra or {}).get("chorus") for c in chunks[1:-1]]
    started = [p["stage"] for p in progress if p and p["event"] == "stage.started"]
    assert started == ["plan", "draft", "review"]
    completed = [p["stage"] for p in progress if p and p["event"] == "stage.completed"]
    assert completed == ["plan", "draft", "review"]


async def test_sync_stream_without_usage_and_without_progress(keyed: Keyed) -> None:
    def call() -> list[Any]:
        with OpenAI(base_url=keyed.base_url, api_key=keyed.key, max_retries=0) as sdk:
            stream = sdk.chat.completions.create(
                model="default", messages=[{"role": "user", "content": QUESTION}],
                stream=True, extra_body={"chorus_progress": False},
            )  # fmt: skip
            return list(stream)

    chunks = await asyncio.to_thread(call)
    assert all(c.usage is None and c.choices for c in chunks)
    assert all("chorus" not in (c.model_extra or {}) for c in chunks[1:])
    run_id = chunks[0].id.removeprefix("chatcmpl-")
    session_id = (chunks[0].model_extra or {})["chorus"]["session_id"]
    answer, _usage = await _stored(keyed, session_id, run_id)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == answer
    assert [c.choices[0].finish_reason for c in chunks].count("stop") == 1


async def test_async_completion_without_streaming(keyed: Keyed) -> None:
    async with _async(keyed) as sdk:
        done = await sdk.chat.completions.create(
            model="default", messages=[{"role": "user", "content": QUESTION}]
        )
    ext = (done.model_extra or {})["chorus"]
    answer, usage = await _stored(keyed, ext["session_id"], ext["run_id"])
    assert done.object == "chat.completion" and done.model == "default"
    assert done.choices[0].message.role == "assistant"
    assert done.choices[0].message.content == answer
    assert done.choices[0].finish_reason == "stop"
    assert done.usage is not None
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (
        usage["prompt_tokens"], usage["completion_tokens"],
    )  # fmt: skip


async def test_sync_completion_continues_a_session(keyed: Keyed) -> None:
    def call(messages: list[dict[str, str]], session_id: str | None = None) -> Any:
        extra = {"chorus_session_id": session_id} if session_id else None
        with OpenAI(base_url=keyed.base_url, api_key=keyed.key, max_retries=0) as sdk:
            return sdk.chat.completions.create(model="chat", messages=messages, extra_body=extra)

    history = [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"}, {"role": "user", "content": QUESTION},
    ]  # fmt: skip
    first = await asyncio.to_thread(call, history)
    session_id = (first.model_extra or {})["chorus"]["session_id"]
    follow = [*history, {"role": "assistant", "content": first.choices[0].message.content},
              {"role": "user", "content": "And black tea?"}]  # fmt: skip
    second = await asyncio.to_thread(call, follow, session_id)
    assert (second.model_extra or {})["chorus"]["session_id"] == session_id
    body = await (
        await keyed.client.get(f"/api/v1/sessions/{session_id}", headers=keyed.auth)
    ).json()
    assert [(m["role"], m["content"]) for m in body["messages"]] == [
        ("user", "hi"), ("assistant", "hello"), ("user", QUESTION),
        ("assistant", first.choices[0].message.content), ("user", "And black tea?"),
        ("assistant", second.choices[0].message.content),
    ]  # fmt: skip
    assert body["pipeline"] == "chat" and body["title"] == QUESTION


async def test_models_are_the_pipelines(keyed: Keyed) -> None:
    async with _async(keyed) as sdk:
        models = [m async for m in sdk.models.list()]
        one = await sdk.models.retrieve("chat")
    pipelines = await (await keyed.client.get("/api/v1/pipelines", headers=keyed.auth)).json()
    assert sorted(m.id for m in models) == sorted(p["name"] for p in pipelines["pipelines"])
    assert all(m.object == "model" and m.owned_by == "chorus" for m in models)
    default = next(m for m in models if m.id == "default")
    assert (default.model_extra or {})["chorus"]["stages"] == ["plan", "draft", "review"]
    assert one.id == "chat"


async def test_errors_have_openai_shape_and_status(keyed: Keyed) -> None:
    user_msg = [{"role": "user", "content": "hi"}]
    async with _async(keyed) as sdk:
        with pytest.raises(openai.NotFoundError) as missing:
            await sdk.chat.completions.create(model="nope", messages=user_msg)
        assert missing.value.code == "model_not_found"
        assert missing.value.type == "invalid_request_error"
        with pytest.raises(openai.BadRequestError) as bad:
            await sdk.chat.completions.create(
                model="default", messages=[{"role": "assistant", "content": "x"}]
            )
        assert bad.value.code == "invalid_request" and "last message" in bad.value.message
        with pytest.raises(openai.BadRequestError):
            await sdk.chat.completions.create(model="default", messages=user_msg, n=2)
        with pytest.raises(openai.NotFoundError) as gone:
            await sdk.chat.completions.create(
                model="default", messages=user_msg, extra_body={"chorus_session_id": "nosuch"}
            )
        assert gone.value.code == "not_found"
        with pytest.raises(openai.NotFoundError):
            await sdk.models.retrieve("nope")
    async with AsyncOpenAI(base_url=keyed.base_url, api_key="chk_wrong", max_retries=0) as bad_key:
        with pytest.raises(openai.AuthenticationError) as denied:
            await bad_key.models.list()
        assert denied.value.code == "invalid_api_key"
        assert denied.value.response.headers["x-should-retry"] == "false"


async def test_a_busy_session_is_a_conflict(keyed: Keyed) -> None:
    created = await keyed.client.post(
        "/api/v1/sessions", json={"pipeline": "default"}, headers=keyed.auth
    )
    session_id = (await created.json())["session_id"]
    sent = await keyed.client.post(
        f"/api/v1/sessions/{session_id}/messages", json={"content": "x"}, headers=keyed.auth
    )
    run_id = (await sent.json())["run"]["run_id"]
    async with _async(keyed) as sdk:
        with pytest.raises(openai.ConflictError) as busy:
            await sdk.chat.completions.create(
                model="default", messages=[{"role": "user", "content": "y"}],
                extra_body={"chorus_session_id": session_id},
            )  # fmt: skip
    assert busy.value.code == "session_busy"
    await wait_run(keyed.client, keyed.auth, run_id)


async def test_a_login_token_works_too(keyed: Keyed) -> None:
    async with AsyncOpenAI(base_url=keyed.base_url, api_key=keyed.user.token) as sdk:
        done = await sdk.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hello"}]
        )
    assert done.choices[0].message.content


async def test_a_client_that_resends_the_conversation_continues_its_session(keyed: Keyed) -> None:
    async with _async(keyed) as sdk:
        first = [{"role": "user", "content": "What is tea?"}]
        stream = await sdk.chat.completions.create(model="chat", messages=first, stream=True)
        chunks = [chunk async for chunk in stream]
        answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        session_id = (chunks[0].model_extra or {})["chorus"]["session_id"]
        # What Open WebUI and friends do: send everything again, with the answer.
        second = [*first, {"role": "assistant", "content": answer + "\n"},
                  {"role": "user", "content": "And coffee?"}]  # fmt: skip
        again = await sdk.chat.completions.create(model="chat", messages=second)
        assert (again.model_extra or {})["chorus"]["session_id"] == session_id
        # A conversation the server did not have (an edited answer) starts a new session.
        edited = [*first, {"role": "assistant", "content": "edited"},
                  {"role": "user", "content": "And coffee?"}]  # fmt: skip
        forked = await sdk.chat.completions.create(model="chat", messages=edited)
    forked_id = (forked.model_extra or {})["chorus"]["session_id"]
    assert forked_id != session_id
    resp = await keyed.client.get(f"/api/v1/sessions/{session_id}", headers=keyed.auth)
    messages = [(m["role"], m["content"]) for m in (await resp.json())["messages"]]
    assert messages == [
        ("user", "What is tea?"), ("assistant", answer),
        ("user", "And coffee?"), ("assistant", again.choices[0].message.content),
    ]  # fmt: skip
    resp = await keyed.client.get(f"/api/v1/sessions/{forked_id}", headers=keyed.auth)
    forked_messages = [m["content"] for m in (await resp.json())["messages"]]
    assert forked_messages[:3] == ["What is tea?", "edited", "And coffee?"]
