"""The admin API under /api/v1/admin: users, their role, budgets, and disabling them."""

from __future__ import annotations

from aiohttp import web

from server import keys
from server.admin.schemas import ListUsersQuery, UserPatch
from server.admin.service import AdminService
from server.api.body import parse_body, parse_query
from server.auth.identity import Identity, authenticate
from server.errors import Forbidden

routes = web.RouteTableDef()


async def authenticate_admin(request: web.Request) -> Identity:
    """The caller's identity if they are an admin; 403 ``forbidden`` otherwise."""
    identity = await authenticate(request)
    if identity.user.role != "admin":
        raise Forbidden("this needs the admin role")
    return identity


def admin_service(app: web.Application) -> AdminService:
    """The AdminService over the app's store and Redis."""
    return AdminService(app[keys.STORE], app[keys.REDIS], app[keys.REDIS_KEYS])


@routes.get("/api/v1/admin/users")
async def list_users(request: web.Request) -> web.Response:
    """Every user, oldest first, with role, disabled flag and budgets."""
    await authenticate_admin(request)
    query = parse_query(request.query, ListUsersQuery)
    users, total = await admin_service(request.app).list_users(query.limit, query.skip)
    return web.json_response(
        {"items": [u.admin_view() for u in users], "limit": query.limit, "skip": query.skip,
         "total": total}
    )  # fmt: skip


@routes.get("/api/v1/admin/users/{user_id}")
async def get_user(request: web.Request) -> web.Response:
    """A user with today's budget as it applies to them."""
    await authenticate_admin(request)
    user = await admin_service(request.app).user(request.match_info["user_id"])
    budget = await request.app[keys.BUDGETS].status(user)
    return web.json_response({"user": user.admin_view(), "budget": budget})


@routes.patch("/api/v1/admin/users/{user_id}")
async def update_user(request: web.Request) -> web.Response:
    """Change a user's role, disabled flag or budgets (a disable closes their sockets)."""
    identity = await authenticate_admin(request)
    body = await parse_body(request, UserPatch)
    user = await admin_service(request.app).update(
        request.match_info["user_id"], body.changes(), actor=identity.user
    )
    return web.json_response({"user": user.admin_view()})
