"""The stream's edges: a client that leaves, a second client library, retried answer stages."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from huggingface_hub import InferenceClient

from server import keys
from server.app import create_app
from server.config import Settings
from server.openai_api import routes
from server.openai_api.chunks import ChunkWriter
from server.sse.feed import SessionFeed
from tests.conftest import ClientFactory
from tests.server.openai_api.conftest import Keyed
from tests.support.api import make_user
from tests.workers.conftest import wait_run
from workers.inprocess import InProcessWorker


async def test_a_client_that_leaves_does_not_cancel_the_run(
    aiohttp_client: ClientFactory, run_settings: Settings, monkeypatch: Any
) -> None:
    # No worker yet: the run stays queued while the client leaves and the server notices.
    client = await aiohttp_client(create_app(run_settings.replace(sse_heartbeat_s=0.01)))
    handler_done = asyncio.Event()
    real_stream = routes._stream

    async def stream_then_signal(completion: Any) -> Any:
        try:
            return await real_stream(completion)
        finally:
            handler_done.set()

    monkeypatch.setattr(routes, "_stream", stream_then_signal)
    user = await make_user(client)
    resp = await client.post(
        "/v1/chat/completions", headers=user.auth,
        json={"model": "default", "stream": True,
              "messages": [{"role": "user", "content": "Explain recursion"}]},
    )  # fmt: skip
    assert resp.status == 200
    run_id = resp.headers["X-Chorus-Run-Id"]
    first = await resp.content.readline()
    assert first.startswith(b"data: ") and json.loads(first[6:])["id"] == f"chatcmpl-{run_id}"
    resp.close()  # gone mid-run
    async with asyncio.timeout(10):
        await handler_done.wait()  # a heartbeat met the closed connection
    run = await (await client.get(f"/api/v1/runs/{run_id}", headers=user.auth)).json()
    assert run["status"] == "queued" and run["cancel_requested"] is False
    async with InProcessWorker(run_settings, client.app[keys.PIPELINES]):
        run = await wait_run(client, user.auth, run_id)
    assert run["status"] == "completed"


async def test_huggingface_inference_client_streams_and_completes(keyed: Keyed) -> None:
    """An independent OpenAI-compatible client: its own request building and SSE parsing."""

    def call() -> tuple[list[Any], Any]:
        hf = InferenceClient(base_url=keyed.base_url.removesuffix("/v1"), api_key=keyed.key)
        messages = [{"role": "user", "content": "What is a haiku?"}]
        chunks = list(hf.chat_completion(
            messages, model="default", stream=True, stream_options={"include_usage": True}
        ))  # fmt: skip
        done = hf.chat_completion(messages, model="chat")
        return chunks, done

    chunks, done = await asyncio.to_thread(call)
    run_id = chunks[0].id.removeprefix("chatcmpl-")
    run = await wait_run(keyed.client, keyed.auth, run_id)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == run["stages"][-1]["output"]
    usage = chunks[-1].usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        run["usage"]["prompt_tokens"], run["usage"]["completion_tokens"],
    )  # fmt: skip
    assert done.choices[0].message.content
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens


def _writer() -> ChunkWriter:
    return ChunkWriter("chatcmpl-r", 1, "default", ["plan", "review"], progress=False,
                       include_usage=False)  # fmt: skip


def _delta(stage: str, text: str) -> dict[str, Any]:
    return {"name": "stage.delta", "data": {"stage": stage, "text": text}}


def _contents(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])


def test_a_retried_answer_stage_that_repeats_itself_is_not_sent_twice() -> None:
    writer = _writer()
    out = writer.feed(_delta("plan", "the plan")) + writer.feed(_delta("review", "Hello wor"))
    out += writer.feed({"name": "stage.reset", "data": {"stage": "review"}})
    for piece in ("Hel", "lo w", "orld", "!"):
        out += writer.feed(_delta("review", piece))
    completed = {"message": {"content": "Hello world!"}, "usage": {}}
    out += writer.feed({"name": "run.completed", "data": completed})
    assert _contents(out) == "Hello world!"
    assert writer.outcome is not None and writer.outcome.answer == "Hello world!"


def test_a_run_rejected_at_its_gate_ends_the_completion_saying_so() -> None:
    writer = _writer()
    writer.feed({"name": "run.cancelled", "data": {"error": "rejected: off topic"}})
    [error] = writer.closing()
    assert error["error"]["message"] == "rejected: off topic"
    assert error["error"]["code"] == "run_cancelled"
    plain = _writer()
    plain.feed({"name": "run.cancelled", "data": {}})
    assert plain.closing()[0]["error"]["message"] == "the run was cancelled"


def test_a_retried_answer_stage_that_differs_is_flagged_and_sent_whole() -> None:
    writer = _writer()
    out = writer.feed(_delta("review", "Hello"))
    out += writer.feed({"name": "stage.reset", "data": {"stage": "review"}})
    out += writer.feed(_delta("review", "Goodbye"))
    flags = [c["chorus"]["event"] for c in out if "chorus" in c]
    assert flags == ["answer.replaced"]
    assert _contents(out) == "HelloGoodbye"
    out = writer.feed({"name": "run.completed", "data": {"message": {"content": "Goodbye!"}}})
    assert _contents(out) == "!"


async def test_when_the_history_misses_the_run_the_answer_comes_from_the_store(
    keyed: Keyed, monkeypatch: Any
) -> None:
    app = keyed.client.app

    class LateFeed(SessionFeed):
        async def open(self, after_seq: int | None, epoch: str | None) -> Any:
            # Subscribe only once the run's last event is out: no live event will come...
            stream_key = app[keys.REDIS_KEYS].session_stream(self.session_id)
            async with asyncio.timeout(30):
                while True:
                    last = await app[keys.REDIS].xrevrange(stream_key, count=1)
                    if last and b'"name":"run.completed"' in last[0][1][b"e"]:
                        break
                    await asyncio.sleep(0.02)
            # ...and, as if Redis had restarted meanwhile, in a new epoch.
            return await super().open(after_seq, "an-epoch-redis-lost")

    monkeypatch.setattr(routes, "SessionFeed", LateFeed)
    async with asyncio.timeout(20):
        resp = await keyed.client.post(
            "/v1/chat/completions", headers=keyed.auth,
            json={"model": "default", "stream": True, "stream_options": {"include_usage": True},
                  "messages": [{"role": "user", "content": "Explain tides"}]},
        )  # fmt: skip
        lines = [line async for line in resp.content if line.startswith(b"data: {")]
    chunks = [json.loads(line[6:]) for line in lines]
    run = await wait_run(keyed.client, keyed.auth, resp.headers["X-Chorus-Run-Id"])
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == run["stages"][-1]["output"]
    usage = chunks[-1]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (
        run["usage"]["prompt_tokens"], run["usage"]["completion_tokens"],
    )  # fmt: skip


async def test_revoking_the_key_ends_its_stream_but_not_the_run(
    aiohttp_client: ClientFactory, run_settings: Settings
) -> None:
    client = await aiohttp_client(create_app(run_settings))  # no worker: the run waits
    user = await make_user(client)
    created = await (await client.post("/api/v1/api-keys", json={}, headers=user.auth)).json()
    resp = await client.post(
        "/v1/chat/completions", headers={"Authorization": f"Bearer {created['key']}"},
        json={"model": "chat", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    )  # fmt: skip
    assert (await resp.content.readline()).startswith(b"data: {")  # the opening chunk
    revoked = await client.delete(f"/api/v1/api-keys/{created['key_id']}", headers=user.auth)
    assert revoked.status == 204
    async with asyncio.timeout(10):
        rest = [line async for line in resp.content if line.startswith(b"data: ")]
    assert json.loads(rest[0][6:])["error"]["code"] == "stream_closed"
    assert rest[-1] == b"data: [DONE]\n"
    run = await (await client.get(f"/api/v1/runs/{resp.headers['X-Chorus-Run-Id']}",
                                  headers=user.auth)).json()  # fmt: skip
    assert run["status"] == "queued" and run["cancel_requested"] is False
