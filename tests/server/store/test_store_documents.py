"""Store contract, part 1: users, sessions, messages, round-trips, operator-like data."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from server.store.base import DuplicateError, Store
from server.store.models import ChatSession, LlmCall, StageState, Usage


async def test_users_get_and_duplicate_email(store: Store, make: SimpleNamespace) -> None:
    ann = make.user("ann@example.test", name="Ann")
    await store.create_user(ann)
    assert await store.get_user(ann.user_id) == ann
    assert await store.get_user_by_email("ann@example.test") == ann
    assert await store.get_user("nobody") is None
    assert await store.get_user_by_email("bob@example.test") is None
    with pytest.raises(DuplicateError):
        await store.create_user(make.user("ann@example.test"))
    with pytest.raises(DuplicateError):
        await store.create_user(make.user("other@example.test", user_id=ann.user_id))
    assert await store.get_user_by_email("other@example.test") is None


async def test_documents_round_trip_at_ms_precision(store: Store, make: SimpleNamespace) -> None:
    precise = datetime(2024, 5, 1, 23, 59, 59, 123456, tzinfo=UTC)
    user = make.user(created_at=precise, updated_at=precise.replace(tzinfo=None), disabled=True)
    await store.create_user(user)
    session = make.session(user.user_id, title="Tést ✓", status="running")
    await store.create_session(session)
    message = make.message(session, 1, content="**bold**", content_html="<b>bold</b>")
    await store.insert_message(message)
    run = make.run(session, finished_at=precise, usage=Usage(prompt_tokens=3, cost_usd=0.1))
    run.stages[0] = StageState(
        name="plan", agent="planner", status="completed", output="o", model="m", attempts=2,
        usage=Usage(prompt_tokens=1, completion_tokens=2, cost_usd=0.25),
        started_at=precise, finished_at=precise + timedelta(seconds=1),
    )  # fmt: skip
    await store.insert_run(run)
    call: LlmCall = make.call(run, precise, ttft_ms=1.5, error="e", status_code=500)
    await store.insert_llm_call(call)

    loaded_user = await store.get_user(user.user_id)
    assert loaded_user == user
    assert loaded_user is not None
    for stamp in (loaded_user.created_at, loaded_user.updated_at):
        assert stamp.microsecond == 123000
        assert stamp.utcoffset() == timedelta(0)
    assert await store.get_session(user.user_id, session.session_id) == session
    assert await store.list_messages(user.user_id, session.session_id, limit=5) == [message]
    loaded_run = await store.get_run(run.run_id)
    assert loaded_run == run
    assert loaded_run is not None and loaded_run.stages[0].started_at == precise.replace(
        microsecond=123000
    )
    assert await store.list_llm_calls(run.run_id) == [call]


async def test_sessions_are_scoped_to_their_user(store: Store, make: SimpleNamespace) -> None:
    mine = make.session("ann", title="mine")
    await store.create_session(mine)
    assert await store.get_session("bob", mine.session_id) is None
    assert await store.update_session("bob", mine.session_id, {"title": "stolen"}) is None
    assert await store.delete_session("bob", mine.session_id) is False
    assert await store.list_sessions("bob", status=None, limit=10, skip=0) == ([], 0)
    assert await store.get_session("ann", mine.session_id) == mine
    renamed = await store.update_session("ann", mine.session_id, {"title": "renamed"})
    assert renamed is not None and renamed.title == "renamed"
    assert await store.update_session("ann", "missing", {"title": "x"}) is None


async def test_list_sessions_pages_newest_first_with_exact_totals(
    store: Store, make: SimpleNamespace
) -> None:
    statuses = ["idle", "completed", "idle", "failed", "idle", "idle", "completed", "idle"]
    minutes = [5, 1, 3, 3, 3, 9, 0, 7]  # ties at minute 3
    sessions = [make.session("ann", m, status=s) for m, s in zip(minutes, statuses, strict=True)]
    for session in sessions:
        await store.create_session(session)
    await store.create_session(make.session("bob", 4))
    expected = sorted(sessions, key=lambda s: (s.started_at, s.session_id), reverse=True)

    pages = [await store.list_sessions("ann", status=None, limit=3, skip=k) for k in (0, 3, 6)]
    assert [total for _, total in pages] == [8, 8, 8]
    assert [s for page, _ in pages for s in page] == expected
    assert [len(page) for page, _ in pages] == [3, 3, 2]

    idle = [s for s in expected if s.status == "idle"]
    first, total = await store.list_sessions("ann", status="idle", limit=2, skip=0)
    second, _ = await store.list_sessions("ann", status="idle", limit=2, skip=2)
    third, _ = await store.list_sessions("ann", status="idle", limit=2, skip=4)
    assert total == 5
    assert first + second + third == idle
    assert await store.list_sessions("ann", status="idle", limit=5, skip=10) == ([], 5)
    assert await store.list_sessions("ann", status="idle", limit=0, skip=0) == ([], 5)
    assert await store.list_sessions("ann", status="running", limit=5, skip=0) == ([], 0)


async def test_update_session_expect_claims_once(store: Store, make: SimpleNamespace) -> None:
    session = make.session("ann")
    await store.create_session(session)

    async def claim(run_id: str) -> ChatSession | None:
        return await store.update_session(
            "ann", session.session_id, {"active_run_id": run_id, "status": "queued"},
            expect={"active_run_id": None},
        )  # fmt: skip

    results = await asyncio.gather(*(claim(f"run{i}") for i in range(10)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    stored = await store.get_session("ann", session.session_id)
    assert stored == winners[0]
    assert stored is not None and stored.status == "queued"
    released = await store.update_session(
        "ann", session.session_id, {"active_run_id": None}, expect={"nothing_here": None}
    )
    assert released is not None and released.active_run_id is None
    unchanged = await store.update_session("ann", session.session_id, {}, expect={"status": "idle"})
    assert unchanged is None


async def test_delete_session_cascades_but_keeps_llm_calls(
    store: Store, make: SimpleNamespace
) -> None:
    doomed, kept = make.session("ann"), make.session("ann", 1)
    for session in (doomed, kept):
        await store.create_session(session)
        await store.insert_message(make.message(session, 1))
        run = make.run(session)
        await store.insert_run(run)
        await store.insert_llm_call(make.call(run, make.at(2)))
    doomed_runs = await store.list_runs(session_id=doomed.session_id)

    assert await store.delete_session("ann", doomed.session_id) is True
    assert await store.get_session("ann", doomed.session_id) is None
    assert await store.list_messages("ann", doomed.session_id, limit=10) == []
    assert await store.list_runs(session_id=doomed.session_id) == []
    assert await store.get_run(doomed_runs[0].run_id) is None
    assert len(await store.list_llm_calls(doomed_runs[0].run_id)) == 1
    assert len(await store.list_messages("ann", kept.session_id, limit=10)) == 1
    assert len(await store.list_runs(session_id=kept.session_id)) == 1
    assert await store.delete_session("ann", doomed.session_id) is False


async def test_insert_message_is_idempotent(store: Store, make: SimpleNamespace) -> None:
    session = make.session("ann")
    first = make.message(session, 1, content="first")
    assert await store.insert_message(first) is True
    again = first.model_copy(update={"content": "second"})
    assert await store.insert_message(again) is False
    assert await store.list_messages("ann", session.session_id, limit=10) == [first]


async def test_list_messages_before_and_limit_oldest_first(
    store: Store, make: SimpleNamespace
) -> None:
    session = make.session("ann")
    messages = [make.message(session, m, content=f"m{m}") for m in (3, 0, 4, 1, 2)]
    for message in messages:
        await store.insert_message(message)
    await store.insert_message(make.message(make.session("ann"), 9))
    ordered = sorted(messages, key=lambda m: m.created_at)

    assert await store.list_messages("ann", session.session_id, limit=3) == ordered[2:]
    assert await store.list_messages("ann", session.session_id, limit=10) == ordered
    before = make.at(2)
    assert (
        await store.list_messages("ann", session.session_id, limit=10, before=before)
        == (ordered[:2])
    )
    assert (
        await store.list_messages("ann", session.session_id, limit=1, before=before)
        == (ordered[1:2])
    )
    assert await store.list_messages("ann", session.session_id, limit=0) == []
    assert await store.list_messages("bob", session.session_id, limit=10) == []


async def test_operator_like_values_are_stored_as_data(store: Store, make: SimpleNamespace) -> None:
    await store.create_user(make.user("ann@example.test"))
    assert await store.get_user_by_email('{"$gt": ""}') is None
    session = make.session("ann", title='{"$ne": null}')
    await store.create_session(session)
    assert await store.get_session("ann", session.session_id) == session
    assert await store.get_session("ann", '{"$ne": null}') is None
    assert await store.list_sessions("ann", status='{"$ne": null}', limit=5, skip=0) == ([], 0)
    message = make.message(session, 1, content='{"$gt": ""}', content_html="$where")
    await store.insert_message(message)
    assert await store.list_messages("ann", session.session_id, limit=5) == [message]

    # Dict values in ``expect`` are compared as literal documents, never as operators.
    for operator in ({"$ne": None}, {"$exists": True}, {"$gt": ""}):
        assert await store.update_session(
            "ann", session.session_id, {"title": "x"}, expect={"title": operator}
        ) is None  # fmt: skip
    injected = '{"$set": {"status": "failed"}}'
    retitled = await store.update_session("ann", session.session_id, {"title": injected})
    assert retitled is not None and retitled.title == injected and retitled.status == "idle"


@pytest.mark.parametrize("path", ["$set", "title.$", "a..b", "_id", "", "0", "stages.$.status"])
async def test_invalid_field_paths_are_refused(
    store: Store, make: SimpleNamespace, path: str
) -> None:
    session = make.session("ann")
    await store.create_session(session)
    with pytest.raises(ValueError, match="invalid field path"):
        await store.update_session("ann", session.session_id, {path: "x"})
    with pytest.raises(ValueError, match="invalid field path"):
        await store.update_session("ann", session.session_id, {}, expect={path: "x"})
    assert await store.get_session("ann", session.session_id) == session


async def test_the_message_cursor_pages_through_equal_timestamps(
    store: Store, make: SimpleNamespace
) -> None:
    session = make.session("ann")
    same = make.at(5)
    messages = [make.message(session, 0, content=f"m{i}") for i in range(5)]
    for message in messages:
        await store.insert_message(message.model_copy(update={"created_at": same}))
    ordered = sorted(messages, key=lambda m: m.message_id)
    ids = [m.message_id for m in ordered]
    page = await store.list_messages("ann", session.session_id, limit=2)
    assert [m.message_id for m in page] == ids[3:]
    page = await store.list_messages(
        "ann", session.session_id, limit=2, before=same, before_id=page[0].message_id
    )
    assert [m.message_id for m in page] == ids[1:3]
    page = await store.list_messages(
        "ann", session.session_id, limit=2, before=same, before_id=page[0].message_id
    )
    assert [m.message_id for m in page] == ids[:1]


async def test_queued_messages_stay_out_of_the_history(store: Store, make: SimpleNamespace) -> None:
    session, other = make.session("ann"), make.session("bob")
    sent = make.message(session, 0, content="sent")
    late = make.message(session, 3, content="late", status="queued")
    early = make.message(session, 2, content="early", status="queued")
    dropped = make.message(session, 4, content="dropped", status="cancelled")
    elsewhere = make.message(other, 5, content="bob's", status="queued")
    for message in (sent, late, early, dropped, elsewhere):
        await store.insert_message(message)

    history = await store.list_messages("ann", session.session_id, limit=10)
    assert [m.content for m in history] == ["sent"]
    mine = await store.list_queued_messages(user_id="ann", session_id=session.session_id)
    assert mine == [early, late]  # oldest first
    assert await store.list_queued_messages() == [early, late, elsewhere]
    assert await store.list_queued_messages(created_before=make.at(3)) == [early]
    assert await store.list_queued_messages(limit=1) == [early]
    assert await store.list_queued_messages(limit=0) == []


async def test_update_message_is_conditional_and_the_users_own(
    store: Store, make: SimpleNamespace
) -> None:
    session = make.session("ann")
    queued = make.message(session, 0, status="queued")
    await store.insert_message(queued)
    assert await store.update_message("bob", queued.message_id, {"status": "sent"}) is None
    assert await store.update_message("ann", "nope", {"status": "sent"}) is None
    started = await store.update_message(
        "ann", queued.message_id, {"status": "sent", "run_id": "r1", "created_at": make.at(5)},
        expect={"status": "queued"},
    )  # fmt: skip
    assert started is not None and started.status == "sent" and started.run_id == "r1"
    assert started.created_at == make.at(5)
    again = await store.update_message(
        "ann", queued.message_id, {"status": "cancelled"}, expect={"status": "queued"}
    )
    assert again is None  # one winner
    assert await store.update_message("ann", queued.message_id, {}) == started  # a read
    assert await store.list_messages("ann", session.session_id, limit=5) == [started]
