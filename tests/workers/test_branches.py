"""Branches end to end (real Redis, the store, the demo model through the openai SDK, a
worker): regenerate, edit and resend, select a branch, re-run one stage with another
model; the branch's history in the prompt; consistency after failures and deletes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server import keys
from server.store.base import Store
from server.store.models import Message, Run
from tests.server.ws.conftest import Ws
from tests.support.api import User, error_of, make_user
from tests.workers.conftest import Client, session_events, start_run, wait_run
from workers.context import WorkerDeps
from workers.executor import StageExecutor


async def _send(client: Client, user: User, sid: str, content: str, **extra: Any) -> Any:
    resp = await client.post(
        f"/api/v1/sessions/{sid}/messages", json={"content": content, **extra}, headers=user.auth
    )
    assert resp.status == 202, await resp.text()
    body = await resp.json()
    await wait_run(client, user.auth, body["run"]["run_id"])
    return body


async def _branch(client: Client, user: User, sid: str, head: str | None = None) -> Any:
    query = f"?head={head}" if head else ""
    resp = await client.get(f"/api/v1/sessions/{sid}/messages{query}", headers=user.auth)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["items"]


async def _conversation(client: Client, user: User) -> tuple[str, dict[str, Any]]:
    """A session with one answered message: (session id, its run as it ended)."""
    sent = await start_run(client, user, "How do I brew green tea?")
    run = await wait_run(client, user.auth, sent["run"]["run_id"])
    assert run["status"] == "completed"
    return sent["message"]["session_id"], run


async def _assert_consistent(store: Store, user: User, sid: str) -> None:
    """Every run's input message exists; every parent and edited message exists."""
    links = {link.message_id: link for link in await store.list_message_links(
        user.user["user_id"], sid)}  # fmt: skip
    for run in await store.list_runs(session_id=sid):
        assert run.input_message_id in links, f"run {run.run_id} has no input message"
    for link in links.values():
        assert link.parent_id is None or link.parent_id in links
        assert link.edit_of is None or link.edit_of in links


async def test_regenerate_answers_again_as_a_sibling_and_both_branches_stay_readable(
    stack: Client,
) -> None:
    user = await make_user(stack)
    sid, first = await _conversation(stack, user)

    resp = await stack.post(f"/api/v1/runs/{first['run_id']}/regenerate", headers=user.auth)
    assert resp.status == 202, await resp.text()
    second = (await resp.json())["run"]
    assert second["run_id"] != first["run_id"]
    assert second["input_message_id"] == first["input_message_id"]
    assert (await wait_run(stack, user.auth, second["run_id"]))["status"] == "completed"

    old_answer, new_answer = first["assistant_message_id"], second["assistant_message_id"]
    branch = await _branch(stack, user, sid)
    assert [m["message_id"] for m in branch] == [first["input_message_id"], new_answer]
    assert branch[1]["parent_id"] == first["input_message_id"]
    assert branch[1]["sibling_ids"] == [old_answer, new_answer]
    assert branch[1]["sibling_index"] == 1
    assert branch[0]["sibling_ids"] == [first["input_message_id"]]
    # The old answer stays readable, through ?head= or by selecting its branch.
    old = await _branch(stack, user, sid, head=old_answer)
    assert [m["message_id"] for m in old] == [first["input_message_id"], old_answer]
    assert old[1]["sibling_index"] == 0
    resp = await stack.put(
        f"/api/v1/sessions/{sid}/head", json={"message_id": old_answer}, headers=user.auth
    )
    assert resp.status == 200 and (await resp.json())["head_message_id"] == old_answer
    detail = await (await stack.get(f"/api/v1/sessions/{sid}", headers=user.auth)).json()
    assert [m["message_id"] for m in detail["messages"]] == [first["input_message_id"], old_answer]
    heads = [e["data"] for e in await session_events(stack, sid) if e["name"] == "branch.selected"]
    assert heads == [
        {"head_message_id": first["input_message_id"]},
        {"head_message_id": old_answer},
    ]
    await _assert_consistent(stack.app[keys.STORE], user, sid)


