"""Abuse limits of the WebSocket layer: command rate per socket, sockets per user, handshakes.

The counts are per web process (each process guards its own memory and event loop);
a deployment of N processes allows N times as many sockets per user in the worst case.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable


class CommandRate:
    """A token bucket: ``burst`` frames at once, then ``per_s`` frames a second."""

    __slots__ = ("_burst", "_clock", "_per_s", "_tokens", "_updated")

    def __init__(
        self, per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._per_s = per_s
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._updated = clock()

    def allow(self) -> bool:
        """Take a token for one frame; False when the bucket is empty (the client floods)."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._per_s)
        self._updated = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class SocketLimits:
    """This process's sockets: how many are still authenticating, how many each user holds."""

    def __init__(self, max_pending: int, max_per_user: int) -> None:
        self.max_pending = max_pending
        self.max_per_user = max_per_user
        self.pending = 0
        self._per_user: Counter[str] = Counter()

    def enter_pending(self) -> bool:
        """Count a socket in its auth phase; False if too many already are."""
        if self.pending >= self.max_pending:
            return False
        self.pending += 1
        return True

    def leave_pending(self) -> None:
        """The socket finished its auth phase (authenticated or not)."""
        self.pending -= 1

    def add_user_socket(self, user_id: str) -> bool:
        """Count an authenticated socket of ``user_id``; False if the user has too many."""
        if self._per_user[user_id] >= self.max_per_user:
            return False
        self._per_user[user_id] += 1
        return True

    def remove_user_socket(self, user_id: str) -> None:
        """The user's socket closed."""
        self._per_user[user_id] -= 1
        if self._per_user[user_id] <= 0:
            del self._per_user[user_id]

    def user_sockets(self, user_id: str) -> int:
        """How many sockets the user holds in this process."""
        return self._per_user[user_id]
