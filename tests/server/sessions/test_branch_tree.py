"""The branch tree of a session's messages (pure: links in, branches out)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from server.sessions.branches import BranchTree
from server.store.models import ChatSession, MessageLink

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def link(message_id: str, minute: int, role: str = "user", **fields: Any) -> MessageLink:
    return MessageLink(
        message_id=message_id, role=role, created_at=T0 + timedelta(minutes=minute), **fields
    )


def ids(links: list[MessageLink]) -> list[str]:
    return [item.message_id for item in links]


def session(head: str | None = None) -> ChatSession:
    return ChatSession(user_id="ann", head_message_id=head)


# u1 → a1 → u2 → a2 ; a2' (regenerated, sibling of a2) ; u2' (edit of u2) → a3 ; u1' (edit of u1)
TREE = [
    link("u1", 0),
    link("a1", 1, "assistant", parent_id="u1"),
    link("u2", 2, parent_id="a1"),
    link("a2", 3, "assistant", parent_id="u2"),
    link("a2b", 4, "assistant", parent_id="u2"),
    link("u2b", 5, parent_id="a1", edit_of="u2"),
    link("a3", 6, "assistant", parent_id="u2b"),
    link("u1b", 7, edit_of="u1"),
]


def test_siblings_are_the_alternatives_at_one_point_oldest_first() -> None:
    tree = BranchTree(TREE)
    assert tree.siblings("a2") == ["a2", "a2b"]
    assert tree.siblings("u2b") == ["u2", "u2b"]
    assert tree.siblings("u1") == ["u1", "u1b"]  # an edit of the first message is a first one
    assert tree.siblings("a1") == ["a1"]


def test_a_branch_is_the_path_of_parents_to_its_tip() -> None:
    tree = BranchTree(TREE)
    assert ids(tree.path("a2")) == ["u1", "a1", "u2", "a2"]
    assert ids(tree.path("a3")) == ["u1", "a1", "u2b", "a3"]
    assert ids(tree.path("u1b")) == ["u1b"]
    assert tree.path(None) == []


def test_the_tip_through_a_message_follows_its_newest_children() -> None:
    tree = BranchTree(TREE)
    assert tree.tip("u1") == "a3"
    assert tree.tip("u2") == "a2b"
    assert tree.tip("a3") == "a3"


def test_the_selected_head_is_the_sessions_or_the_newest_message() -> None:
    tree = BranchTree(TREE)
    assert tree.head(session("a2")) == "a2"
    assert tree.head(session("not-stored-yet")) == "u1b"
    assert tree.head(session()) == "u1b"
    assert BranchTree([]).head(session()) is None


def test_messages_stored_before_branches_read_as_one_line() -> None:
    old = [link("o1", 0), link("o2", 1, "assistant"), link("o3", 2), link("o4", 3, "assistant")]
    # ...then a message sent after the upgrade, and a regenerated answer to o3.
    tree = BranchTree(
        [*old, link("n1", 4, parent_id="o4"), link("o4b", 5, "assistant", parent_id="o3")]
    )
    assert ids(tree.path("n1")) == ["o1", "o2", "o3", "o4", "n1"]
    assert tree.siblings("o4") == ["o4", "o4b"]
    assert tree.head(session()) == "o4b"  # the newest message, not the longest branch
    assert tree.siblings("o2") == ["o2"]


def test_pages_of_a_branch_go_backwards_by_the_cursor() -> None:
    tree = BranchTree(TREE)
    last = tree.page("a3", 2, None, None)
    assert ids(last.links) == ["u2b", "a3"] and last.more
    before = tree.page("a3", 2, T0 + timedelta(minutes=5), "u2b")
    assert ids(before.links) == ["u1", "a1"] and not before.more
    # A cursor id not on the branch falls back to the timestamp alone.
    by_time = tree.page("a3", 5, T0 + timedelta(minutes=2), "a2")
    assert ids(by_time.links) == ["u1", "a1"]
