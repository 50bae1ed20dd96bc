"""JWT issue, decode and revocation (jti denylist in Redis until the token expires)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Protocol

import jwt
from redis.asyncio import Redis

from server.redis_keys import RedisKeys
from server.store.models import User

ALGORITHM = "HS256"
API_KEY_PREFIX = "chk_"  # API keys (server/apikeys/) start with it; JWTs never do


class TokenError(Exception):
    """The token is malformed, forged, expired or revoked."""


@dataclass(frozen=True)
class Claims:
    """The verified claims of an access token."""

    sub: str
    email: str
    iat: int
    exp: int
    jti: str

    def seconds_left(self) -> float:
        """Seconds until the token expires."""
        return self.exp - time.time()


class ApiKeyVerifier(Protocol):
    """Checks an API key and answers the claims a token would carry."""

    async def verify(self, key: str) -> Claims: ...


class TokenService:
    """Issue and verify HS256 access tokens; revoke them by jti. Accepts API keys too."""

    def __init__(self, secret: str, ttl_s: int, redis: Redis, keys: RedisKeys) -> None:
        self._secret = secret
        self.ttl_s = ttl_s
        self._redis = redis
        self._keys = keys
        self._api_keys: ApiKeyVerifier | None = None

    def accept_api_keys(self, verifier: ApiKeyVerifier) -> None:
        """Let ``verify`` accept API keys (wired once the store is open)."""
        self._api_keys = verifier

    def issue(self, user: User) -> tuple[str, Claims]:
        """Return a new signed token for the user and its claims."""
        now = int(time.time())
        claims = Claims(
            sub=user.user_id, email=user.email, iat=now, exp=now + self.ttl_s,
            jti=secrets.token_urlsafe(16),
        )  # fmt: skip
        token = jwt.encode(vars(claims), self._secret, algorithm=ALGORITHM)
        return token, claims

    def decode(self, token: str) -> Claims:
        """Verify signature, algorithm and expiry; raise TokenError otherwise."""
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["sub", "iat", "exp", "jti"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc)) from None
        try:
            return Claims(
                sub=str(payload["sub"]), email=str(payload.get("email", "")),
                iat=int(payload["iat"]), exp=int(payload["exp"]), jti=str(payload["jti"]),
            )  # fmt: skip
        except (TypeError, ValueError):
            raise TokenError("malformed claims") from None

    async def verify(self, token: str) -> Claims:
        """Decode the token (or check the API key) and check it has not been revoked."""
        if token.startswith(API_KEY_PREFIX) and self._api_keys is not None:
            return await self._api_keys.verify(token)
        claims = self.decode(token)
        if await self._redis.exists(self._keys.jwt_denied(claims.jti)):
            raise TokenError("token revoked")
        return claims

    async def revoke(self, claims: Claims) -> None:
        """Deny the token's jti until it expires and tell every web process."""
        ttl = max(1, int(claims.seconds_left()) + 1)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.jwt_denied(claims.jti), "1", ex=ttl)
            pipe.publish(self._keys.revocations_channel(), claims.jti)
            await pipe.execute()
