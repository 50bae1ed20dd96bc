"""The OpenAPI 3.1 document of the HTTP API, built from the app's routes and OPERATIONS.

Served at GET /api/v1/openapi.json; ``make docs`` writes it to docs/openapi.json. Every
route is part of it except the UI's pages and files (``NOT_API``) and catch-all routes.
"""

from __future__ import annotations

import json
import re
from importlib import metadata
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from server.api.operations import OPERATIONS, Operation
from server.api.responses import ErrorBody

OPENAPI_PATH = "/api/v1/openapi.json"
# The chat UI's page, files and configuration (server/ui.py): served, but not the API.
NOT_API = frozenset({("GET", "/"), ("GET", "/static/{path}"), ("GET", "/config.json")})
_REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DOCUMENT = web.AppKey("openapi_document", dict[str, Any])
_ERRORS = {
    400: "`invalid_json`: the body is not valid JSON (or another malformed request)",
    401: "`unauthorized` (no, a bad, expired or revoked token) or `invalid_credentials`",
    403: "`forbidden`: a cookie request without X-Requested-With, or from a foreign Origin",
    404: "`not_found`: no such resource, or another user's",
    409: "`email_taken` or `session_busy`",
    413: "`payload_too_large`: the body exceeds MAX_BODY_BYTES",
    415: "`unsupported_media_type`: the body must be application/json",
    422: "`invalid_request`: the message names the field",
    429: "`rate_limited`, with Retry-After and X-RateLimit-Limit/Remaining/Reset headers",
    503: "`unavailable`: a dependency (Redis, the store) does not answer",
}
_ABOUT = (
    'Errors are {"error": {"code", "message"}}. '
    "The WebSocket protocol is described in docs/websocket.md."
)
_UNDOCUMENTED = {
    "summary": "UNDOCUMENTED: add it to server/api/operations.py",
    "x-undocumented": True,
    "responses": {"default": {"description": "unknown"}},
}
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "cookie": {
        "type": "apiKey", "in": "cookie", "name": "chorus_session",
        "description": "Set at login; unsafe methods also need X-Requested-With and an "
        "allowed Origin.",
    },
}  # fmt: skip


def documented_routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, path) of every route the document covers, in registration order."""
    found: list[tuple[str, str]] = []
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method in ("HEAD", "*"):
            continue
        key = (route.method, resource.canonical)
        if key not in NOT_API and key not in found:
            found.append(key)
    return found


def _close_objects(node: Any) -> None:
    """Mark every object schema closed: an undocumented field is a mismatch, not a detail."""
    if isinstance(node, dict):
        if "properties" in node:
            node.setdefault("additionalProperties", False)
        for value in node.values():
            _close_objects(value)
    elif isinstance(node, list):
        for value in node:
            _close_objects(value)


class _Schemas:
    """Collect the models operations use; emit components and $refs to them."""

    def __init__(self, operations: list[Operation]) -> None:
        wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorBody, "serialization")]
        for op in operations:
            if op.body is not None:
                wanted.append((op.body, "validation"))
            if isinstance(op.response, type):
                wanted.append((op.response, "serialization"))
            if op.error_model is not None:
                wanted.append((op.error_model, "serialization"))
        unique = list(dict.fromkeys(wanted))
        self.refs, top = models_json_schema(unique, ref_template=_REF)
        self.components: dict[str, Any] = top.get("$defs", {})
        _close_objects(self.components)

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(self.refs[(model, mode)])


def _parameters(path: str, query: type[BaseModel] | None) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "string", "minLength": 1, "maxLength": 64}}
        for name in _PATH_PARAM.findall(path)
    ]  # fmt: skip
    if query is not None:
        schema = query.model_json_schema(ref_template=_REF)
        required = set(schema.get("required", ()))
        for name, prop in schema["properties"].items():
            params.append(
                {"name": name, "in": "query", "required": name in required,
                 "schema": _without_null(prop)}
            )  # fmt: skip
    return params


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent, never null: drop pydantic's ``X | None`` null branch."""
    branches = [b for b in prop.get("anyOf", ()) if b != {"type": "null"}]
    if len(branches) != 1:
        return prop
    kept = {k: v for k, v in prop.items() if k != "anyOf" and not (k == "default" and v is None)}
    return {**kept, **branches[0]}


def _success(op: Operation, schemas: _Schemas) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": op.summary}
    if isinstance(op.response, str):
        shape = {"type": "object"} if op.response == "application/json" else {"type": "string"}
        answer["content"] = {op.response: {"schema": shape}}
    elif op.response is not None:
        schema = schemas.ref(op.response, "serialization")
        answer["content"] = {"application/json": {"schema": schema}}
    return answer


def _error(status: int, op: Operation, schemas: _Schemas) -> dict[str, Any]:
    if op.error_model is None:  # the API's own envelope, described once
        return {"$ref": f"#/components/responses/E{status}"}
    schema = schemas.ref(op.error_model, "serialization")
    return {"description": f"HTTP {status}", "content": {"application/json": {"schema": schema}}}


def _operation(method: str, path: str, op: Operation, schemas: _Schemas) -> dict[str, Any]:
    success = _success(op, schemas)
    responses: dict[str, Any] = {str(op.status): success}
    responses.update({str(status): success for status in op.also})
    for status in op.errors:
        responses[str(status)] = _error(status, op, schemas)
    doc: dict[str, Any] = {
        "operationId": f"{method.lower()}_{re.sub(r'[^A-Za-z0-9]+', '_', path).strip('_')}",
        "summary": op.summary,
        "tags": [op.tag],
        "responses": responses,
        "security": [{"bearer": []}, {"cookie": []}] if op.auth else [],
    }
    if op.description:
        doc["description"] = op.description
    params = _parameters(path, op.query)
    if params:
        doc["parameters"] = params
    if op.body is not None:
        body = schemas.ref(op.body, "validation")
        doc["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return doc


def _error_responses() -> dict[str, Any]:
    envelope = {"$ref": _REF.format(model="ErrorBody")}
    return {
        f"E{status}": {
            "description": text,
            "content": {"application/json": {"schema": envelope}},
        }
        for status, text in _ERRORS.items()
    }


def build_openapi(app: web.Application) -> dict[str, Any]:
    """Build the document for ``app``; a route missing from OPERATIONS is marked undocumented."""
    routes = documented_routes(app)
    schemas = _Schemas([OPERATIONS[key] for key in routes if key in OPERATIONS])
    paths: dict[str, dict[str, Any]] = {}
    for method, path in routes:
        op = OPERATIONS.get((method, path))
        entry = paths.setdefault(path, {})
        if op is None:
            entry[method.lower()] = _UNDOCUMENTED
        else:
            entry[method.lower()] = _operation(method, path, op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Chorus HTTP API", "version": _version(), "description": _ABOUT},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "responses": _error_responses(),
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


def _version() -> str:
    try:
        return metadata.version("chorus")
    except metadata.PackageNotFoundError:
        return "0.0.0"


async def _serve(request: web.Request) -> web.Response:
    """Answer the document (built on first use: the routes are final by then)."""
    cache = request.app[_DOCUMENT]
    if not cache:
        cache.update(build_openapi(request.app))
    return web.json_response(cache)


def setup_openapi(app: web.Application) -> None:
    """Serve the document at /api/v1/openapi.json."""
    app[_DOCUMENT] = {}
    app.router.add_get(OPENAPI_PATH, _serve)


def render(document: dict[str, Any]) -> str:
    """The document as docs/openapi.json holds it."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
