"""The branch tree of a session's messages (docs/architecture.md, "Branches").

Each message names the previous message on its branch (``parent_id``). A message
without one is either the first of its session or was stored before branches existed:
those form one line, each following the one before it by (created_at, id) — so an old
session reads as it always did. An edit of a first message is a first message too; it
names the message it edits (``edit_of``) and shares that message's place in the tree.

The session stores the tip of its selected branch (``head_message_id``); the branch shown
is the path from the first message to that tip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from server.store.base import Store
from server.store.models import ChatSession, Message, MessageLink


@dataclass(frozen=True)
class Page:
    """A page of a branch, oldest first, and whether older messages precede it."""

    links: list[MessageLink]
    more: bool


class BranchTree:
    """The messages of one session as a tree; built from links ordered oldest first."""

    def __init__(self, links: Sequence[MessageLink]) -> None:
        self._links = {link.message_id: link for link in links}
        self._parent: dict[str, str | None] = {}
        self._children: dict[str | None, list[str]] = {}
        line_tip: str | None = None  # the last message of the line of parentless messages
        for link in links:
            if link.parent_id is not None:
                parent: str | None = link.parent_id
            elif link.edit_of is not None:
                parent = self._parent.get(link.edit_of)
            else:
                parent, line_tip = line_tip, link.message_id
            self._parent[link.message_id] = parent
            self._children.setdefault(parent, []).append(link.message_id)
        self._last = links[-1].message_id if links else None

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._links

    def link(self, message_id: str) -> MessageLink:
        """The message's links (KeyError if it is not in the session)."""
        return self._links[message_id]

    def parent(self, message_id: str) -> str | None:
        """The previous message on the message's branch (None for a first message)."""
        return self._parent.get(message_id)

    def siblings(self, message_id: str) -> list[str]:
        """The message and its alternatives (same parent), oldest first."""
        return list(self._children.get(self._parent.get(message_id), [message_id]))

    def tip(self, message_id: str) -> str:
        """The end of the newest branch through the message (its newest child, and so on)."""
        while children := self._children.get(message_id):
            message_id = children[-1]
        return message_id

    def head(self, session: ChatSession) -> str | None:
        """The selected branch's tip: the session's, or the newest message of an old session."""
        if session.head_message_id in self._links:
            return session.head_message_id
        return None if self._last is None else self.tip(self._last)

    def path(self, head: str | None) -> list[MessageLink]:
        """The branch ending at ``head``: from the first message to it, oldest first."""
        path: list[MessageLink] = []
        seen: set[str] = set()
        current = head
        while current is not None and current in self._links and current not in seen:
            seen.add(current)
            path.append(self._links[current])
            current = self._parent.get(current)
        return path[::-1]

    def page(
        self, head: str | None, limit: int, before: datetime | None, before_id: str | None
    ) -> Page:
        """The ``limit`` newest messages of the branch before the cursor, oldest first."""
        path = self.path(head)
        ids = [link.message_id for link in path]
        if before_id is not None and before_id in ids:
            end = ids.index(before_id)
        elif before is not None:
            end = sum(1 for link in path if link.created_at < before)
        else:
            end = len(path)
        start = max(0, end - limit)
        return Page(path[start:end], start > 0)

    def describe(self, message: Message) -> dict[str, Any]:
        """The message as the API lists it: with its siblings, for a "< 2/3 >" switcher."""
        body = message.model_dump(mode="json")
        # The parent on the tree: for a message stored before branches, the one before it.
        body["parent_id"] = self.parent(message.message_id)
        siblings = self.siblings(message.message_id)
        body["sibling_ids"] = siblings
        body["sibling_index"] = siblings.index(message.message_id)
        return body


async def load_tree(store: Store, user_id: str, session_id: str) -> BranchTree:
    """Read the session's tree (links only, no content)."""
    return BranchTree(await store.list_message_links(user_id, session_id))


async def branch_messages(
    store: Store,
    session: ChatSession,
    *,
    limit: int,
    head: str | None = None,
    before: datetime | None = None,
    before_id: str | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """One page of a branch (the selected one, or the one through ``head``), described."""
    tree = await load_tree(store, session.user_id, session.session_id)
    tip = tree.head(session) if head is None else tree.tip(head)
    page = tree.page(tip, limit, before, before_id)
    messages = await store.get_messages(
        session.user_id, session.session_id, [link.message_id for link in page.links]
    )
    return [tree.describe(m) for m in messages], page.more
