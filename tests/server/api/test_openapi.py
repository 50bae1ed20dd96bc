"""The OpenAPI document: it covers every route, is valid OpenAPI 3.1, is served, is what
docs/openapi.json holds, and the live app answers as it says (schemathesis)."""

from __future__ import annotations

import asyncio
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
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from server import keys
from server.api.openapi import OPENAPI_PATH, build_openapi, documented_routes, render
from server.api.operations import OPERATIONS
from server.app import create_app
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


def _fuzz(operation: Any, mode: schemathesis.GenerationMode, call: Any) -> None:
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    @hypothesis_settings(
        max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    def run(case: Any, data: Any) -> None:
        call(case)

    run()


def test_the_live_app_answers_as_its_document_says(live: LiveServer) -> None:
    with requests.Session() as http:
        document = http.get(f"{live.url}{OPENAPI_PATH}", timeout=10).json()
        token = _token(http, live.url, "fuzz@example.test")
        schema = schemathesis.openapi.from_dict(document)
        fresh = iter(range(1_000_000))
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == len(OPERATIONS)
        for operation in operations:
            logout = operation.path == "/api/v1/auth/logout"

            def call(case: Any, checks: list[Any], logout: bool = logout) -> None:
                # Logging out revokes the token: that operation gets a token of its own.
                bearer = _token(http, live.url, f"out{next(fresh)}@x.test") if logout else token
                case.call_and_validate(
                    base_url=live.url, session=http, checks=checks,
                    headers={"Authorization": f"Bearer {bearer}"},
                )  # fmt: skip

            _fuzz(operation, schemathesis.GenerationMode.POSITIVE, lambda c: call(c, CHECKS))
            described = OPERATIONS[(operation.method.upper(), operation.path)]
            if described.body is not None or described.query is not None:
                _fuzz(operation, schemathesis.GenerationMode.NEGATIVE,
                      lambda c: call(c, NEGATIVE_CHECKS))  # fmt: skip
    counted = [(s.labels["method"], s.labels["route"], s.value)
               for family in live.app[keys.METRICS].registry.collect()
               for s in family.samples if s.name == "chorus_http_requests_total"]  # fmt: skip
    for (method, path), op in OPERATIONS.items():  # each operation was really exercised
        made = sum(value for m, p, value in counted if (m, p) == (method, path))
        varied = op.body or op.query or "{" in path  # parameterless: one distinct request
        assert made >= (EXAMPLES if varied else 1), (method, path, made)
