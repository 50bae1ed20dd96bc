"""ApiKeyService: create, list, revoke and verify per-user API keys.

A key is ``chk_`` plus 32 random bytes (URL-safe base64). Only a keyed hash of it is
stored: HMAC-SHA256 under a key derived from SECRET_KEY. A slow password hash (bcrypt)
buys nothing here, since the key is already high-entropy and cannot be guessed, and it
would cost ~0.25 s of CPU on every request. Verifying a key answers the same ``Claims``
a JWT does, so a key works wherever a token does (REST, WebSocket, SSE, /v1).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web
from redis.asyncio import Redis

from server import keys
from server.auth.tokens import API_KEY_PREFIX, Claims, TokenError
from server.errors import Conflict, NotFound
from server.redis_keys import RedisKeys
from server.store.base import Store
from server.store.models import ApiKey, User, utcnow

__all__ = ["API_KEY_PREFIX", "ApiKeyService", "is_api_key_claims"]
JTI_PREFIX = "apikey-"
_SHOWN_CHARS = 8  # of the random part, kept to tell keys apart in a list
_VALID_FOR_S = 365 * 24 * 3600  # the "exp" of a key's claims: it lives until revoked
_TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often


class TooManyKeys(Conflict):
    code = "too_many_api_keys"


def is_api_key_claims(claims: Claims) -> bool:
    """Whether these claims came from an API key rather than a login token."""
    return claims.jti.startswith(JTI_PREFIX)


class ApiKeyService:
    """Issue keys (shown once), list and revoke them, verify a presented key."""

    def __init__(
        self, secret: str, store: Store, redis: Redis, redis_keys: RedisKeys, per_user: int
    ) -> None:
        self._hmac_key = hashlib.sha256(b"chorus-api-key:" + secret.encode()).digest()
        self._store = store
        self._redis = redis
        self._keys = redis_keys
        self._per_user = per_user

    def digest(self, key: str) -> str:
        """Return the stored form of a key: its HMAC-SHA256, hex."""
        return hmac.new(self._hmac_key, key.encode(), hashlib.sha256).hexdigest()

    async def create(self, user: User, name: str) -> tuple[str, ApiKey]:
        """Make a new key for the user; return the key (shown once) and its record."""
        active = [k for k in await self._store.list_api_keys(user.user_id) if k.revoked_at is None]
        if len(active) >= self._per_user:
            raise TooManyKeys(f"at most {self._per_user} active API keys per user")
        random_part = secrets.token_urlsafe(32)
        key = API_KEY_PREFIX + random_part
        record = ApiKey(
            user_id=user.user_id, name=name, key_hash=self.digest(key),
            prefix=API_KEY_PREFIX + random_part[:_SHOWN_CHARS],
        )  # fmt: skip
        await self._store.insert_api_key(record)
        return key, record

    async def list(self, user: User) -> list[ApiKey]:
        """Return the user's keys (revoked ones too), oldest first."""
        return await self._store.list_api_keys(user.user_id)

    async def revoke(self, user: User, key_id: str) -> ApiKey:
        """Revoke the user's key (idempotent) and close the sockets it opened."""
        owned = {k.key_id: k for k in await self._store.list_api_keys(user.user_id)}
        key = owned.get(key_id)
        if key is None:
            raise NotFound("api key not found")
        if key.revoked_at is not None:
            return key
        revoked = await self._store.update_api_key(user.user_id, key_id, {"revoked_at": utcnow()})
        # Every web process's EventHub closes the sockets authenticated with this key; the
        # denylist entry is what a hub that was away from Redis checks when it is back.
        jti = JTI_PREFIX + key_id
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.jwt_denied(jti), "1", ex=_VALID_FOR_S)
            pipe.publish(self._keys.revocations_channel(), jti)
            await pipe.execute()
        return revoked or key

    async def verify(self, key: str) -> Claims:
        """Return claims for a valid, unrevoked key; raise TokenError otherwise."""
        record = await self._store.get_api_key_by_hash(self.digest(key))
        if record is None or record.revoked_at is not None:
            raise TokenError("invalid or revoked api key")
        now = utcnow()
        if record.last_used_at is None or now - record.last_used_at > _TOUCH_EVERY:
            await self._store.update_api_key(record.user_id, record.key_id, {"last_used_at": now})
        issued = int(record.created_at.timestamp())
        return Claims(
            sub=record.user_id, email="", iat=issued, exp=int(time.time()) + _VALID_FOR_S,
            jti=JTI_PREFIX + record.key_id,
        )  # fmt: skip


async def api_keys_ctx(app: web.Application) -> AsyncIterator[None]:
    """Build the ApiKeyService once the store is open and let tokens accept keys."""
    settings = app[keys.SETTINGS]
    assert settings.secret_key is not None
    service = ApiKeyService(
        settings.secret_key.get_secret_value(), app[keys.STORE], app[keys.REDIS],
        app[keys.REDIS_KEYS], settings.api_keys_per_user,
    )  # fmt: skip
    app[keys.API_KEYS] = service
    app[keys.TOKENS].accept_api_keys(service)
    yield
