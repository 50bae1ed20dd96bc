"""Stage checkpoints and run endings are conditional on the run's generation: a worker
taken over (a zombie) writes nothing. Driven through the app's RunService, no worker."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.runs.service import RunService
from server.store.models import Message, Run, Usage
from tests.support.api import make_user
from tests.workers.conftest import session_events, start_run

Client = TestClient[Any, web.Application]


async def _queued(client: Client) -> tuple[RunService, Run]:
    """A fresh run of the default pipeline (three stages), queued; no worker takes it."""
    runs = client.app[keys.RUN_SERVICE]
    sent = await start_run(client, await make_user(client))
    run = await runs.store.get_run(sent["run"]["run_id"])
    assert run is not None
    return runs, run


async def test_a_stage_of_an_outdated_generation_is_not_checkpointed(client: Client) -> None:
    runs, run = await _queued(client)
    started = await runs.start_stage(run, 0)  # a worker started plan ...
    assert started is not None
    assert await runs.take_over(run.run_id, 0, 0, "test")  # ... and was taken over
    assert await runs.complete_stage(started, 0, "late", "demo", Usage(prompt_tokens=1)) is None
    stored = await runs.store.get_run(run.run_id)
    assert stored is not None and stored.generation == 1
    assert stored.stages[0].status == "running" and stored.stages[0].output is None
    assert stored.usage == Usage()
    names = [e["name"] for e in await session_events(client, run.session_id)]
    assert "stage.completed" not in names


async def test_an_outdated_generation_does_not_end_the_run(client: Client) -> None:
    runs, run = await _queued(client)
    for index in range(3):  # every stage checkpointed ...
        started = await runs.start_stage(run, index)
        assert started is not None
        completed = await runs.complete_stage(started, index, f"out {index}", "demo", Usage())
        assert completed is not None
        run = completed
    assert await runs.take_over(run.run_id, 0, 2, "test")  # ... but the answer was not written
    answer = Message(
        message_id=run.assistant_message_id or "", session_id=run.session_id,
        user_id=run.user_id, role="assistant", content="out 2", run_id=run.run_id,
    )  # fmt: skip
    assert await runs.complete(run, answer) is None  # the old generation's late ending
    stored = await runs.store.get_run(run.run_id)
    assert stored is not None and (stored.status, stored.generation) == ("running", 1)
    await runs.advance(stored, 2)  # the new generation finds the stage done and ends the run
    ended = await runs.store.get_run(run.run_id)
    assert ended is not None and ended.status == "completed"
    names = [e["name"] for e in await session_events(client, run.session_id)]
    assert names.count("run.completed") == 1


async def test_a_checkpoint_stores_and_announces_the_output_and_adds_up_the_usage(
    client: Client,
) -> None:
    runs, run = await _queued(client)
    first, second = (
        Usage(prompt_tokens=3, completion_tokens=5, cost_usd=0.25),
        Usage(prompt_tokens=1, completion_tokens=2, cost_usd=0.5),
    )
    for index, usage in enumerate((first, second)):
        started = await runs.start_stage(run, index)
        assert started is not None
        completed = await runs.complete_stage(started, index, f"out {index}", "m", usage)
        assert completed is not None
        run = completed
    stored = await runs.store.get_run(run.run_id)
    assert stored is not None and stored.usage == first.plus(second)
    assert [(s.status, s.output, s.model, s.usage) for s in stored.stages[:2]] == [
        ("completed", "out 0", "m", first), ("completed", "out 1", "m", second),
    ]  # fmt: skip
    assert all(s.finished_at is not None for s in stored.stages[:2])
    events = await session_events(client, run.session_id)
    announced = [e["data"] for e in events if e["name"] == "stage.completed"]
    assert announced == [
        {"stage": "plan", "index": 0, "output": "out 0", "model": "m",
         "usage": first.model_dump(mode="json")},
        {"stage": "draft", "index": 1, "output": "out 1", "model": "m",
         "usage": second.model_dump(mode="json")},
    ]  # fmt: skip
