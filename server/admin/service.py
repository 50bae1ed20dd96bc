"""AdminService: list users, change their role and budgets, disable and enable them.

Disabling takes effect at once everywhere: every request loads its user from the store
(a disabled user's tokens, API keys and cookies get 401), and a message on the
revocations channel has every web process close the user's sockets (4403) and event
streams. A Redis flag beside it lets a web process that was away from Redis catch up.
"""

from __future__ import annotations

from redis.asyncio import Redis

from server.errors import InvalidRequest, NotFound
from server.events.hub import USER_DISABLED_PREFIX
from server.redis_keys import RedisKeys
from server.store.base import Store
from server.store.models import User, utcnow


class AdminService:
    """What an admin (REST) or an operator (CLI) does to accounts."""

    def __init__(self, store: Store, redis: Redis | None, keys: RedisKeys) -> None:
        self._store = store
        self._redis = redis
        self._keys = keys

    async def user(self, user_id: str) -> User:
        """The user with this id; 404 if none."""
        user = await self._store.get_user(user_id)
        if user is None:
            raise NotFound("user not found")
        return user

    async def by_email(self, email: str) -> User:
        """The user with this email; 404 if none."""
        user = await self._store.get_user_by_email(email.strip().lower())
        if user is None:
            raise NotFound(f"no user with email {email!r}")
        return user

    async def list_users(self, limit: int, skip: int) -> tuple[list[User], int]:
        """One page of every user, oldest first, and the total."""
        return await self._store.list_users(limit=limit, skip=skip)

    async def update(
        self, user_id: str, changes: dict[str, object], actor: User | None = None
    ) -> User:
        """Apply ``changes`` (role, disabled, budgets); an admin may not lock itself out."""
        locks_out = changes.get("disabled") is True or changes.get("role") == "user"
        if actor is not None and actor.user_id == user_id and locks_out:
            raise InvalidRequest("an admin cannot disable or demote their own account")
        await self.user(user_id)
        if not changes:
            return await self.user(user_id)
        updated = await self._store.update_user(user_id, {**changes, "updated_at": utcnow()})
        if updated is None:
            raise NotFound("user not found")
        if "disabled" in changes:
            await self._announce(user_id, disabled=bool(changes["disabled"]))
        return updated

    async def _announce(self, user_id: str, *, disabled: bool) -> None:
        """Tell every web process (a disable closes the user's sockets and streams)."""
        if self._redis is None:
            return
        flag = self._keys.user_disabled(user_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            if disabled:
                pipe.set(flag, "1")
                pipe.publish(self._keys.revocations_channel(), USER_DISABLED_PREFIX + user_id)
            else:
                pipe.delete(flag)
            await pipe.execute()

    async def promote_if_first(self, user: User) -> User:
        """Make the only user there is an admin (FIRST_USER_ADMIN)."""
        _users, total = await self._store.list_users(limit=0)
        if total != 1:
            return user
        promoted = await self._store.update_user(
            user.user_id, {"role": "admin", "updated_at": utcnow()}
        )
        return promoted or user
