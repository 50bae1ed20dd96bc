"""API errors and the one place that turns exceptions into error responses."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import ValidationError
from redis.exceptions import RedisError

log = logging.getLogger("chorus.errors")


def sentence(message: str) -> str:
    """Start a message people read with a capital letter ("session not found" → "Session…")."""
    return message[:1].upper() + message[1:]


class ApiError(Exception):
    """An error with an HTTP status and a stable machine-readable code."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(sentence(message))
        self.message = sentence(message)
        self.headers = dict(headers or {})
        # Extra fields of the error object beside code and message (e.g. ``resets_at``).
        self.details = dict(details or {})


class InvalidRequest(ApiError):
    status = 422
    code = "invalid_request"


class MalformedJson(ApiError):
    status = 400
    code = "invalid_json"


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class InvalidCredentials(ApiError):
    status = 401
    code = "invalid_credentials"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class UnknownPipelineError(ApiError):
    """The session's pipeline is no longer in the pipelines file."""

    status = 422
    code = "unknown_pipeline"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class EmailTaken(Conflict):
    code = "email_taken"


class SessionBusy(Conflict):
    code = "session_busy"


class NotAwaitingApproval(Conflict):
    code = "not_awaiting_approval"


class MessageNotQueued(Conflict):
    """Cancelling a queued message that has started (or was cancelled) already."""

    code = "message_not_queued"


class NotLatest(Conflict):
    """A regenerate of an answer that is not the tip of the selected branch."""

    code = "not_latest"


class UnknownModel(ApiError):
    """A stage re-run naming a model the pipelines file does not declare."""

    status = 400
    code = "unknown_model"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ApiError):
    status = 415
    code = "unsupported_media_type"


class RateLimited(ApiError):
    status = 429
    code = "rate_limited"


class BudgetExceeded(ApiError):
    """A daily token or cost budget is spent; ``resets_at`` says when it starts again."""

    status = 429
    code = "budget_exceeded"


class Unavailable(ApiError):
    status = 503
    code = "unavailable"


def error_body(
    code: str, message: str, details: Mapping[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Return the error envelope every API error uses."""
    return {"error": {**(details or {}), "code": code, "message": sentence(message)}}


def error_response(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    details: Mapping[str, Any] | None = None,
) -> web.Response:
    """Build a JSON error response."""
    return web.Response(
        status=status,
        text=json.dumps(error_body(code, message, details)),
        content_type="application/json",
        headers=headers,
    )


def describe_validation(exc: ValidationError) -> str:
    """Summarise a pydantic error naming each field, without echoing the input."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts[:5])


REDIS_RETRY_AFTER_S = 2
_HTTP_CODES = {
    404: ("not_found", "no such resource"),
    405: ("method_not_allowed", "method not allowed"),
    413: ("payload_too_large", "request body too large"),
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map every exception to the JSON error envelope; never leak a stack trace."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.headers, exc.details)
    except ValidationError as exc:
        return error_response(422, "invalid_request", describe_validation(exc))
    except RedisError as exc:
        # Redis is down or failing over (DESIGN §9): say so and when to try again, never 500.
        log.warning("redis unavailable on %s %s: %r", request.method, request.path, exc)
        return error_response(
            503, "unavailable", "the service is briefly unavailable; try again",
            {"Retry-After": str(REDIS_RETRY_AFTER_S)},
        )  # fmt: skip
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith("/api/"):
            raise
        code, message = _HTTP_CODES.get(exc.status, ("http_error", exc.reason))
        return error_response(exc.status, code, message)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal server error")