async def test_regenerate_with_another_pipeline_and_its_refusals(stack: Client) -> None:
    user = await make_user(stack)
    sid, first = await _conversation(stack, user)
    regenerate = f"/api/v1/runs/{first['run_id']}/regenerate"
    assert await error_of(
        await stack.post(regenerate, json={"pipeline": "nope"}, headers=user.auth)
    ) == (422, "invalid_request")  # fmt: skip

    resp = await stack.post(regenerate, json={"pipeline": "chat"}, headers=user.auth)
    assert resp.status == 202, await resp.text()
    second = (await resp.json())["run"]
    assert second["pipeline"] == "chat" and len(second["stages"]) == 1
    # While it runs, nothing else starts.
    assert await error_of(await stack.post(regenerate, headers=user.auth)) == (409, "session_busy")
    await wait_run(stack, user.auth, second["run_id"])
    # The first answer is no longer the tip of the selected branch.
    assert await error_of(await stack.post(regenerate, headers=user.auth)) == (409, "not_latest")
    session = await (await stack.get(f"/api/v1/sessions/{sid}", headers=user.auth)).json()
    assert session["pipeline"] == "default"  # the session keeps its own
    other = await make_user(stack, "bob")
    assert await error_of(await stack.post(regenerate, headers=other.auth)) == (404, "not_found")


async def test_an_edit_forks_at_the_message_and_the_old_branch_stays_readable(
    stack: Client,
) -> None:
    user = await make_user(stack)
    sid, first = await _conversation(stack, user)
    second = await _send(stack, user, sid, "And oolong?")
    edited = await _send(
        stack, user, sid, "And black tea?", edit_of=second["message"]["message_id"]
    )
    message = edited["message"]
    assert message["edit_of"] == second["message"]["message_id"]
    assert message["parent_id"] == first["assistant_message_id"]
    run = await wait_run(stack, user.auth, edited["run"]["run_id"])
    assert run["status"] == "completed"

    branch = await _branch(stack, user, sid)
    assert [m["content"] for m in branch][::2] == [
        "How do I brew green tea?", "And black tea?"
    ]  # fmt: skip
    assert branch[2]["sibling_ids"] == [second["message"]["message_id"], message["message_id"]]
    assert branch[3]["message_id"] == run["assistant_message_id"]
    old = await _branch(stack, user, sid, head=second["message"]["message_id"])
    assert [m["content"] for m in old][::2] == ["How do I brew green tea?", "And oolong?"]
    assert len(old) == 4  # the old branch keeps its answer
    # A message sent now continues the selected (edited) branch.
    third = await _send(stack, user, sid, "Thanks")
    assert third["message"]["parent_id"] == run["assistant_message_id"]
    await _assert_consistent(stack.app[keys.STORE], user, sid)


async def test_an_edit_of_the_first_message_is_a_first_message_too(stack: Client) -> None:
    user = await make_user(stack)
    sid, first = await _conversation(stack, user)
    edited = await _send(stack, user, sid, "How do I brew coffee?",
                         edit_of=first["input_message_id"])  # fmt: skip
    branch = await _branch(stack, user, sid)
    assert branch[0]["message_id"] == edited["message"]["message_id"]
    assert branch[0]["parent_id"] is None
    assert branch[0]["sibling_ids"] == [first["input_message_id"], edited["message"]["message_id"]]
    assert len(branch) == 2
    old = await _branch(stack, user, sid, head=first["input_message_id"])
    assert [m["message_id"] for m in old] == [
        first["input_message_id"], first["assistant_message_id"]
    ]  # fmt: skip


async def test_an_edit_of_an_unknown_or_assistant_message_is_refused(stack: Client) -> None:
    user = await make_user(stack)
    sid, first = await _conversation(stack, user)
    for target in (first["assistant_message_id"], "nope"):
        resp = await stack.post(
            f"/api/v1/sessions/{sid}/messages", json={"content": "x", "edit_of": target},
            headers=user.auth,
        )  # fmt: skip
        assert await error_of(resp) == (422, "invalid_request")
    assert len(await stack.app[keys.STORE].list_runs(session_id=sid)) == 1
    resp = await stack.put(
        f"/api/v1/sessions/{sid}/head", json={"message_id": "nope"}, headers=user.auth
    )
    assert await error_of(resp) == (404, "not_found")


