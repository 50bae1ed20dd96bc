"""Outbox: the bounded queue between a connection's producers and its one writer task."""

from __future__ import annotations

import asyncio
from collections import deque

# One frame, or a batch (a subscription's replay) that counts as a single entry: a full
# replay is bounded by the history window and must not trip the slow-consumer limit.
Item = bytes | list[bytes]


class Outbox:
    """A bounded FIFO of frames; ``put`` never blocks, ``get`` waits for the next item."""

    __slots__ = ("_items", "_limit", "_waiter")

    def __init__(self, limit: int) -> None:
        self._items: deque[Item] = deque()
        self._limit = limit
        self._waiter: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Item) -> bool:
        """Queue an item; return False (and queue nothing) if the outbox is full."""
        if len(self._items) >= self._limit:
            return False
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return True

    async def get(self) -> Item:
        """Return the oldest item, waiting for one if the outbox is empty."""
        while not self._items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return self._items.popleft()

    def clear(self) -> None:
        """Drop every queued item."""
        self._items.clear()
