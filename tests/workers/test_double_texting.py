"""Double texting: a message sent while the session's run is active is rejected, queued,
interrupts the run or amends it (docs/http-api.md#double-texting).

The app runs without a job loop; the test drives each stage with a StageExecutor built by
the worker's own start-up (real Redis, real store, the demo model through the openai SDK),
so every race is forced by order: a patched hook lands the other party's write at the
exact point the test names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from server import keys
from server.app import create_app
from server.config import ConfigError, Settings
from server.runs.service import RunService
from server.store.models import Message, Run, utcnow
from tests.support.api import User, error_of, make_user
from tests.workers.conftest import Client, session_events
from workers.context import WorkerDeps
from workers.executor import StageExecutor
from workers.observer import StageObserver

SESSIONS = "/api/v1/sessions"


async def _session(app: Client, user: User, **body: Any) -> str:
    resp = await app.post(SESSIONS, json=body, headers=user.auth)
    assert resp.status == 201, await resp.text()
    sid: str = (await resp.json())["session_id"]
    return sid


async def _send(
    app: Client, user: User, sid: str, content: str, policy: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"content": content}
    if policy is not None:
        body["double_texting"] = policy
    resp = await app.post(f"{SESSIONS}/{sid}/messages", json=body, headers=user.auth)
    assert resp.status == 202, await resp.text()
    answer: dict[str, Any] = await resp.json()
    return answer


async def _view(app: Client, user: User, sid: str) -> dict[str, Any]:
    resp = await app.get(f"{SESSIONS}/{sid}", headers=user.auth)
    assert resp.status == 200, await resp.text()
    view: dict[str, Any] = await resp.json()
    return view


async def _drive(worker: WorkerDeps, run_id: str, stages: range = range(3)) -> Run:
    """Execute the run's stages in order, as the worker's jobs would."""
    executor = StageExecutor(worker)
    for index in stages:
        await executor.execute(run_id, index, 0)
    run = await worker.store.get_run(run_id)
    assert run is not None
    return run


def _service(app: Client) -> RunService:
    return app.app[keys.RUN_SERVICE]


def _prompts(worker: WorkerDeps, monkeypatch: pytest.MonkeyPatch) -> list[list[dict[str, str]]]:
    """Record the messages of every stage's model call."""
    seen: list[list[dict[str, str]]] = []
    run = worker.chain.run

    async def recording(agent: Any, messages: list[dict[str, str]], *args: Any, **kw: Any) -> Any:
        seen.append(messages)
        return await run(agent, messages, *args, **kw)

    monkeypatch.setattr(worker.chain, "run", recording)
    return seen


async def _names(app: Client, sid: str) -> list[str]:
    return [e["name"] for e in await session_events(app, sid)]


async def test_enqueued_messages_wait_then_start_one_after_another_in_order(
    app: Client, worker: WorkerDeps
) -> None:
    user = await make_user(app)
    sid = await _session(app, user)
    first = await _send(app, user, sid, "first")
    assert first["outcome"] == "started"
    second = await _send(app, user, sid, "second")  # the server's default: enqueue
    third = await _send(app, user, sid, "third", "enqueue")
    for answer in (second, third):
        assert answer["outcome"] == "queued" and answer["run"] is None
        assert answer["message"]["status"] == "queued"
        assert answer["message"]["double_texting"] == "enqueue"
    view = await _view(app, user, sid)
    queued_ids = [second["message"]["message_id"], third["message"]["message_id"]]
    assert [m["message_id"] for m in view["queued"]] == queued_ids
    assert [m["content"] for m in view["messages"]] == ["first"]  # not in the history yet

    await _drive(worker, first["run"]["run_id"])  # its end starts "second"
    view = await _view(app, user, sid)
    assert view["active_run"]["input_message_id"] == second["message"]["message_id"]
    assert [m["content"] for m in view["queued"]] == ["third"]
    await _drive(worker, view["active_run"]["run_id"])
    view = await _view(app, user, sid)
    assert view["active_run"]["input_message_id"] == third["message"]["message_id"]
    assert view["queued"] == []
    await _drive(worker, view["active_run"]["run_id"])

    view = await _view(app, user, sid)
    assert view["active_run"] is None and view["status"] == "completed"
    assert [(m["role"], m["status"]) for m in view["messages"]] == [
        ("user", "sent"),
        ("assistant", "sent"),
    ] * 3
    assert [m["content"] for m in view["messages"] if m["role"] == "user"] == [
        "first", "second", "third"
    ]  # fmt: skip
    names = await _names(app, sid)
    assert names.count("message.queued") == 2 and names.count("run.completed") == 3
    # "second" starts after the first run's end is announced, with its own message.created.
    completed = names.index("run.completed")
    assert names[completed + 1 : completed + 3] == ["message.created", "run.queued"]