async def test_rerun_a_stage_with_another_model_keeps_its_versions(stack: Client) -> None:
    user = await make_user(stack)
    sid, first = await _conversation(stack, user)
    resp = await stack.post(
        f"/api/v1/runs/{first['run_id']}/stages/1/rerun", json={"model": "demo-backup"},
        headers=user.auth,
    )  # fmt: skip
    assert resp.status == 202, await resp.text()
    queued = (await resp.json())["run"]
    assert queued["generation"] == first["generation"] + 1
    assert [s["status"] for s in queued["stages"]] == ["completed", "pending", "pending"]
    assert queued["stages"][1]["model_override"] == "demo-backup"

    run = await wait_run(stack, user.auth, first["run_id"])
    assert run["status"] == "completed"
    plan, draft, review = run["stages"]
    assert plan["output"] == first["stages"][0]["output"] and plan["versions"] == []
    assert draft["model"] == "demo-backup" and draft["attempts"] == 1
    assert [v["model"] for v in draft["versions"]] == ["demo"]
    assert draft["versions"][0]["output"] == first["stages"][1]["output"]
    assert draft["versions"][0]["assistant_message_id"] == first["assistant_message_id"]
    assert review["model"] == "demo" and review["model_override"] is None
    assert review["versions"][0]["output"] == first["stages"][2]["output"]
    # The run's new answer is a sibling of its previous one.
    assert run["assistant_message_id"] != first["assistant_message_id"]
    branch = await _branch(stack, user, sid)
    assert branch[-1]["message_id"] == run["assistant_message_id"]
    assert branch[-1]["content"] == review["output"]
    assert branch[-1]["sibling_ids"] == [first["assistant_message_id"], run["assistant_message_id"]]
    calls = await stack.app[keys.STORE].list_llm_calls(first["run_id"])
    assert [c.model for c in calls][-2:] == ["demo-backup", "demo"]
    await _assert_consistent(stack.app[keys.STORE], user, sid)


async def test_rerun_refusals(stack: Client) -> None:
    user = await make_user(stack)
    _sid, first = await _conversation(stack, user)
    base = f"/api/v1/runs/{first['run_id']}/stages"
    assert await error_of(
        await stack.post(f"{base}/0/rerun", json={"model": "gpt-nope"}, headers=user.auth)
    ) == (400, "unknown_model")  # fmt: skip
    assert await error_of(await stack.post(f"{base}/3/rerun", headers=user.auth)) == (
        404, "not_found"
    )  # fmt: skip
    resp = await stack.post(f"{base}/2/rerun", headers=user.auth)  # no body: the agent's chain
    assert resp.status == 202
    assert await error_of(await stack.post(f"{base}/2/rerun", headers=user.auth)) == (
        409, "session_busy"
    )  # fmt: skip
    run = await wait_run(stack, user.auth, first["run_id"])
    assert run["stages"][2]["model"] == "demo" and len(run["stages"][2]["versions"]) == 1


async def test_the_prompt_holds_the_runs_branch_only(app: Client, worker: WorkerDeps) -> None:
    user = await make_user(app)
    store = worker.store
    sent = await start_run(app, user, "first question")
    sid, uid = sent["message"]["session_id"], user.user["user_id"]
    first = sent["message"]["message_id"]

    def message(role: str, content: str, **fields: Any) -> Message:
        return Message(session_id=sid, user_id=uid, role=role, content=content, **fields)

    # first → answer → old follow-up → old answer; the follow-up edited: first → answer → new.
    answer = message("assistant", "first answer", parent_id=first)
    old = message("user", "old follow-up", parent_id=answer.message_id)
    old_answer = message("assistant", "old answer", parent_id=old.message_id)
    new = message("user", "new follow-up", parent_id=answer.message_id, edit_of=old.message_id)
    for m in (answer, old, old_answer, new):
        assert await store.insert_message(m)
    run = await store.get_run(sent["run"]["run_id"])
    assert run is not None
    prompt = await StageExecutor(worker)._prompt(
        run.model_copy(update={"input_message_id": new.message_id}), 0
    )
    contents = [m["content"] for m in prompt[1:]]
    assert contents == ["first question", "first answer", "new follow-up"]


async def test_branch_consistency_after_delete(stack: Client) -> None:
    user = await make_user(stack)
    sid, first = await _conversation(stack, user)
    resp = await stack.post(f"/api/v1/runs/{first['run_id']}/regenerate", headers=user.auth)
    await wait_run(stack, user.auth, (await resp.json())["run"]["run_id"])
    await _send(stack, user, sid, "Hotter?", edit_of=first["input_message_id"])
    resp = await stack.post(f"/api/v1/runs/{first['run_id']}/stages/2/rerun", headers=user.auth)
    assert resp.status == 202
    await wait_run(stack, user.auth, first["run_id"])
    store = stack.app[keys.STORE]
    assert len(await store.list_runs(session_id=sid)) == 3
    assert len(await store.list_message_links(user.user["user_id"], sid)) == 6

    assert (await stack.delete(f"/api/v1/sessions/{sid}", headers=user.auth)).status == 204
    assert await store.list_runs(session_id=sid) == []
    assert await store.list_message_links(user.user["user_id"], sid) == []


