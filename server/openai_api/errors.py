"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

Chorus errors keep their code; the status follows OpenAI's habits (validation is 400,
not 422). Every error but 503 says ``x-should-retry: false``: the openai SDK would
otherwise re-send a refused or failed request, and a re-sent chat completion starts
another run.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from server.errors import ApiError, describe_validation

log = logging.getLogger("chorus.openai")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_TYPES = {
    400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
    404: "invalid_request_error", 409: "invalid_request_error", 413: "invalid_request_error",
    415: "invalid_request_error", 429: "rate_limit_error",
}  # fmt: skip
_CODES = {"unauthorized": "invalid_api_key", "rate_limited": "rate_limit_exceeded"}


def error_payload(message: str, type_: str, code: str | None) -> dict[str, Any]:
    """The body of an OpenAI error (also sent as a stream's last data line)."""
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def openai_error(
    status: int, message: str, code: str | None, headers: Mapping[str, str] | None = None
) -> web.Response:
    """An OpenAI-shaped error response."""
    type_ = _TYPES.get(status, "server_error")
    extra = {} if status == 503 else {"x-should-retry": "false"}
    return web.Response(
        status=status, text=json.dumps(error_payload(message, type_, code)),
        content_type="application/json", headers={**(headers or {}), **extra},
    )  # fmt: skip


def from_api_error(exc: ApiError) -> web.Response:
    """Map a Chorus error to OpenAI's status and shape."""
    status = 400 if exc.status == 422 else exc.status
    return openai_error(status, exc.message, _CODES.get(exc.code, exc.code), exc.headers)


def openai_errors(handler: Handler) -> Handler:
    """Answer every failure of ``handler`` in OpenAI's error shape."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return from_api_error(exc)
        except ValidationError as exc:
            return openai_error(400, describe_validation(exc), "invalid_request")
        except web.HTTPException:
            raise
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            return openai_error(500, "internal server error", "internal_error")

    return wrapped
