"""Daily budgets over real Redis, the store and the demo model: checked before a run starts
(429 ``budget_exceeded``), enforced while a stage streams (the stage stops, its partial text
kept, ``run.failed`` with ``budget_exceeded``), counted exactly against ``llm_calls``, and
rebuilt from the store when Redis lost the counters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from server import keys
from server.app import create_app
from server.budgets import COST_UNITS_PER_USD, cost_units, day_of
from server.config import Settings
from tests.conftest import ClientFactory
from tests.support.api import error_of, make_user
from tests.workers.conftest import Client, session_events, start_run, wait_run
from workers.inprocess import InProcessWorker

STALL = "[[fail:stall]] How do I brew tea?"  # the demo model streams half its answer, then hangs


async def _stack(aiohttp_client: ClientFactory, settings: Settings) -> AsyncIterator[Client]:
    client = await aiohttp_client(create_app(settings))
    async with InProcessWorker(settings, client.app[keys.PIPELINES]):
        yield client


@pytest.fixture
async def tight(aiohttp_client: ClientFactory, run_settings: Settings) -> AsyncIterator[Client]:
    """The app and a worker with a 1-token daily budget per user. Attempts may wait 30 s for
    a token: a stalled stream ends by the budget or not at all."""
    settings = run_settings.replace(
        budget_tokens_per_day=1, attempt_timeout_s=30.0, stage_timeout_s=60.0
    )
    async for client in _stack(aiohttp_client, settings):
        yield client


async def _counter(app: Client, user_id: str | None) -> tuple[int, int]:
    """The day's counter (tokens, cost units) of a user, or everyone's."""
    key = app.app[keys.REDIS_KEYS].usage_day(user_id, day_of(datetime.now(UTC)))
    tokens, units = await app.app[keys.REDIS].hmget(key, ["tokens", "cost"])
    return int(tokens or 0), int(units or 0)


async def _calls_total(app: Client, run_id: str) -> tuple[int, int]:
    calls = await app.app[keys.STORE].list_llm_calls(run_id)
    assert calls
    return (
        sum(c.prompt_tokens + c.completion_tokens for c in calls),
        sum(cost_units(c.cost_usd) for c in calls),
    )


async def test_a_budget_spent_mid_stream_stops_the_stage_keeping_its_text_and_exact_usage(
    tight: Client,
) -> None:
    user = await make_user(tight)
    posted = await start_run(tight, user, STALL)  # nothing spent yet: the run starts
    run = await wait_run(tight, user.auth, posted["run"]["run_id"])

    assert run["status"] == "failed" and run["error_code"] == "budget_exceeded"
    plan = run["stages"][0]
    assert plan["status"] == "failed" and "daily budget is spent" in plan["error"]
    events = await session_events(tight, posted["message"]["session_id"])
    streamed = "".join(e["data"]["text"] for e in events if e["name"] == "stage.delta")
    assert streamed and plan["partial"] == streamed  # the text streamed so far, kept
    assert [s["status"] for s in run["stages"][1:]] == ["pending", "pending"]
    failed = [e for e in events if e["name"] == "run.failed"]
    assert len(failed) == 1 and failed[0]["data"]["error_code"] == "budget_exceeded"

    # Usage exact: the run's usage, its llm_calls and the day's counters agree.
    tokens, units = await _calls_total(tight, run["run_id"])
    usage = run["usage"]
    assert usage == plan["usage"]
    assert usage["prompt_tokens"] + usage["completion_tokens"] == tokens
    assert cost_units(usage["cost_usd"]) == units
    assert await _counter(tight, user.user["user_id"]) == (tokens, units)
    assert await _counter(tight, None) == (tokens, units)

    # The next run is refused before it starts, saying when the budget resets.
    sid = posted["message"]["session_id"]
    resp = await tight.post(
        f"/api/v1/sessions/{sid}/messages", json={"content": "again"}, headers=user.auth
    )
    body = await resp.json()
    assert resp.status == 429 and body["error"]["code"] == "budget_exceeded"
    assert body["error"]["resets_at"].endswith("T00:00:00.000Z")
    assert int(resp.headers["Retry-After"]) >= 1
    retry = await tight.post(f"/api/v1/runs/{run['run_id']}/retry", headers=user.auth)
    assert await error_of(retry) == (429, "budget_exceeded")

    # /usage shows it: nothing remains today.
    summary = await (await tight.get("/api/v1/usage", headers=user.auth)).json()
    budget = summary["budget"]
    assert budget["exceeded"] is True and budget["global_exceeded"] is False
    assert budget["tokens"] == {"limit": 1, "used": tokens, "remaining": 0}
    assert budget["cost_usd"]["limit"] is None and budget["cost_usd"]["remaining"] is None


async def test_the_ws_send_is_refused_with_an_error_frame_naming_the_reset(tight: Client) -> None:
    user = await make_user(tight)
    posted = await start_run(tight, user, STALL)
    await wait_run(tight, user.auth, posted["run"]["run_id"])
    async with tight.ws_connect("/api/v1/ws", headers=user.auth) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "ready"
        session_id = posted["message"]["session_id"]
        await ws.send_json({"id": 1, "type": "send", "session_id": session_id, "content": "x"})
        frame = await ws.receive_json(timeout=5)
        assert frame["type"] == "error" and frame["id"] == 1
        assert frame["error"]["code"] == "budget_exceeded"
        assert frame["error"]["resets_at"].endswith("T00:00:00.000Z")
        await ws.close()
    assert ws.closed and ws.close_code is not None


async def test_counters_match_llm_calls_after_a_completed_run_and_rebuild_when_lost(
    stack: Client,
) -> None:
    user = await make_user(stack)
    posted = await start_run(stack, user)
    run = await wait_run(stack, user.auth, posted["run"]["run_id"])
    assert run["status"] == "completed"
    exact = await _calls_total(stack, run["run_id"])
    usage = run["usage"]
    assert usage["prompt_tokens"] + usage["completion_tokens"] == exact[0]
    assert await _counter(stack, user.user["user_id"]) == exact
    assert exact[1] > 0  # the demo provider has prices: cost is counted too

    # Redis loses the counters: the next read rebuilds them from llm_calls.
    redis, rkeys = stack.app[keys.REDIS], stack.app[keys.REDIS_KEYS]
    day = day_of(datetime.now(UTC))
    await redis.delete(rkeys.usage_day(user.user["user_id"], day), rkeys.usage_day(None, day))
    summary = await (await stack.get("/api/v1/usage", headers=user.auth)).json()
    budget: dict[str, Any] = summary["budget"]
    assert budget["tokens"] == {"limit": None, "used": exact[0], "remaining": None}
    assert budget["cost_usd"]["used"] == pytest.approx(exact[1] / COST_UNITS_PER_USD)
    assert await _counter(stack, user.user["user_id"]) == exact
    assert await _counter(stack, None) == exact


async def test_the_global_budget_binds_every_user(
    aiohttp_client: ClientFactory, run_settings: Settings
) -> None:
    settings = run_settings.replace(budget_global_tokens_per_day=1)
    async for app in _stack(aiohttp_client, settings):
        ann, bob = await make_user(app, "ann"), await make_user(app, "bob")
        posted = await start_run(app, ann)
        run = await wait_run(app, ann.auth, posted["run"]["run_id"])
        # Ann's run spent the server's budget: a stage stopped when it was spent, and no one
        # may start another run today.
        assert run["status"] == "failed" and run["error_code"] == "budget_exceeded"
        resp = await app.post("/api/v1/sessions", json={}, headers=bob.auth)
        sid = (await resp.json())["session_id"]
        refused = await app.post(
            f"/api/v1/sessions/{sid}/messages", json={"content": "hi"}, headers=bob.auth
        )
        body = await refused.json()
        assert refused.status == 429 and body["error"]["code"] == "budget_exceeded"
        assert body["error"]["budget"] == "global"
        usage = await (await app.get("/api/v1/usage", headers=bob.auth)).json()
        assert usage["budget"]["exceeded"] is False and usage["budget"]["global_exceeded"]
