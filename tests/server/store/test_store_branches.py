"""Store contract: the links of a session's messages (the branch tree) and reads by id."""

from __future__ import annotations

from types import SimpleNamespace

from server.store.base import Store
from server.store.models import MessageLink


async def test_message_links_are_the_tree_fields_oldest_first(
    store: Store, make: SimpleNamespace
) -> None:
    session = make.session("ann")
    first = make.message(session, 2, content="first")
    answer = make.message(
        session, 3, content="answer", run_id="r1", parent_id=first.message_id
    ).model_copy(update={"role": "assistant"})
    edit = make.message(session, 4, content="edit", edit_of=first.message_id)
    for message in (answer, edit, first):  # inserted out of order
        await store.insert_message(message)
    await store.insert_message(make.message(make.session("ann"), 1))  # another session

    links = await store.list_message_links("ann", session.session_id)

    assert links == [
        MessageLink(message_id=first.message_id, role="user", created_at=first.created_at),
        MessageLink(
            message_id=answer.message_id,
            role="assistant",
            run_id="r1",
            parent_id=first.message_id,
            created_at=answer.created_at,
        ),
        MessageLink(
            message_id=edit.message_id,
            role="user",
            edit_of=first.message_id,
            created_at=edit.created_at,
        ),
    ]
    assert await store.list_message_links("bob", session.session_id) == []


async def test_get_messages_reads_by_id_in_the_order_asked(
    store: Store, make: SimpleNamespace
) -> None:
    session = make.session("ann")
    one, two, three = (make.message(session, m, content=f"m{m}") for m in (1, 2, 3))
    for message in (one, two, three):
        await store.insert_message(message)
    other = make.message(make.session("ann"), 4)
    await store.insert_message(other)

    ids = [three.message_id, one.message_id, "missing", other.message_id]
    assert await store.get_messages("ann", session.session_id, ids) == [three, one]
    assert await store.get_messages("bob", session.session_id, ids) == []
    assert await store.get_messages("ann", session.session_id, []) == []


async def test_delete_message_deletes_that_message_of_that_session_only(
    store: Store, make: SimpleNamespace
) -> None:
    session = make.session("ann")
    keep, drop = make.message(session, 1), make.message(session, 2)
    for message in (keep, drop):
        await store.insert_message(message)
    assert await store.delete_message("bob", session.session_id, drop.message_id) is False
    assert await store.delete_message("ann", "other", drop.message_id) is False
    assert await store.delete_message("ann", session.session_id, drop.message_id) is True
    assert await store.delete_message("ann", session.session_id, drop.message_id) is False
    assert await store.list_messages("ann", session.session_id, limit=5) == [keep]
