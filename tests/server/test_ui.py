"""Serving the chat UI (/, /static/, /config.json) and CORS for the API."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.app import create_app
from server.config import Settings
from server.ui import default_static_dir
from tests.conftest import ALLOWED_ORIGIN, ClientFactory
from tests.support.api import error_of, make_user

Client = TestClient[Any, web.Application]
STATIC = default_static_dir()
OTHER_ORIGIN = "http://evil.example.test"
_IMPORT = re.compile(r"""(?:from|import)\s*["'](\.{1,2}/[^"']+)["']""")


async def test_index_is_served_with_html_type_and_policy(client: Client) -> None:
    resp = await client.get("/")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    body = await resp.text()
    assert '<script type="module" src="/static/js/app.js">' in body


async def test_head_of_index(client: Client) -> None:
    resp = await client.head("/")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/html")


async def test_every_module_is_served_as_javascript(client: Client) -> None:
    modules = sorted((STATIC / "js").rglob("*.js"))
    assert modules, "static/js has modules"
    for path in modules:
        rel = path.relative_to(STATIC).as_posix()
        resp = await client.get(f"/static/{rel}")
        assert resp.status == 200, rel
        assert resp.headers["Content-Type"] == "text/javascript; charset=utf-8", rel
        assert resp.headers["Cache-Control"] == "no-cache", rel
        assert resp.headers.get("ETag"), rel


def test_relative_imports_resolve() -> None:
    for path in (STATIC / "js").rglob("*.js"):
        for target in _IMPORT.findall(path.read_text()):
            assert (path.parent / target).resolve().is_file(), f"{path.name} imports {target}"


async def test_stylesheet_and_icon_types(client: Client) -> None:
    css = await client.get("/static/css/app.css")
    assert css.status == 200
    assert css.headers["Content-Type"] == "text/css; charset=utf-8"
    icon = await client.get("/static/favicon.svg")
    assert icon.status == 200
    assert icon.headers["Content-Type"] == "image/svg+xml"


async def test_conditional_get_answers_304(client: Client) -> None:
    first = await client.get("/static/js/app.js")
    etag = first.headers["ETag"]
    again = await client.get("/static/js/app.js", headers={"If-None-Match": etag})
    assert again.status == 304


async def test_static_never_leaves_its_directory(client: Client) -> None:
    for path in (
        "/static/../server/app.py",
        "/static/%2e%2e/server/app.py",
        "/static/js/%2e%2e/%2e%2e/pyproject.toml",
        "/static/js//app.js",
        "/static/.hidden.js",
        "/static/README.md",  # not an asset type
        "/static/js/missing.js",
        "/static/js",
    ):
        resp = await client.get(path)
        assert resp.status == 404, path


async def test_config_json_defaults(client: Client) -> None:
    resp = await client.get("/config.json")
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"
    assert await resp.json() == {"api_base": "", "demo_model": False}


async def test_config_json_reports_api_base_and_demo_model(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    app = create_app(settings.replace(ui_api_base="https://api.example.test"))
    app[keys.DEMO_MODEL_ACTIVE] = True
    client = await aiohttp_client(app)
    body = await (await client.get("/config.json")).json()
    assert body == {"api_base": "https://api.example.test", "demo_model": True}
    csp = (await client.get("/")).headers["Content-Security-Policy"]
    assert "https://api.example.test" in csp and "wss://api.example.test" in csp


def _preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "content-type, x-requested-with",
    }


async def test_preflight_from_allowed_origin(client: Client) -> None:
    resp = await client.options("/api/v1/sessions", headers=_preflight(ALLOWED_ORIGIN))
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert resp.headers["Access-Control-Allow-Credentials"] == "true"
    assert "X-Requested-With" in resp.headers["Access-Control-Allow-Headers"]
    assert "PATCH" in resp.headers["Access-Control-Allow-Methods"]
    assert "Origin" in resp.headers["Vary"]


async def test_preflight_for_a_path_with_parameters(client: Client) -> None:
    resp = await client.options(
        "/api/v1/sessions/abc", headers=_preflight(ALLOWED_ORIGIN, "DELETE")
    )
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN


async def test_preflight_from_other_origin_is_refused(client: Client) -> None:
    resp = await client.options("/api/v1/sessions", headers=_preflight(OTHER_ORIGIN))
    assert await error_of(resp) == (403, "forbidden")
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_plain_options_is_not_a_preflight(client: Client) -> None:
    resp = await client.options("/api/v1/sessions")
    assert await error_of(resp) == (405, "method_not_allowed")


async def test_error_responses_are_readable_by_allowed_origin(client: Client) -> None:
    resp = await client.get("/api/v1/auth/me", headers={"Origin": ALLOWED_ORIGIN})
    assert resp.status == 401
    assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert resp.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Retry-After" in resp.headers["Access-Control-Expose-Headers"]


async def test_other_origin_gets_no_cors_headers(client: Client) -> None:
    resp = await client.get("/api/v1/auth/me", headers={"Origin": OTHER_ORIGIN})
    assert resp.status == 401
    assert "Access-Control-Allow-Origin" not in resp.headers
    assert "Origin" in resp.headers["Vary"]


async def test_non_api_paths_get_no_cors_headers(client: Client) -> None:
    resp = await client.get("/config.json", headers={"Origin": ALLOWED_ORIGIN})
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_cookie_request_from_allowed_origin(client: Client) -> None:
    await make_user(client)  # the login sets the session cookie in the client's jar
    me = await client.get("/api/v1/auth/me", headers={"Origin": ALLOWED_ORIGIN})
    assert me.status == 200
    assert me.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    headers = {"Origin": ALLOWED_ORIGIN, "X-Requested-With": "fetch"}
    resp = await client.post("/api/v1/auth/logout", headers=headers)
    assert resp.status == 204, await resp.text()
    assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert (await client.get("/api/v1/auth/me")).status == 401


def test_default_static_dir_has_the_ui() -> None:
    assert (STATIC / "index.html").is_file()
    assert Path(STATIC / "js" / "app.js").is_file()