async def test_a_queued_message_is_cancelled_and_never_starts(
    app: Client, worker: WorkerDeps
) -> None:
    user, other = await make_user(app), await make_user(app, "bob")
    sid = await _session(app, user)
    first = await _send(app, user, sid, "first")
    doomed = (await _send(app, user, sid, "doomed"))["message"]["message_id"]
    kept = (await _send(app, user, sid, "kept"))["message"]["message_id"]

    resp = await app.delete(f"{SESSIONS}/{sid}/messages/{doomed}", headers=other.auth)
    assert await error_of(resp) == (404, "not_found")
    resp = await app.delete(f"{SESSIONS}/{sid}/messages/{doomed}", headers=user.auth)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["message"]["status"] == "cancelled"
    resp = await app.delete(f"{SESSIONS}/{sid}/messages/{doomed}", headers=user.auth)
    assert await error_of(resp) == (409, "message_not_queued")
    resp = await app.delete(f"{SESSIONS}/{sid}/messages/nope", headers=user.auth)
    assert await error_of(resp) == (404, "not_found")
    assert [m["message_id"] for m in (await _view(app, user, sid))["queued"]] == [kept]

    await _drive(worker, first["run"]["run_id"])
    view = await _view(app, user, sid)
    assert view["active_run"]["input_message_id"] == kept
    # A message that started cannot be cancelled either.
    resp = await app.delete(f"{SESSIONS}/{sid}/messages/{kept}", headers=user.auth)
    assert await error_of(resp) == (409, "message_not_queued")
    await _drive(worker, view["active_run"]["run_id"])
    contents = [m["content"] for m in (await _view(app, user, sid))["messages"]]
    assert "doomed" not in contents and contents.count("kept") == 1
    assert "message.cancelled" in await _names(app, sid)


@pytest.mark.parametrize("end_lands", ["before the queued write", "after the queued write"])
async def test_enqueue_while_the_active_run_is_being_cancelled(
    app: Client, worker: WorkerDeps, monkeypatch: pytest.MonkeyPatch, end_lands: str
) -> None:
    """The run ends (cancelled: no stage runs, so at once) right before or right after the
    queued message is written. Either way the message starts exactly once: by the sender's
    own check after its write, or by the run's end."""
    user = await make_user(app)
    sid = await _session(app, user)
    first = (await _send(app, user, sid, "first"))["run"]
    service = _service(app)
    insert = service.store.insert_message

    async def cancel_around(message: Message) -> bool:
        if message.status != "queued":
            return await insert(message)
        run = await service.store.get_run(first["run_id"])
        assert run is not None and run.status == "queued"
        if end_lands == "before the queued write":
            await service.request_cancel(run)
            return await insert(message)
        inserted = await insert(message)
        await service.request_cancel(run)
        return inserted

    monkeypatch.setattr(service.store, "insert_message", cancel_around)
    second = await _send(app, user, sid, "second")
    ended = await worker.store.get_run(first["run_id"])
    assert ended is not None and ended.status == "cancelled"
    assert second["outcome"] == "started"  # the answer says so, whoever started it
    assert second["run"]["input_message_id"] == second["message"]["message_id"]
    assert second["message"]["status"] == "sent"
    runs = await worker.store.list_runs(session_id=sid)
    assert sorted(r.input_message_id for r in runs) == sorted(
        [first["input_message_id"], second["message"]["message_id"]]
    )  # one run each: never started twice
    names = await _names(app, sid)
    assert names.count("message.queued") == 1 and names.count("run.queued") == 2
    assert names.index("run.cancelled") < names.index("run.queued", names.index("message.queued"))
    done = await _drive(worker, second["run"]["run_id"])
    assert done.status == "completed"


