"""POST /auth/register, /auth/login, /auth/logout and GET /auth/me."""

from __future__ import annotations

from aiohttp import web
from aiohttp_session import get_session, new_session

from server import keys
from server.admin.service import AdminService
from server.api.body import parse_body
from server.auth.identity import COOKIE_TOKEN, authenticate
from server.auth.schemas import LoginBody, RegisterBody
from server.errors import EmailTaken, InvalidCredentials
from server.ratelimit import Rule
from server.store.base import DuplicateError
from server.store.models import User

routes = web.RouteTableDef()


@routes.post("/api/v1/auth/register")
async def register(request: web.Request) -> web.Response:
    """Create an account (201), or 409 email_taken."""
    body = await parse_body(request, RegisterBody)
    limits = request.app[keys.SETTINGS].limits
    await request.app[keys.RATE_LIMITER].enforce(
        Rule("register-ip", request.remote or "unknown", limits.register_per_ip,
             limits.register_window_s),
    )  # fmt: skip
    store = request.app[keys.STORE]
    if await store.get_user_by_email(body.email) is not None:
        raise EmailTaken("an account with this email already exists")
    password_hash = await request.app[keys.PASSWORDS].hash(body.password)
    user = User(email=body.email, password_hash=password_hash, name=body.name.strip())
    try:
        await store.create_user(user)
    except DuplicateError:
        raise EmailTaken("an account with this email already exists") from None
    if request.app[keys.SETTINGS].first_user_admin:
        user = await AdminService(store, None, request.app[keys.REDIS_KEYS]).promote_if_first(user)
    return web.json_response({"user": user.public()}, status=201)


@routes.post("/api/v1/auth/login")
async def login(request: web.Request) -> web.Response:
    """Verify credentials, issue a token and set the session cookie."""
    body = await parse_body(request, LoginBody)
    limits = request.app[keys.SETTINGS].limits
    await request.app[keys.RATE_LIMITER].enforce(
        Rule("login-email", body.email, limits.login_per_email, limits.login_window_s),
        Rule("login-ip", request.remote or "unknown", limits.login_per_ip, limits.login_window_s),
    )
    user = await request.app[keys.STORE].get_user_by_email(body.email)
    stored_hash = user.password_hash if user is not None and not user.disabled else None
    if not await request.app[keys.PASSWORDS].verify(body.password, stored_hash) or user is None:
        raise InvalidCredentials("invalid email or password")
    tokens = request.app[keys.TOKENS]
    token, _claims = tokens.issue(user)
    session = await new_session(request)
    session[COOKIE_TOKEN] = token
    return web.json_response(
        {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": tokens.ttl_s,
            "user": user.public(),
        }
    )


@routes.post("/api/v1/auth/logout")
async def logout(request: web.Request) -> web.Response:
    """Revoke the caller's token, clear the cookie (its sockets close on revocation)."""
    identity = await authenticate(request)
    await request.app[keys.TOKENS].revoke(identity.claims)
    session = await get_session(request)
    session.invalidate()
    return web.Response(status=204)


@routes.get("/api/v1/auth/me")
async def me(request: web.Request) -> web.Response:
    """Return the current user."""
    identity = await authenticate(request)
    return web.json_response({"user": identity.user.public()})
