"""Who is calling: bearer token or session cookie, with CSRF and origin rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aiohttp import web
from aiohttp_session import get_session

from server import keys
from server.auth.tokens import Claims, TokenError
from server.config import Settings
from server.errors import Forbidden, Unauthorized
from server.logs import user_id_var
from server.ratelimit import Rule
from server.store.models import User

COOKIE_TOKEN = "token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_IDENTITY: web.RequestKey[Identity] = web.RequestKey("identity")


@dataclass(frozen=True)
class Identity:
    """An authenticated caller: the user, the token's claims and how it came."""

    user: User
    claims: Claims
    via: Literal["bearer", "cookie"]
    token: str


def request_origin(request: web.Request) -> str:
    """The origin this server is reached at, as the browser sees it."""
    return f"{request.scheme}://{request.host}"


def origin_allowed(request: web.Request, settings: Settings) -> bool:
    """Whether the request's Origin header is this server's own or an allowed one."""
    origin = request.headers.get("Origin", "").rstrip("/")
    return bool(origin) and (
        origin == request_origin(request) or origin in settings.allowed_origins
    )


def bearer_token(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def cookie_token(request: web.Request) -> str | None:
    """The token kept in the encrypted session cookie, if any."""
    session = await get_session(request)
    token = session.get(COOKIE_TOKEN)
    return token if isinstance(token, str) else None


async def resolve_token(request: web.Request, token: str) -> tuple[User, Claims]:
    """Verify a token and load its user; raise Unauthorized otherwise."""
    try:
        claims = await request.app[keys.TOKENS].verify(token)
    except TokenError:
        raise Unauthorized("invalid or expired token") from None
    user = await request.app[keys.STORE].get_user(claims.sub)
    if user is None or user.disabled:
        raise Unauthorized("invalid or expired token")
    return user, claims


def check_csrf(request: web.Request, settings: Settings) -> None:
    """Cookie-authenticated unsafe requests need X-Requested-With and an allowed Origin."""
    if request.method in _SAFE_METHODS:
        return
    if not request.headers.get("X-Requested-With"):
        raise Forbidden("cookie-authenticated requests must send X-Requested-With")
    if not origin_allowed(request, settings):
        raise Forbidden("origin not allowed")


async def authenticate(request: web.Request) -> Identity:
    """Return the caller's identity or raise 401; cached on the request."""
    if _IDENTITY in request:
        return request[_IDENTITY]
    settings = request.app[keys.SETTINGS]
    token = bearer_token(request)
    via: Literal["bearer", "cookie"] = "bearer"
    if token is None:
        token, via = await cookie_token(request), "cookie"
    if token is None:
        raise Unauthorized("authentication required")
    user, claims = await resolve_token(request, token)
    if via == "cookie":
        check_csrf(request, settings)
    limits = settings.limits
    await request.app[keys.RATE_LIMITER].enforce(
        Rule("api", user.user_id, limits.api_per_user, limits.api_window_s)
    )
    user_id_var.set(user.user_id)
    identity = Identity(user=user, claims=claims, via=via, token=token)
    request[_IDENTITY] = identity
    return identity
