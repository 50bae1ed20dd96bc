"""Request-scoped middleware: request id, JSON access log, metrics, security headers."""

from __future__ import annotations

import logging
import secrets
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from server import keys
from server.api.decode import undecodable_header
from server.errors import error_response
from server.logs import request_id_var, run_id_var, session_id_var, user_id_var

access_log = logging.getLogger("chorus.access")
_REQUEST_ID = "X-Request-ID"
# Metric labels stay a bounded set: any other method a client invents counts as OTHER.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give each request an id, log it as JSON and count it."""
    incoming = request.headers.get(_REQUEST_ID, "")
    request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else ""
    request_id = request_id or secrets.token_hex(8)
    request_id_var.set(request_id)
    user_id_var.set(None)
    session_id_var.set(None)
    run_id_var.set(None)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers[_REQUEST_ID] = request_id
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = _route_name(request)
        metrics = request.app[keys.METRICS]
        method = request.method if request.method in _METHODS else "OTHER"
        metrics.http_requests.labels(method, route, str(status)).inc()
        metrics.http_latency.labels(route).observe(elapsed)
        access_log.info(
            "%s %s %s", request.method, request.path, status,
            extra={"status": status, "ms": round(elapsed * 1000, 2), "remote": request.remote},
        )  # fmt: skip


@web.middleware
async def reject_undecodable(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a request whose headers are not UTF-8 (400 ``invalid_header``), on every route.

    Header bytes that are not UTF-8 (a forged ``Authorization``, a session cookie, a
    ``Host``) reach handlers as lone surrogates, which the JWT, cookie and template code
    cannot encode again; one check here keeps them out of everything behind it.
    """
    name = undecodable_header(request.headers)
    if name is not None:
        return error_response(400, "invalid_header", f"header {name}: not valid UTF-8")
    return await handler(request)


SERVER_NAME = "Chorus"


async def hide_server_version(request: web.Request, response: web.StreamResponse) -> None:
    """Name the server without versions (aiohttp would advertise Python's and its own)."""
    response.headers["Server"] = SERVER_NAME
