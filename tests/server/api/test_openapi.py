"""The OpenAPI document: it covers every route, is valid OpenAPI 3.1, is served, is what
docs/openapi.json holds, and the live app answers as it says (schemathesis)."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from openapi_spec_validator import validate
from pydantic import BaseModel
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from server import keys
from server.api.openapi import (
    OPENAPI_PATH,
    SECURITY_SCHEMES,
    build_openapi,
    documented_routes,
    render,
)
from server.api.operations import OPERATIONS, Operation
from server.app import SESSION_COOKIE, create_app
from server.config import Limits, Settings
from server.docgen import docs_app
from tests.conftest import ClientFactory

DOCS = Path(__file__).resolve().parents[3] / "docs"
EXAMPLES = 6  # per operation and mode: enough to walk each schema, keeps the suite fast
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]  # fmt: skip
NEGATIVE_CHECKS = [*CHECKS, negative_data_rejection]


def test_every_api_route_is_documented_and_every_entry_is_a_route(settings: Settings) -> None:
    routes = documented_routes(create_app(settings))
    assert [key for key in routes if key not in OPERATIONS] == []
    assert [key for key in OPERATIONS if key not in routes] == []


def test_the_document_is_valid_openapi_3_1(settings: Settings) -> None:
    document = build_openapi(create_app(settings))
    assert document["openapi"] == "3.1.0"
    validate(document)  # raises on an invalid document
    undocumented = [p for p, ops in document["paths"].items() for o in ops.values()
                    if o.get("x-undocumented")]  # fmt: skip
    assert undocumented == []


def test_the_cookie_scheme_names_the_session_cookie() -> None:
    assert SECURITY_SCHEMES["cookie"]["name"] == SESSION_COOKIE


def test_docs_openapi_json_is_the_generated_document() -> None:
    expected = render(build_openapi(docs_app()))
    assert (DOCS / "openapi.json").read_text() == expected, "run `make docs`"


async def test_the_app_serves_its_document(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    client = await aiohttp_client(create_app(settings))
    resp = await client.get(OPENAPI_PATH)
    assert resp.status == 200
    served = await resp.json()
    assert served == build_openapi(client.app)
    assert "/api/v1/sessions/{session_id}/messages" in served["paths"]


class LiveServer:
    """The app from create_app, served on a real port by its own loop in a thread
    (schemathesis's client is synchronous)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self.url = ""

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            self.url = f"http://{host}:{port}"
            self._ready.set()
            await self._stop.wait()
        finally:
            self._ready.set()
            await runner.cleanup()

    def __enter__(self) -> LiveServer:
        self._thread.start()
        assert self._ready.wait(30) and self.url, "the live server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveServer]:
    """The live app, with rate limits out of the fuzzer's way."""
    roomy = Limits(api_per_user=100_000, llm_per_user=100_000, llm_global=100_000,
                   login_per_email=100_000, login_per_ip=100_000)  # fmt: skip
    with LiveServer(create_app(settings.replace(limits=roomy))) as server:
        yield server


def _token(http: requests.Session, base: str, email: str) -> str:
    body = {"email": email, "password": "correct horse battery"}
    http.post(f"{base}/api/v1/auth/register", json=body, timeout=10)
    login = http.post(f"{base}/api/v1/auth/login", json=body, timeout=10)
    assert login.status_code == 200, login.text
    return str(login.json()["access_token"])


class Fuzzer:
    """Run schemathesis's generated cases for one operation against the live app."""

    def __init__(self, http: requests.Session, base: str) -> None:
        self.http = http
        self.base = base
        self.token = _token(http, base, "fuzz@example.test")
        self._fresh = itertools.count()
        self.target = ""
        self.key_id = ""

    def existing_ids(self) -> dict[str, str]:
        """A new session with a queued run (no worker here) and a queued message, an API
        key, a pipeline: real path parameters."""
        auth = {"Authorization": f"Bearer {self.token}"}
        sessions = f"{self.base}/api/v1/sessions"
        sid = self.http.post(sessions, json={}, headers=auth, timeout=10).json()["session_id"]
        posted = self.http.post(f"{sessions}/{sid}/messages", json={"content": "Hello?"},
                                headers=auth, timeout=10)  # fmt: skip
        queued = self.http.post(f"{sessions}/{sid}/messages", json={"content": "And?"},
                                headers=auth, timeout=10)  # fmt: skip
        if not self.key_id:  # one key: a user may hold API_KEYS_PER_USER of them
            key = self.http.post(f"{self.base}/api/v1/api-keys", json={}, headers=auth, timeout=10)
            self.key_id = key.json()["key_id"]
        # The fuzzer's own account is the first, so an admin; the admin routes act on another.
        other = {"email": "fuzz-target@example.test", "password": "correct horse battery"}
        target = self.http.post(f"{self.base}/api/v1/auth/register", json=other, timeout=10)
        user_id = target.json()["user"]["user_id"] if target.status_code == 201 else self.target
        self.target = user_id
        return {"session_id": sid, "run_id": posted.json()["run"]["run_id"],
                "message_id": queued.json()["message"]["message_id"],
                "key_id": self.key_id, "model": "chat",
                "user_id": user_id}  # fmt: skip

    def call(self, case: Any, checks: list[Any]) -> None:
        """Send one case and run the checks on its answer."""
        token = self.token
        if case.operation.path == "/api/v1/auth/logout":  # it revokes the token it is sent
            token = _token(self.http, self.base, f"out{next(self._fresh)}@example.test")
        case.call_and_validate(
            base_url=self.base, session=self.http, checks=checks,
            headers={"Authorization": f"Bearer {token}"}, timeout=10,
        )  # fmt: skip

    def fuzz(self, operation: Any, negative: bool, ids: dict[str, str] | None = None) -> None:
        """Generate cases (valid, or invalid with ``negative``); ``ids`` fixes path params."""
        mode = (
            schemathesis.GenerationMode.NEGATIVE
            if negative
            else schemathesis.GenerationMode.POSITIVE
        )
        checks = NEGATIVE_CHECKS if negative else CHECKS
        fixed = {k: v for k, v in (ids or {}).items() if f"{{{k}}}" in operation.path}

        @given(case=operation.as_strategy(generation_mode=mode, path_parameters=fixed or None))
        @hypothesis_settings(
            max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
            suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        def run(case: Any) -> None:
            self.call(case, checks)

        run()


def _statuses(app: web.Application) -> dict[tuple[str, str], dict[int, float]]:
    """Requests the app counted, by (method, route) and status."""
    seen: dict[tuple[str, str], dict[int, float]] = {}
    for family in app[keys.METRICS].registry.collect():
        for sample in family.samples:
            if sample.name == "chorus_http_requests_total":
                key = (sample.labels["method"], sample.labels["route"])
                seen.setdefault(key, {})[int(sample.labels["status"])] = sample.value
    return seen


def test_the_live_app_answers_as_its_document_says(live: LiveServer) -> None:
    with requests.Session() as http:
        document = http.get(f"{live.url}{OPENAPI_PATH}", timeout=10).json()
        fuzzer = Fuzzer(http, live.url)
        operations = [result.ok() for result in schema_of(document).get_all_operations()]
        assert len(operations) == len(OPERATIONS)
        for operation in operations:
            described = OPERATIONS[(operation.method.upper(), operation.path)]
            has_input = described.body is not None or described.query is not None
            fuzzer.fuzz(operation, negative=False)  # ids made up: mostly 404
            if "{" in operation.path and not described.streams:
                fuzzer.fuzz(operation, negative=False, ids=fuzzer.existing_ids())
            if has_input:
                fuzzer.fuzz(operation, negative=True)
    seen = _statuses(live.app)
    for (method, path), op in OPERATIONS.items():  # each operation was really exercised
        statuses = seen.get((method, path), {})
        varied = op.body or op.query or "{" in path  # parameterless: one distinct request
        assert sum(statuses.values()) >= (EXAMPLES if varied else 1), (method, path, statuses)
        if "{" in path and not op.streams:  # real ids reached past the 404
            assert set(statuses) - {404}, (method, path, statuses)


def schema_of(document: dict[str, Any]) -> Any:
    """The schemathesis view of the document."""
    return schemathesis.openapi.from_dict(document)


class _OpenAiError(BaseModel):
    message: str
    type: str


async def _noop(request: web.Request) -> web.Response:
    return web.json_response({})


def test_a_new_route_outside_api_is_noticed_and_may_have_its_own_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = web.Application()
    app.router.add_post("/v1/echo", _noop)
    app.router.add_get("/v1/other", _noop)
    app.router.add_get("/static/{path:.+}", _noop)  # the UI's files: not the API
    described = Operation("Echo", "compat", 200, None, errors=(400,), auth=False,
                          error_model=_OpenAiError)  # fmt: skip
    monkeypatch.setitem(OPERATIONS, ("POST", "/v1/echo"), described)
    document = build_openapi(app)
    assert set(document["paths"]) == {"/v1/echo", "/v1/other"}
    assert document["paths"]["/v1/other"]["get"]["x-undocumented"] is True
    error = document["paths"]["/v1/echo"]["post"]["responses"]["400"]
    assert error["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/_OpenAiError"
    }
    assert "_OpenAiError" in document["components"]["schemas"]
    validate(document)
