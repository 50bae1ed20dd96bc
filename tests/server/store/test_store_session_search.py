"""Store contract: searching a user's sessions and ordering them by last activity."""

from __future__ import annotations

from types import SimpleNamespace

from server.store.base import Store
from server.store.models import ChatSession


async def _ids(store: Store, user: str, **options: object) -> tuple[list[str], int]:
    options.setdefault("status", None)
    options.setdefault("limit", 20)
    options.setdefault("skip", 0)
    page, total = await store.list_sessions(user, **options)  # type: ignore[arg-type]
    return [s.session_id for s in page], total


async def test_search_matches_titles_and_message_text_case_insensitively(
    store: Store, make: SimpleNamespace
) -> None:
    bread = make.session("ann", 1, title="Sourdough at home")
    tea = make.session("ann", 2, title="History of tea")
    hiking = make.session("ann", 3, title="Weekend plans")
    other = make.session("bob", 4, title="Sourdough for Bob")
    for session in (bread, tea, hiking, other):
        await store.create_session(session)
    await store.insert_message(make.message(hiking, 5, "Pack a loaf of SOURDOUGH bread"))
    await store.insert_message(make.message(tea, 6, "green or black?"))
    await store.insert_message(make.message(other, 7, "sourdough again"))

    both = [hiking.session_id, bread.session_id]
    assert await _ids(store, "ann", search="sourdough") == (both, 2)
    assert await _ids(store, "ann", search="BLACK") == ([tea.session_id], 1)
    assert await _ids(store, "ann", search="nothing like this") == ([], 0)
    # Pages and totals apply to the matches; the status filter combines with the search.
    assert await _ids(store, "ann", search="o", limit=2, skip=2) == ([bread.session_id], 3)
    assert await _ids(store, "ann", search="sourdough", status="running") == ([], 0)
    # Another user's session and messages never match.
    assert await _ids(store, "bob", search="loaf") == ([], 0)


async def test_search_text_is_literal_never_a_pattern(store: Store, make: SimpleNamespace) -> None:
    plain = make.session("ann", 1, title="costs (a+b)*2 % [draft]")
    dotted = make.session("ann", 2, title="axb")
    for session in (plain, dotted):
        await store.create_session(session)

    for text in ("(a+b)*2", "% [draft]", "[draft]"):
        assert await _ids(store, "ann", search=text) == ([plain.session_id], 1), text
    assert await _ids(store, "ann", search="a.b") == ([], 0)
    assert await _ids(store, "ann", search="%") == ([plain.session_id], 1)
    assert await _ids(store, "ann", search='{"$ne": null}') == ([], 0)


async def test_order_by_last_activity(store: Store, make: SimpleNamespace) -> None:
    old = make.session("ann", 1)
    new = make.session("ann", 2)
    newest = make.session("ann", 3)
    for session in (old, new, newest):
        await store.create_session(session)
    assert await store.update_session("ann", old.session_id, {"updated_at": make.at(10)})
    assert await store.update_session("ann", new.session_id, {"updated_at": make.at(5)})

    by_start = [newest.session_id, new.session_id, old.session_id]
    by_activity = [old.session_id, new.session_id, newest.session_id]
    assert await _ids(store, "ann") == (by_start, 3)
    assert await _ids(store, "ann", order="updated") == (by_activity, 3)
    assert await _ids(store, "ann", order="updated", limit=1, skip=1) == (by_activity[1:2], 3)
    page, _ = await store.list_sessions("ann", status=None, limit=1, skip=0, order="updated")
    assert isinstance(page[0], ChatSession)
