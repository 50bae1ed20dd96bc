"""Outbox: the bounded queue between a connection's producers and its one writer task."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator


class Replay:
    """A subscription's replay: many frames queued as one entry, counted by their bytes.

    A newer replay of the same session supersedes one still queued (it is taken out of
    the queue), so a socket holds at most one unsent replay per session.
    """

    __slots__ = ("frames", "key", "size")

    def __init__(self, key: str, frames: list[bytes]) -> None:
        self.key = key
        self.frames = frames
        self.size = sum(len(f) for f in frames)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.frames)


# One frame, or a replay that counts as a single entry (and by its bytes).
Item = bytes | Replay


class Outbox:
    """A bounded FIFO of frames; ``put`` never blocks, ``get`` waits for the next item.

    Bounded twice: by entries (``limit``) and by bytes queued (``max_bytes``).
    """

    __slots__ = ("_bytes", "_items", "_limit", "_max_bytes", "_replays", "_waiter")

    def __init__(self, limit: int, max_bytes: int) -> None:
        self._items: deque[Item] = deque()
        self._limit = limit
        self._max_bytes = max_bytes
        self._bytes = 0
        self._replays: dict[str, Replay] = {}
        self._waiter: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def queued_bytes(self) -> int:
        """Bytes of frames waiting for the writer."""
        return self._bytes

    def put(self, item: Item) -> bool:
        """Queue an item; return False (and queue nothing) if the outbox is full."""
        if isinstance(item, Replay):
            previous = self._replays.pop(item.key, None)
            if previous is not None:  # still queued: its events are in the newer replay
                self._items.remove(previous)
                self._bytes -= previous.size
        size = len(item) if isinstance(item, bytes) else item.size
        if len(self._items) >= self._limit or self._bytes + size > self._max_bytes:
            return False
        self._items.append(item)
        self._bytes += size
        if isinstance(item, Replay):
            self._replays[item.key] = item
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
        item = self._items.popleft()
        if isinstance(item, bytes):
            self._bytes -= len(item)
        else:
            self._bytes -= item.size
            if self._replays.get(item.key) is item:
                del self._replays[item.key]
        return item

    def clear(self) -> None:
        """Drop every queued item."""
        self._items.clear()
        self._replays.clear()
        self._bytes = 0
