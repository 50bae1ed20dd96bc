"""Store contract, part 2: runs, LLM calls, usage, indexes and the factory."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from pymongo import AsyncMongoClient

from server.config import Settings
from server.store import DuplicateError, Store
from server.store.factory import open_store
from server.store.models import Run, StageState, Usage

MONGODB_URL = os.environ.get("MONGODB_URL") or None


async def _stored_run(store: Store, make: SimpleNamespace, **fields: object) -> Run:
    run: Run = make.run(make.session("ann"), **fields)
    await store.insert_run(run)
    return run


async def test_get_run_scoped_by_user(store: Store, make: SimpleNamespace) -> None:
    run = await _stored_run(store, make)
    assert await store.get_run(run.run_id) == run
    assert await store.get_run(run.run_id, "ann") == run
    assert await store.get_run(run.run_id, "bob") is None
    assert await store.get_run("missing") is None
    with pytest.raises(DuplicateError):
        await store.insert_run(run)


async def test_update_run_dotted_paths_and_models(store: Store, make: SimpleNamespace) -> None:
    run = await _stored_run(store, make)
    now = make.at(5)
    updated = await store.update_run(
        run.run_id,
        {
            "status": "running", "updated_at": now, "generation": 2,
            "stages.0": StageState(name="plan", agent="planner", status="completed", output="p"),
            "stages.1.status": "running", "stages.1.started_at": now.replace(tzinfo=None),
            "stages.1.usage": Usage(prompt_tokens=4, cost_usd=0.5),
            "usage.completion_tokens": 9,
        },
    )  # fmt: skip
    assert updated is not None
    assert updated.status == "running" and updated.updated_at == now and updated.generation == 2
    assert updated.stages[0] == StageState(
        name="plan", agent="planner", status="completed", output="p"
    )
    assert updated.stages[1].status == "running" and updated.stages[1].started_at == now
    assert updated.stages[1].usage == Usage(prompt_tokens=4, cost_usd=0.5)
    assert updated.stages[2] == run.stages[2]
    assert updated.usage == Usage(completion_tokens=9)
    assert await store.get_run(run.run_id) == updated
    assert await store.update_run("missing", {"status": "failed"}) is None


async def test_update_run_expect_failure_writes_nothing(
    store: Store, make: SimpleNamespace
) -> None:
    run = await _stored_run(store, make, status="running", generation=1)
    failing = [
        {"status": "queued"},
        {"status": "running", "generation": 2},
        {"cancel_requested": True},
        {"error": "boom"},
        {"updated_at": run.updated_at + timedelta(milliseconds=1)},
        {"generation": "1"},
        {"usage": {"prompt_tokens": 1, "completion_tokens": 0, "cost_usd": 0.0}},
    ]
    for expect in failing:
        change = {"status": "failed", "stages.0.status": "failed", "error": "x"}
        assert await store.update_run(run.run_id, change, expect=expect) is None, expect
    assert await store.get_run(run.run_id) == run

    matching = {
        "status": "running", "generation": 1, "cancel_requested": False, "error": None,
        "finished_at": None, "updated_at": run.updated_at, "stages.0.status": "pending",
        "usage": Usage(),
    }  # fmt: skip
    ended = await store.update_run(run.run_id, {"status": "completed"}, expect=matching)
    assert ended is not None and ended.status == "completed"


async def test_list_runs_filters_and_order(store: Store, make: SimpleNamespace) -> None:
    one, two = make.session("ann"), make.session("ann")
    specs = [(one, 4, "running"), (one, 1, "queued"), (two, 2, "completed"), (two, 3, "queued")]
    runs = [make.run(session, m, status=status) for session, m, status in specs]
    for run in runs:
        await store.insert_run(run)
    by_update = sorted(runs, key=lambda r: r.updated_at)

    assert await store.list_runs() == by_update
    assert await store.list_runs(limit=2) == by_update[:2]
    assert await store.list_runs(limit=0) == []
    assert await store.list_runs(session_id=one.session_id) == [runs[1], runs[0]]
    active = await store.list_runs(statuses=("queued", "running"))
    assert active == [runs[1], runs[3], runs[0]]
    stale = await store.list_runs(statuses=("queued", "running"), updated_before=make.at(3))
    assert stale == [runs[1]]
    assert await store.list_runs(session_id=two.session_id, statuses=("queued",)) == [runs[3]]
    assert await store.list_runs(statuses=()) == []


async def test_llm_calls_and_usage_summary(store: Store, make: SimpleNamespace) -> None:
    run = make.run(make.session("ann"))
    day2 = make.at(0).replace(hour=23, minute=59, second=59, microsecond=999000)
    calls = [
        make.call(run, day2 + timedelta(milliseconds=1), prompt_tokens=5, cost_usd=0.2),
        make.call(run, make.at(0), prompt_tokens=10, completion_tokens=20, cost_usd=0.1),
        make.call(run, day2, completion_tokens=1, cost_usd=0.2, outcome="error"),
    ]
    for call in calls:
        await store.insert_llm_call(call)
    other = make.run(make.session("bob"))
    await store.insert_llm_call(make.call(other, make.at(0), prompt_tokens=1000, cost_usd=9.0))

    assert await store.list_llm_calls(run.run_id) == [calls[1], calls[2], calls[0]]
    assert await store.list_llm_calls("missing") == []
    summary = await store.usage_summary("ann")
    assert (summary.prompt_tokens, summary.completion_tokens, summary.calls) == (15, 21, 3)
    assert summary.cost_usd == 0.5
    assert [d.model_dump() for d in summary.days] == [
        {"day": "2024-05-02", "prompt_tokens": 5, "completion_tokens": 0, "cost_usd": 0.2,
         "calls": 1},
        {"day": "2024-05-01", "prompt_tokens": 10, "completion_tokens": 21, "cost_usd": 0.3,
         "calls": 2},
    ]  # fmt: skip
    empty = await store.usage_summary("nobody")
    assert empty.model_dump() == {
        "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0, "calls": 0, "days": []
    }  # fmt: skip


async def test_ensure_indexes_is_idempotent(store: Store, make: SimpleNamespace) -> None:
    await store.create_user(make.user("ann@example.test"))
    await store.ensure_indexes()
    await store.ensure_indexes()
    await store.ping()
    assert await store.get_user_by_email("ann@example.test") is not None
    with pytest.raises(DuplicateError):
        await store.create_user(make.user("ann@example.test"))


async def test_open_store_embedded_sqlite(tmp_path: Path, make: SimpleNamespace) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    store = await open_store(settings)
    try:
        assert store.backend == "sqlite"
        await store.ping()
        await store.create_user(make.user())
    finally:
        await store.close()
    assert (tmp_path / "data" / "chorus.sqlite3").is_file()
    reopened = await open_store(settings)
    try:
        assert await reopened.get_user_by_email("ann@example.test") is not None
    finally:
        await reopened.close()


@pytest.mark.skipif(MONGODB_URL is None, reason="MONGODB_URL not set")
async def test_open_store_mongodb(make: SimpleNamespace) -> None:
    assert MONGODB_URL is not None
    name = f"chorus_test_{secrets.token_hex(6)}"
    store = await open_store(Settings(mongodb_url=MONGODB_URL, mongodb_db=name))
    try:
        assert store.backend == "mongo"
        await store.ping()
        await store.create_user(make.user())
        assert await store.get_user_by_email("ann@example.test") is not None
    finally:
        await store.close()
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(MONGODB_URL)
        await client.drop_database(name)
        await client.close()
