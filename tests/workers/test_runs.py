"""Runs end to end over a real Redis, the demo model (real openai SDK over HTTP) and a worker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from arq.jobs import Job, JobStatus
from redis.asyncio import Redis

from server import keys
from server.app import create_app
from server.config import Settings
from server.pipelines import DEFAULT_PIPELINES_FILE
from server.ratelimit import Rule
from tests.support.api import Api, User, error_of, make_user
from tests.workers.conftest import wait_run
from workers.demo_model import DemoModelServer
from workers.inprocess import InProcessWorker

Client = TestClient[Any, web.Application]


async def _session(client: Client, user: User, pipeline: str = "default") -> str:
    return await Api.of(client).as_user(user).new_session(pipeline)


async def _send(client: Client, user: User, sid: str, content: str) -> dict[str, Any]:
    return await Api.of(client).as_user(user).send(sid, content)


async def _events(client: Client, sid: str) -> list[dict[str, Any]]:
    redis: Redis = client.app[keys.REDIS]
    entries = await redis.xrange(client.app[keys.REDIS_KEYS].session_stream(sid))
    return [json.loads(fields[b"e"]) for _, fields in entries]


async def test_message_runs_three_stages_and_answer_lands(stack: Client) -> None:
    user = await make_user(stack)
    sid = await _session(stack, user)
    sent = await _send(stack, user, sid, "How do I brew green tea?")
    assert sent["message"]["role"] == "user"
    assert [s["status"] for s in sent["run"]["stages"]] == ["pending"] * 3
    run = await wait_run(stack, user.auth, sent["run"]["run_id"])
    assert run["status"] == "completed"
    assert [s["name"] for s in run["stages"]] == ["plan", "draft", "review"]
    assert all(s["status"] == "completed" and s["output"] for s in run["stages"])
    assert all(s["model"] == "demo" and s["attempts"] == 1 for s in run["stages"])
    outputs = [s["output"] for s in run["stages"]]
    assert len(set(outputs)) == 3  # each stage says something of its own
    body = await (await stack.get(f"/api/v1/sessions/{sid}", headers=user.auth)).json()
    assert body["status"] == "completed" and body["active_run_id"] is None
    answer = body["messages"][-1]
    assert answer["role"] == "assistant" and answer["content"] == outputs[-1]
    assert answer["content_html"].startswith("<")
    names = [e["name"] for e in await _events(stack, sid)]
    assert names[:3] == ["message.created", "run.queued", "run.started"]
    assert names[-1] == "run.completed"
    started = [
        e["data"]["stage"] for e in await _events(stack, sid) if e["name"] == "stage.started"
    ]
    assert started == ["plan", "draft", "review"]


async def test_deltas_concatenate_to_stored_outputs(stack: Client) -> None:
    user = await make_user(stack)
    sid = await _session(stack, user)
    run_id = (await _send(stack, user, sid, "Explain recursion"))["run"]["run_id"]
    run = await wait_run(stack, user.auth, run_id)
    events = await _events(stack, sid)
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1))
    for stage in run["stages"]:
        text = "".join(
            e["data"]["text"] for e in events
            if e["name"] == "stage.delta" and e["data"]["stage"] == stage["name"]
        )  # fmt: skip
        assert text == stage["output"]


async def test_usage_and_llm_calls_match_the_model_report(
    stack: Client, demo: DemoModelServer
) -> None:
    user = await make_user(stack)
    sid = await _session(stack, user)
    run_id = (await _send(stack, user, sid, "Summarise the water cycle"))["run"]["run_id"]
    run = await wait_run(stack, user.auth, run_id)
    calls = await stack.app[keys.STORE].list_llm_calls(run_id)
    assert len(calls) == 3 and all(c.outcome == "ok" for c in calls)
    assert sum(c.prompt_tokens for c in calls) == demo.stats.prompt_tokens
    assert sum(c.completion_tokens for c in calls) == demo.stats.completion_tokens
    assert run["usage"]["prompt_tokens"] == demo.stats.prompt_tokens
    assert run["usage"]["completion_tokens"] == demo.stats.completion_tokens
    usage = await (await stack.get("/api/v1/usage", headers=user.auth)).json()
    assert usage["prompt_tokens"] == demo.stats.prompt_tokens
    assert usage["completion_tokens"] == demo.stats.completion_tokens
    expected_cost = (demo.stats.prompt_tokens * 0.15 + demo.stats.completion_tokens * 0.60) / 1e6
    assert abs(usage["cost_usd"] - expected_cost) < 1e-9
    assert usage["days"][0]["calls"] == 3


async def test_second_message_while_busy_is_409(stack: Client, demo: DemoModelServer) -> None:
    demo.configure(token_delay_ms=20)
    user = await make_user(stack)
    sid = await _session(stack, user)
    run_id = (await _send(stack, user, sid, "first"))["run"]["run_id"]
    resp = await stack.post(
        f"/api/v1/sessions/{sid}/messages", json={"content": "second", "double_texting": "reject"},
        headers=user.auth,
    )  # fmt: skip
    assert await error_of(resp) == (409, "session_busy")
    # End the run here, so no stage is cut short by the worker's shutdown at teardown.
    await stack.post(f"/api/v1/runs/{run_id}/cancel", headers=user.auth)
    assert (await wait_run(stack, user.auth, run_id, within_s=10))["status"] == "cancelled"


async def test_failed_review_then_retry_reuses_plan_and_draft(
    aiohttp_client: Any, run_settings: Settings, tmp_path: Path
) -> None:
    # The reviewer's prompt makes its first two calls fail with 400: 400 skips to the next
    # model, so both models of the chain fail once and the stage fails; the retry passes.
    text = DEFAULT_PIPELINES_FILE.read_text()
    marked = text.replace("You are the reviewer", "[[fail:400*2]] You are the reviewer")
    assert marked != text
    (tmp_path / "pipelines.toml").write_text(marked)
    settings = run_settings.replace(pipelines_file=tmp_path / "pipelines.toml")
    client = await aiohttp_client(create_app(settings))
    async with InProcessWorker(settings, client.app[keys.PIPELINES]):
        user = await make_user(client)
        sid = await _session(client, user)
        run_id = (await _send(client, user, sid, "Write a haiku"))["run"]["run_id"]
        failed = await wait_run(client, user.auth, run_id)
        assert failed["status"] == "failed"
        assert [s["status"] for s in failed["stages"]] == ["completed", "completed", "failed"]
        assert "400" in failed["error"]
        resp = await client.post(f"/api/v1/runs/{run_id}/retry", headers=user.auth)
        assert resp.status == 202
        assert (await resp.json())["run"]["status"] == "queued"
        done = await wait_run(client, user.auth, run_id)
    assert done["status"] == "completed"
    assert [s["output"] for s in done["stages"][:2]] == [s["output"] for s in failed["stages"][:2]]
    assert [s["attempts"] for s in done["stages"]] == [1, 1, 2]
    calls = await client.app[keys.STORE].list_llm_calls(run_id)
    assert [c.stage for c in calls].count("plan") == 1  # plan and draft were not redone
    assert [c.stage for c in calls].count("draft") == 1
    messages = await client.app[keys.STORE].list_messages(user.user["user_id"], sid, limit=10)
    assert [m.role for m in messages] == ["user", "assistant"]


async def test_retry_resumes_from_first_unfinished_stage(stack: Client) -> None:
    user = await make_user(stack)
    sid = await _session(stack, user)
    run_id = (await _send(stack, user, sid, "Plan a picnic"))["run"]["run_id"]
    done = await wait_run(stack, user.auth, run_id)
    store = stack.app[keys.STORE]
    # Make it look as if the review stage failed, then retry.
    await store.update_run(
        run_id,
        {"status": "failed", "stages.2.status": "failed", "stages.2.output": None,
         "error": "stage review failed"},
    )  # fmt: skip
    await store.update_session(user.user["user_id"], sid, {"status": "failed"})
    resp = await stack.post(f"/api/v1/runs/{run_id}/retry", headers=user.auth)
    assert resp.status == 202
    retried = await wait_run(stack, user.auth, run_id)
    assert retried["status"] == "completed"
    assert [s["output"] for s in retried["stages"][:2]] == [s["output"] for s in done["stages"][:2]]
    assert [s["attempts"] for s in retried["stages"]] == [1, 1, 2]
    assert retried["stages"][2]["output"] == done["stages"][2]["output"]
    messages = await store.list_messages(user.user["user_id"], sid, limit=10)
    assert [m.role for m in messages] == ["user", "assistant"]  # the answer is written once


async def test_cancel_mid_stream(stack: Client, demo: DemoModelServer) -> None:
    demo.configure(token_delay_ms=30)
    user = await make_user(stack)
    sid = await _session(stack, user)
    run_id = (await _send(stack, user, sid, "Tell me a long story"))["run"]["run_id"]
    async with asyncio.timeout(10):
        while not any(e["name"] == "stage.delta" for e in await _events(stack, sid)):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    resp = await stack.post(f"/api/v1/runs/{run_id}/cancel", headers=user.auth)
    assert resp.status == 202
    run = await wait_run(stack, user.auth, run_id, within_s=5)
    assert run["status"] == "cancelled"
    assert run["stages"][0]["status"] == "cancelled"
    assert [e["name"] for e in await _events(stack, sid)][-1] == "run.cancelled"
    body = await (await stack.get(f"/api/v1/sessions/{sid}", headers=user.auth)).json()
    assert body["status"] == "cancelled" and body["active_run_id"] is None


async def test_cancel_before_the_job_starts_wins(aiohttp_client: Any, run_settings: Any) -> None:
    client = await aiohttp_client(create_app(run_settings))  # no worker yet
    user = await make_user(client)
    sid = await _session(client, user)
    run_id = (await _send(client, user, sid, "never runs"))["run"]["run_id"]
    resp = await client.post(f"/api/v1/runs/{run_id}/cancel", headers=user.auth)
    body = (await resp.json())["run"]
    assert body["status"] == "cancelled"
    assert [s["status"] for s in body["stages"]] == ["cancelled"] * 3
    app_keys = client.app[keys.REDIS_KEYS]
    job = Job(app_keys.stage_job_id(run_id, 0, 0), client.app[keys.REDIS],
              _queue_name=app_keys.arq_queue())  # fmt: skip
    assert await job.status() is JobStatus.queued  # the cancel left the job in the queue
    async with InProcessWorker(run_settings, client.app[keys.PIPELINES]):  # a worker comes
        await job.result(timeout=10, poll_delay=0.02)  # ... and takes the job
    info = await job.result_info()
    assert info is not None and info.success
    run = await (await client.get(f"/api/v1/runs/{run_id}", headers=user.auth)).json()
    assert run["status"] == "cancelled" and [s["attempts"] for s in run["stages"]] == [0] * 3
    assert await client.app[keys.STORE].list_llm_calls(run_id) == []
    names = [e["name"] for e in await _events(client, sid)]
    assert "stage.started" not in names and names.count("run.cancelled") == 1


async def test_thirty_percent_failing_provider_batch_of_20_completes(
    stack: Client, demo: DemoModelServer
) -> None:
    demo.configure(fail_rate=0.3, seed=7, fail_kinds=("500", "429", "timeout", "cut"))
    user = await make_user(stack)
    run_ids = []
    for i in range(20):
        sid = await _session(stack, user, "chat")
        run_ids.append((await _send(stack, user, sid, f"question {i}"))["run"]["run_id"])
    runs = await asyncio.gather(*(wait_run(stack, user.auth, r, within_s=90) for r in run_ids))
    assert [r["status"] for r in runs] == ["completed"] * 20
    failures = sum(n for kind, n in demo.stats.outcomes.items() if kind != "ok")
    assert failures >= 3


async def test_all_providers_down_fails_clearly_before_deadline(
    stack: Client, demo: DemoModelServer
) -> None:
    demo.configure(down=True)
    user = await make_user(stack)
    sid = await _session(stack, user, "chat")
    run_id = (await _send(stack, user, sid, "anyone there?"))["run"]["run_id"]
    run = await wait_run(stack, user.auth, run_id, within_s=20)
    assert run["status"] == "failed"
    assert "503" in run["error"]
    events = await _events(stack, sid)
    assert events[-1]["name"] == "run.failed" and events[-1]["data"]["error"] == run["error"]
    assert any(e["name"] == "stage.retrying" for e in events)


async def test_post_message_bad_input(stack: Client) -> None:
    user = await make_user(stack)
    sid = await _session(stack, user)
    for body in ({}, {"content": ""}, {"content": 5}, {"content": {"$ne": ""}},
                 {"content": "x" * 20_001}, {"content": "hi", "role": "assistant"}):  # fmt: skip
        resp = await stack.post(f"/api/v1/sessions/{sid}/messages", json=body, headers=user.auth)
        assert await error_of(resp) == (422, "invalid_request")
    other = await make_user(stack, "eve")
    resp = await stack.post(
        f"/api/v1/sessions/{sid}/messages", json={"content": "hi"}, headers=other.auth
    )
    assert await error_of(resp) == (404, "not_found")


async def test_llm_work_is_rate_limited(stack: Client) -> None:
    limits = stack.app[keys.SETTINGS].limits
    user = await make_user(stack)
    rule = Rule("llm-user", user.user["user_id"], limits.llm_per_user, limits.llm_window_s)
    for _ in range(limits.llm_per_user):  # use up the hour's allowance
        assert (await stack.app[keys.RATE_LIMITER].hit(rule)).allowed
    sid = await _session(stack, user, "chat")
    resp = await stack.post(
        f"/api/v1/sessions/{sid}/messages", json={"content": "one more"}, headers=user.auth
    )
    assert await error_of(resp) == (429, "rate_limited")
    assert int(resp.headers["Retry-After"]) > 0


async def test_pipelines_listed(stack: Client) -> None:
    user = await make_user(stack)
    body = await (await stack.get("/api/v1/pipelines", headers=user.auth)).json()
    by_name = {p["name"]: p for p in body["pipelines"]}
    assert [s["name"] for s in by_name["default"]["stages"]] == ["plan", "draft", "review"]
    assert len(by_name["chat"]["stages"]) == 1


async def test_other_users_runs_are_404(stack: Client) -> None:
    ann, bob = await make_user(stack, "ann"), await make_user(stack, "bob")
    sid = await _session(stack, ann, "chat")
    run_id = (await _send(stack, ann, sid, "mine"))["run"]["run_id"]
    for method, path in (("GET", f"/api/v1/runs/{run_id}"),
                         ("POST", f"/api/v1/runs/{run_id}/cancel"),
                         ("POST", f"/api/v1/runs/{run_id}/retry")):  # fmt: skip
        assert await error_of(await stack.request(method, path, headers=bob.auth)) == (
            404, "not_found",
        )  # fmt: skip