async def test_interrupt_during_a_stage_first_token(
    app: Client, worker: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first token of the plan has streamed (and is published) when the interrupt
    lands: the run ends cancelled with that text kept, and the new message's run completes."""
    user = await make_user(app)
    sid = await _session(app, user)
    first = (await _send(app, user, sid, "first"))["run"]
    first_token, stop_seen = asyncio.Event(), asyncio.Event()
    on_delta, stop_check = StageObserver.on_delta, StageExecutor._stop_check

    async def pause_after_first(observer: StageObserver, text: str) -> None:
        await on_delta(observer, text)
        if not first_token.is_set():
            await observer.flush()  # the first token is published
            first_token.set()
            await stop_seen.wait()  # the stage goes on once its cancel check has fired

    def watched(
        executor: StageExecutor, run: Run, lease: Any, meter: Any = None
    ) -> Callable[[], Awaitable[bool]]:
        check = stop_check(executor, run, lease, meter)

        async def should_stop() -> bool:
            stop = await check()
            if stop:
                stop_seen.set()
            return stop

        return should_stop

    monkeypatch.setattr(StageObserver, "on_delta", pause_after_first)
    monkeypatch.setattr(StageExecutor, "_stop_check", watched)
    plan = asyncio.create_task(StageExecutor(worker).execute(first["run_id"], 0, 0))
    await first_token.wait()
    interrupting = await _send(app, user, sid, "stop, do this instead", "interrupt")
    assert interrupting["outcome"] == "queued"  # the plan streams: it stops at its next check
    assert interrupting["message"]["double_texting"] == "interrupt"
    await plan

    cancelled = await worker.store.get_run(first["run_id"])
    assert cancelled is not None and cancelled.status == "cancelled"
    assert [s.status for s in cancelled.stages] == ["cancelled"] * 3
    assert cancelled.stages[0].partial  # the text streamed so far is kept
    view = await _view(app, user, sid)
    assert view["active_run"]["input_message_id"] == interrupting["message"]["message_id"]
    done = await _drive(worker, view["active_run"]["run_id"])
    assert done.status == "completed"
    names = await _names(app, sid)
    queued_at = names.index("message.queued")
    assert names[queued_at:].index("run.cancelled") < names[queued_at:].index("message.created")
    contents = [m["content"] for m in (await _view(app, user, sid))["messages"]]
    assert contents[0] == "first" and contents[1] == "stop, do this instead"


async def test_interrupt_jumps_the_queue_and_a_queued_run_ends_at_once(
    app: Client, worker: WorkerDeps
) -> None:
    user = await make_user(app)
    sid = await _session(app, user)
    first = (await _send(app, user, sid, "first"))["run"]
    waiting = await _send(app, user, sid, "waiting")
    # No stage of the first run has started: the cancel ends it here, and its end starts
    # the interrupting message before the one queued earlier.
    urgent = await _send(app, user, sid, "urgent", "interrupt")
    assert urgent["outcome"] == "started"
    assert urgent["run"]["input_message_id"] == urgent["message"]["message_id"]
    ended = await worker.store.get_run(first["run_id"])
    assert ended is not None and ended.status == "cancelled"
    queued = (await _view(app, user, sid))["queued"]
    assert [m["message_id"] for m in queued] == [waiting["message"]["message_id"]]


async def test_amend_reaches_the_stages_that_start_after_it(
    app: Client, worker: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await make_user(app)
    sid = await _session(app, user)
    first = (await _send(app, user, sid, "How do I brew tea?"))["run"]
    prompts = _prompts(worker, monkeypatch)
    await _drive(worker, first["run_id"], range(1))  # the plan is done
    amend = await _send(app, user, sid, "Green tea, please.", "amend")
    assert amend["outcome"] == "amended"
    assert amend["run"]["run_id"] == first["run_id"]
    assert amend["run"]["amendments"] == [amend["message"]["message_id"]]
    assert amend["message"]["run_id"] == first["run_id"]
    done = await _drive(worker, first["run_id"], range(1, 3))

    assert done.status == "completed"
    mid = amend["message"]["message_id"]
    assert [s.amendments for s in done.stages] == [[], [mid], [mid]]
    plan, draft, review = (p[-1]["content"] for p in prompts)
    assert "Green tea" not in plan
    assert "How do I brew tea?" in draft and "Green tea, please." in draft
    assert "Green tea, please." in review
    view = await _view(app, user, sid)
    assert view["active_run"] is None and view["queued"] == []  # nothing more starts
    assert [m["content"] for m in view["messages"]][:2] == ["How do I brew tea?",
                                                           "Green tea, please."]  # fmt: skip
    assert "run.amended" in await _names(app, sid)


async def test_an_amendment_sits_on_the_branch_between_its_message_and_the_answer(
    app: Client, worker: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Branches and amendments together: the amendment follows its run's message, the
    answer follows the amendment the stages read; the next message's history is that
    branch, and the answer can be regenerated (a sibling, the amendment kept)."""
    user = await make_user(app)
    sid = await _session(app, user)
    first = (await _send(app, user, sid, "How do I brew tea?"))["run"]
    await _drive(worker, first["run_id"], range(1))
    amend = await _send(app, user, sid, "Green tea, please.", "amend")
    done = await _drive(worker, first["run_id"], range(1, 3))
    assert done.status == "completed"
    messages = (await _view(app, user, sid))["messages"]
    ids = [m["message_id"] for m in messages]
    assert ids == [first["input_message_id"], amend["message"]["message_id"],
                   done.assistant_message_id]  # fmt: skip
    assert [m["parent_id"] for m in messages] == [None, ids[0], ids[1]]
    assert [len(m["sibling_ids"]) for m in messages] == [1, 1, 1]

    prompts = _prompts(worker, monkeypatch)
    second = (await _send(app, user, sid, "And oolong?"))["run"]
    await _drive(worker, second["run_id"], range(1))
    history = [m["content"] for m in prompts[0][1:-1]]
    assert history[:2] == ["How do I brew tea?", "Green tea, please."]
    # The second run's answer is the tip now: regenerate it.
    await _drive(worker, second["run_id"], range(1, 3))
    resp = await app.post(f"/api/v1/runs/{second['run_id']}/regenerate", headers=user.auth)
    assert resp.status == 202, await resp.text()


async def test_an_amendment_no_stage_saw_is_queued_when_the_run_ends(
    app: Client, worker: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Amended while the last stage runs (right after it started): the run completes
    without it, so it is queued then and starts its own run, never lost."""
    user = await make_user(app)
    sid = await _session(app, user)
    first = (await _send(app, user, sid, "first"))["run"]
    await _drive(worker, first["run_id"], range(2))
    start_stage = worker.runs.start_stage
    amended: list[dict[str, Any]] = []

    async def amend_after_start(run: Run, index: int) -> Run | None:
        started = await start_stage(run, index)
        if not amended:
            amended.append(await _send(app, user, sid, "one more thing", "amend"))
        return started

    monkeypatch.setattr(worker.runs, "start_stage", amend_after_start)
    done = await _drive(worker, first["run_id"], range(2, 3))

    assert done.status == "completed" and amended[0]["outcome"] == "amended"
    mid = amended[0]["message"]["message_id"]
    assert done.amendments == [mid] and done.stages[2].amendments == []
    view = await _view(app, user, sid)
    assert view["active_run"]["input_message_id"] == mid
    names = await _names(app, sid)
    after = names[names.index("run.amended") :]
    assert after[after.index("run.completed") + 1 :][:3] == [
        "message.queued", "message.created", "run.queued"
    ]  # fmt: skip
    second = await _drive(worker, view["active_run"]["run_id"])
    assert second.status == "completed"
    contents = [m["content"] for m in (await _view(app, user, sid))["messages"]]
    assert contents.count("one more thing") == 1


async def test_amend_racing_the_run_end_falls_back_to_the_queue(
    app: Client, worker: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run ends between the amendment's write and its append to the run: the append
    fails on the run's status and the message is queued (and, the session idle, starts)."""
    user = await make_user(app)
    sid = await _session(app, user)
    first = (await _send(app, user, sid, "first"))["run"]
    service = _service(app)
    insert = service.store.insert_message

    async def end_after_insert(message: Message) -> bool:
        inserted = await insert(message)
        if message.double_texting == "amend":
            run = await service.store.get_run(first["run_id"])
            assert run is not None
            await service.request_cancel(run)
        return inserted

    monkeypatch.setattr(service.store, "insert_message", end_after_insert)
    late = await _send(app, user, sid, "late", "amend")
    assert late["outcome"] == "started"
    assert late["run"]["input_message_id"] == late["message"]["message_id"]
    cancelled = await worker.store.get_run(first["run_id"])
    assert cancelled is not None and cancelled.amendments == []


async def test_the_reaper_starts_messages_left_queued_on_an_idle_session(
    app: Client, worker: WorkerDeps
) -> None:
    user = await make_user(app)
    idle, busy = await _session(app, user), await _session(app, user)
    await _send(app, user, busy, "keeps the session busy")
    past = utcnow() - timedelta(seconds=60)
    for sid in (idle, busy):  # as if the process died before a run's end started them
        await worker.store.insert_message(
            Message(session_id=sid, user_id=user.user["user_id"], role="user", content="late",
                    status="queued", double_texting="enqueue", created_at=past)
        )  # fmt: skip
    assert await worker.runs.start_stranded(min_age_s=30) == 1
    view = await _view(app, user, idle)
    assert view["active_run"] is not None and view["queued"] == []
    assert len((await _view(app, user, busy))["queued"]) == 1  # waits for its run
    assert await worker.runs.start_stranded(min_age_s=30) == 0


async def test_policy_of_the_server_the_session_and_the_send(
    app: Client, worker: WorkerDeps
) -> None:
    user = await make_user(app)
    sid = await _session(app, user, double_texting="reject")
    await _send(app, user, sid, "first")
    resp = await app.post(f"{SESSIONS}/{sid}/messages", json={"content": "x"}, headers=user.auth)
    assert await error_of(resp) == (409, "session_busy")
    assert (await _send(app, user, sid, "override", "enqueue"))["outcome"] == "queued"

    patch: Callable[[dict[str, Any]], Awaitable[Any]] = lambda body: app.patch(  # noqa: E731
        f"{SESSIONS}/{sid}", json=body, headers=user.auth
    )
    resp = await patch({"double_texting": "amend"})
    assert resp.status == 200 and (await resp.json())["double_texting"] == "amend"
    assert (await _send(app, user, sid, "amending"))["outcome"] == "amended"
    resp = await patch({"double_texting": None})  # back to the server's default (enqueue)
    assert (await resp.json())["double_texting"] is None
    assert (await _send(app, user, sid, "queued"))["outcome"] == "queued"
    assert (await _view(app, user, sid))["title"] == ""  # only the fields sent change

    for bad in (
        app.post(SESSIONS, json={"double_texting": "later"}, headers=user.auth),
        patch({"double_texting": "later"}),
        app.post(f"{SESSIONS}/{sid}/messages", json={"content": "x", "double_texting": 1},
                 headers=user.auth),
    ):  # fmt: skip
        assert await error_of(await bad) == (422, "invalid_request")


async def test_the_server_default_is_a_setting(aiohttp_client: Any, run_settings: Settings) -> None:
    with pytest.raises(ConfigError, match="DOUBLE_TEXTING"):
        Settings.from_env({"DOUBLE_TEXTING": "later"})
    assert Settings.from_env({}).double_texting == "enqueue"
    assert Settings.from_env({"DOUBLE_TEXTING": "reject"}).double_texting == "reject"
    client = await aiohttp_client(create_app(run_settings.replace(double_texting="reject")))
    user = await make_user(client)
    sid = await _session(client, user)
    await _send(client, user, sid, "first")
    resp = await client.post(f"{SESSIONS}/{sid}/messages", json={"content": "x"},
                             headers=user.auth)  # fmt: skip
    assert await error_of(resp) == (409, "session_busy")
    assert (await _send(client, user, sid, "override", "enqueue"))["outcome"] == "queued"