@pytest.mark.parametrize("failing", ["insert_message", "insert_run"])
async def test_a_store_failure_midway_leaves_no_orphan_run_and_the_branch_as_it_was(
    stack: Client, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    user = await make_user(stack)
    sid, first = await _conversation(stack, user)
    store = stack.app[keys.STORE]
    before = await store.get_session(user.user["user_id"], sid)
    assert before is not None and before.head_message_id == first["assistant_message_id"]

    async def broken(*_args: Any) -> None:
        raise RuntimeError("the store failed")

    monkeypatch.setattr(store, failing, broken)
    edit = stack.post(f"/api/v1/sessions/{sid}/messages", headers=user.auth,
                      json={"content": "x", "edit_of": first["input_message_id"]})  # fmt: skip
    assert (await edit).status == 500
    if failing == "insert_run":
        regenerate = stack.post(f"/api/v1/runs/{first['run_id']}/regenerate", headers=user.auth)
        assert (await regenerate).status == 500
    monkeypatch.undo()

    after = await store.get_session(user.user["user_id"], sid)
    assert after is not None and after.active_run_id is None
    assert after.head_message_id == first["assistant_message_id"]
    assert [r.run_id for r in await store.list_runs(session_id=sid)] == [first["run_id"]]
    await _assert_consistent(store, user, sid)
    assert len(await store.list_message_links(user.user["user_id"], sid)) == 2
    assert [m["message_id"] for m in await _branch(stack, user, sid)] == [
        first["input_message_id"], first["assistant_message_id"]
    ]  # fmt: skip


async def test_a_rerun_losing_the_race_for_the_run_undoes_its_claim(
    app: Client, worker: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await make_user(app)
    sent = await start_run(app, user)
    sid, run_id = sent["message"]["session_id"], sent["run"]["run_id"]
    for index in range(3):
        await StageExecutor(worker).execute(run_id, index, 0)
    store = app.app[keys.STORE]
    done = await store.get_run(run_id)
    assert done is not None and done.status == "completed"
    real_update = store.update_run

    async def changed_meanwhile(rid: str, fields: dict[str, Any], **kw: Any) -> Run | None:
        # Another command moved the run on between the rerun's read and its write.
        await real_update(rid, {"generation": done.generation + 5})
        return await real_update(rid, fields, **kw)

    monkeypatch.setattr(store, "update_run", changed_meanwhile)
    resp = await app.post(f"/api/v1/runs/{run_id}/stages/0/rerun", headers=user.auth)
    assert await error_of(resp) == (409, "session_busy")
    monkeypatch.undo()
    session = await store.get_session(user.user["user_id"], sid)
    assert session is not None and session.active_run_id is None
    assert session.head_message_id == done.assistant_message_id


async def test_websocket_commands_regenerate_rerun_edit_and_select(stack: Client) -> None:
    tools = Ws(stack)
    user = await make_user(stack)
    sid, first = await _conversation(stack, user)
    ws = await tools.connect(user)

    reply = await tools.call(ws, {"id": 1, "type": "regenerate", "run_id": first["run_id"]})
    assert reply["ok"] is True, reply
    second = reply["data"]["run"]
    assert second["input_message_id"] == first["input_message_id"]
    await wait_run(stack, user.auth, second["run_id"])

    frame = {"id": 2, "type": "rerun_stage", "run_id": second["run_id"], "index": 0,
             "model": "demo-backup"}  # fmt: skip
    reply = await tools.call(ws, frame)
    assert (
        reply["ok"] is True and reply["data"]["run"]["stages"][0]["model_override"] == "demo-backup"
    )
    rerun = await wait_run(stack, user.auth, second["run_id"])
    assert rerun["stages"][0]["model"] == "demo-backup" and rerun["stages"][0]["versions"]

    reply = await tools.call(ws, {"id": 3, "type": "rerun_stage", "run_id": second["run_id"],
                                  "index": 0, "model": "nope"})  # fmt: skip
    assert reply["error"]["code"] == "unknown_model"
    reply = await tools.call(ws, {"id": 4, "type": "regenerate", "run_id": first["run_id"]})
    assert reply["error"]["code"] == "not_latest"

    frame = {"id": 5, "type": "select_branch", "session_id": sid,
             "message_id": first["assistant_message_id"]}  # fmt: skip
    reply = await tools.call(ws, frame)
    assert reply["data"]["session"]["head_message_id"] == first["assistant_message_id"]
    answers = (await _branch(stack, user, sid))[1]["sibling_ids"]
    assert answers[0] == first["assistant_message_id"] and len(answers) == 3

    frame = {"id": 6, "type": "send", "session_id": sid, "content": "Cold brew?",
             "edit_of": first["input_message_id"]}  # fmt: skip
    reply = await tools.call(ws, frame)
    assert reply["data"]["message"]["edit_of"] == first["input_message_id"]
    await wait_run(stack, user.auth, reply["data"]["run"]["run_id"])
    assert (await _branch(stack, user, sid))[0]["content"] == "Cold brew?"
    await ws.close()


async def test_a_rerun_model_is_used_alone_with_its_retries_and_a_retry_keeps_the_versions(
    stack: Client,
) -> None:
    user = await make_user(stack)
    # The backup model fails every call in this conversation; the chain's first model answers.
    sent = await start_run(stack, user, "Green tea? [[fail:500@chorus-demo-backup]]")
    first = await wait_run(stack, user.auth, sent["run"]["run_id"])
    assert first["status"] == "completed" and first["stages"][1]["model"] == "demo"
    run_id = first["run_id"]

    resp = await stack.post(f"/api/v1/runs/{run_id}/stages/1/rerun", json={"model": "demo-backup"},
                            headers=user.auth)  # fmt: skip
    assert resp.status == 202
    failed = await wait_run(stack, user.auth, run_id)
    assert failed["status"] == "failed"  # no fallback to the chain's other model
    draft = failed["stages"][1]
    assert draft["status"] == "failed" and "demo-backup" in draft["error"]
    calls = [c for c in await stack.app[keys.STORE].list_llm_calls(run_id) if c.stage == "draft"]
    assert calls[0].model == "demo"  # the first answer
    retries = [c.model for c in calls[1:]]
    assert retries == ["demo-backup"] * len(retries) and len(retries) > 1  # its own retries

    resp = await stack.post(f"/api/v1/runs/{run_id}/retry", headers=user.auth)
    assert resp.status == 202
    retried = (await resp.json())["run"]["stages"][1]
    assert retried["model_override"] == "demo-backup" and len(retried["versions"]) == 1
    assert (await wait_run(stack, user.auth, run_id))["status"] == "failed"

    resp = await stack.post(f"/api/v1/runs/{run_id}/stages/1/rerun", headers=user.auth)
    done = await wait_run(stack, user.auth, run_id)
    assert done["status"] == "completed"
    assert [(v["status"], v["model"]) for v in done["stages"][1]["versions"]] == [
        ("completed", "demo"), ("failed", None)
    ]  # fmt: skip
    assert done["stages"][1]["model"] == "demo" and done["stages"][1]["model_override"] is None


async def test_a_session_stored_before_branches_reads_and_continues_as_one_line(
    app: Client, worker: WorkerDeps
) -> None:
    user = await make_user(app)
    resp = await app.post("/api/v1/sessions", json={}, headers=user.auth)
    sid, uid = (await resp.json())["session_id"], user.user["user_id"]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    old = [
        Message(session_id=sid, user_id=uid, role=role, content=text,
                created_at=start + timedelta(seconds=i))  # no parent_id: stored before branches
        for i, (role, text) in enumerate([("user", "old question"), ("assistant", "old answer")])
    ]  # fmt: skip
    for message in old:
        assert await worker.store.insert_message(message)

    sent = await app.post(f"/api/v1/sessions/{sid}/messages", json={"content": "new question"},
                          headers=user.auth)  # fmt: skip
    body = await sent.json()
    assert body["message"]["parent_id"] == old[1].message_id  # the newest message so far
    branch = await _branch(app, user, sid)
    assert [m["content"] for m in branch] == ["old question", "old answer", "new question"]
    assert [m["parent_id"] for m in branch] == [None, old[0].message_id, old[1].message_id]
    run = await worker.store.get_run(body["run"]["run_id"])
    assert run is not None
    prompt = await StageExecutor(worker)._prompt(run, 0)
    assert [m["content"] for m in prompt[1:]] == ["old question", "old answer", "new question"]
