"""CORS for the API: only the origins in ALLOWED_ORIGINS, with credentials."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from server import keys
from server.errors import error_response

ALLOW_METHODS = "GET, POST, PATCH, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, X-Requested-With, X-CSRF-Token, X-Request-ID"
# The UI reads these to explain a 429 and to quote a request id.
EXPOSE_HEADERS = (
    "Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, X-Request-ID"
)
PREFLIGHT_MAX_AGE_S = "600"


def allowed_origin(request: web.Request) -> str | None:
    """Return the request's Origin if it is an /api/ request from an allowed origin."""
    if not request.path.startswith("/api/"):
        return None
    origin = request.headers.get("Origin", "")
    allowed = request.app[keys.SETTINGS].allowed_origins
    return origin if origin and origin.rstrip("/") in allowed else None


def _is_preflight(request: web.Request) -> bool:
    return (
        request.method == "OPTIONS"
        and request.path.startswith("/api/")
        and "Origin" in request.headers
        and "Access-Control-Request-Method" in request.headers
    )


@web.middleware
async def cors_preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer CORS preflights for /api/ paths: 204 for allowed origins, else 403."""
    if not _is_preflight(request):
        return await handler(request)
    origin = allowed_origin(request)
    if origin is None:
        return error_response(403, "forbidden", "origin not allowed")
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Methods": ALLOW_METHODS,
            "Access-Control-Allow-Headers": ALLOW_HEADERS,
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE_S,
        },
    )


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Mark /api/ responses (errors included) readable by an allowed origin."""
    if not request.path.startswith("/api/"):
        return
    vary = response.headers.get("Vary", "")
    if "origin" not in vary.lower():
        response.headers["Vary"] = f"{vary}, Origin" if vary else "Origin"
    origin = allowed_origin(request)
    if origin is None:
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Allow-Credentials"] = "true"
    response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS


def setup_cors(app: web.Application) -> None:
    """Answer preflights and add CORS headers to every /api/ response, errors too."""
    app.middlewares.append(cors_preflight)
    # A response hook rather than a middleware: it sees the final response whatever
    # middleware built it (error envelopes, 404/405), independent of middleware order.
    app.on_response_prepare.append(add_cors_headers)
