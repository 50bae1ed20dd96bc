"""Reading and validating request bodies and query strings at the edge."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from server import keys
from server.api.decode import InputError, parse_json
from server.errors import (
    InvalidRequest,
    MalformedJson,
    PayloadTooLarge,
    UnsupportedMediaType,
    describe_validation,
)

M = TypeVar("M", bound=BaseModel)

# Parsing a body this large would hold the loop for a noticeable time: do it in a thread.
_THREAD_PARSE_BYTES = 64 * 1024


class RequestModel(BaseModel):
    """Base of request bodies: strict types, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=False)


class QueryModel(BaseModel):
    """Base of query strings: values arrive as text and are converted; unknown keys rejected."""

    model_config = ConfigDict(extra="forbid")


async def read_json(request: web.Request) -> Any:
    """Read the body as JSON, with clear errors for size, media type and syntax."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType("request body must be application/json")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[keys.SETTINGS].max_body_bytes
        raise PayloadTooLarge(f"request body exceeds {limit} bytes") from None
    try:
        if len(raw) > _THREAD_PARSE_BYTES:
            return await asyncio.to_thread(parse_json, raw)
        return parse_json(raw)
    except InputError as exc:
        raise MalformedJson(f"request body {exc}") from None


async def parse_body(request: web.Request, model: type[M]) -> M:
    """Read the JSON body and validate it against ``model`` (422 naming the field)."""
    data = await read_json(request)
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(describe_validation(exc)) from None


async def parse_optional_body(request: web.Request, model: type[M]) -> M:
    """Like ``parse_body``, but no body at all means every field's default."""
    if not request.body_exists:
        return model.model_validate({})
    return await parse_body(request, model)


def parse_query(query: Mapping[str, str], model: type[M]) -> M:
    """Validate query parameters against ``model`` (422 naming the parameter)."""
    try:
        return model.model_validate(dict(query))
    except ValidationError as exc:
        raise InvalidRequest(describe_validation(exc)) from None
