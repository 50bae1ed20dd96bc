"""bcrypt hashing, always in a worker thread so the event loop never blocks."""

from __future__ import annotations

import asyncio

import bcrypt


class PasswordHasher:
    """Hash and check passwords with bcrypt at a fixed cost."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self._dummy: bytes | None = None

    async def hash(self, password: str) -> str:
        """Return the bcrypt hash of a password (computed off the loop)."""
        salt = bcrypt.gensalt(self.rounds)
        digest = await asyncio.to_thread(bcrypt.hashpw, password.encode(), salt)
        return digest.decode()

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """Check a password; with no hash, spend the same time and answer False."""
        if password_hash is None:
            if self._dummy is None:
                self._dummy = (await self.hash("chorus-timing-equaliser")).encode()
            await asyncio.to_thread(bcrypt.checkpw, password.encode(), self._dummy)
            return False
        return await asyncio.to_thread(bcrypt.checkpw, password.encode(), password_hash.encode())
