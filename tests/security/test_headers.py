"""Part 2 and 4: the CSP is built without request data; no versions in ``Server``."""

from __future__ import annotations

import logging

import pytest

from tests.security.conftest import UPGRADE, Sec, http_request


@pytest.mark.parametrize(
    "host",
    [b"evil.example; report-uri https://evil.example/r", b"evil.example; script-src *",
     b"chorus.test"],
    ids=["host-adds-report-uri", "host-adds-script-src", "plain-host"],
)  # fmt: skip
async def test_the_csp_ignores_the_host_header(sec: Sec, host: bytes) -> None:
    resp = await sec.raw(http_request("GET", "/", host=host))
    assert resp.status == 200
    csp = resp.headers["content-security-policy"]
    assert "evil" not in csp and "report-uri" not in csp
    assert "script-src 'self';" in csp and "connect-src 'self';" in csp
    assert csp.count("script-src") == 1
    await sec.still_serving()


async def test_the_csp_names_the_configured_api_origin(make_sec: object) -> None:
    sec = await make_sec(ui_api_base="https://api.example.test")  # type: ignore[operator]
    resp = await sec.client.get("/")
    connect = "connect-src 'self' https://api.example.test wss://api.example.test;"
    assert connect in resp.headers["Content-Security-Policy"]
    await sec.still_serving()


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/", 200), ("GET", "/api/v1/auth/me", 401), ("GET", "/nowhere", 404),
     ("GET", "/healthz", 200), ("POST", "/api/v1/auth/login", 415)],
    ids=["ui", "api-error", "not-found", "healthz", "unsupported-media"],
)  # fmt: skip
async def test_the_server_header_names_no_versions(
    sec: Sec, method: str, path: str, status: int
) -> None:
    resp = await sec.raw(http_request(method, path))
    assert (resp.status, resp.headers["server"]) == (status, "Chorus")
    await sec.still_serving()


async def test_the_websocket_upgrade_names_no_versions(sec: Sec) -> None:
    auth = [(b"Authorization", f"Bearer {sec.bob.user.token}".encode())]
    resp = await sec.raw(http_request("GET", "/api/v1/ws", [*UPGRADE, *auth]), head_only=True)
    assert (resp.status, resp.headers["server"]) == (101, "Chorus")
    await sec.still_serving()


async def test_an_unparsable_request_is_not_an_error_log_entry(
    sec: Sec, caplog: pytest.LogCaptureFixture
) -> None:
    # aiohttp answers 400 itself; anyone can send this, so no traceback at ERROR level.
    with caplog.at_level(logging.INFO, logger="aiohttp.server"):
        resp = await sec.raw(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n")
    assert resp.status == 400
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("Error handling request" in r.getMessage() for r in caplog.records)
    await sec.still_serving()


@pytest.mark.parametrize(
    "path",
    ["/static/%00", "/static/js/app.js%00.css", "/static/" + "a" * 300 + ".js",
     "/static/" + "/".join(["a" * 250] * 20) + ".js"],
    ids=["nul", "nul-before-suffix", "name-too-long", "path-too-long"],
)  # fmt: skip
async def test_unservable_asset_paths_are_404(sec: Sec, path: str) -> None:
    # Found by test_properties: a NUL byte made pathlib raise (500).
    resp = await sec.client.get(path)
    assert resp.status == 404
    await sec.still_serving()
