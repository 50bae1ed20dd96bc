"""create_app(settings): the one place the web application is wired."""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web
from aiohttp_session import setup as setup_sessions
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from server import keys
from server.admin.routes import routes as admin_routes
from server.api.health import routes as health_routes
from server.api.metrics import setup_metrics
from server.api.openapi import setup_openapi
from server.api.usage import routes as usage_routes
from server.apikeys.routes import routes as api_key_routes
from server.apikeys.service import api_keys_ctx
from server.auth.passwords import PasswordHasher
from server.auth.routes import routes as auth_routes
from server.config import Settings
from server.cors import setup_cors
from server.errors import error_middleware
from server.metrics import Metrics
from server.middlewares import hide_server_version, reject_undecodable, request_context
from server.notify.routes import routes as webhook_routes
from server.notify.routes import webhooks_ctx
from server.openai_api.routes import routes as openai_routes
from server.pipelines import AgentRegistry
from server.pipelines.routes import routes as pipeline_routes
from server.pipelines.startup import check_startable
from server.proxies import TrustedProxies
from server.redis_keys import RedisKeys
from server.resources import redis_ctx, run_service_ctx, store_ctx
from server.runs.routes import routes as run_routes
from server.serverlog import server_log
from server.sessions.routes import routes as session_routes
from server.sse.routes import setup_sse
from server.ui import setup_ui
from server.ws import setup_ws

SESSION_COOKIE = "chorus_session"


def _cookie_storage(settings: Settings) -> EncryptedCookieStorage:
    assert settings.secret_key is not None
    # A key of its own for the cookie, derived from SECRET_KEY (never the JWT key itself).
    key = settings.secret_key.get_secret_value().encode()
    digest = hashlib.sha256(b"chorus-cookie:" + key).digest()
    return EncryptedCookieStorage(
        digest,  # raw 32 bytes: the storage base64-encodes them into a Fernet key
        cookie_name=SESSION_COOKIE,
        httponly=True,
        samesite="Lax",
        secure=settings.production,
        max_age=settings.jwt_ttl_s,
    )


def create_app(settings: Settings) -> web.Application:
    """Build the web application for these settings (Redis and secret already resolved)."""
    if settings.redis_url is None or settings.secret_key is None:
        raise ValueError("create_app needs redis_url and secret_key resolved")
    app = web.Application(
        middlewares=[
            TrustedProxies(settings.trusted_proxies).middleware,
            request_context,
            error_middleware,
            reject_undecodable,
        ],
        client_max_size=settings.max_body_bytes,
    )
    app[keys.SETTINGS] = settings
    app[keys.REDIS_KEYS] = RedisKeys(settings.redis_key_prefix)
    app[keys.METRICS] = Metrics()
    app[keys.PASSWORDS] = PasswordHasher(settings.bcrypt_rounds)
    app.on_cleanup.append(app[keys.PASSWORDS].close)
    app[keys.PIPELINES] = AgentRegistry.load(
        settings.pipelines_file, demo_url=settings.demo_model_url, keys=settings.provider_keys
    )
    check_startable(app[keys.PIPELINES])
    app[keys.DEMO_MODEL_ACTIVE] = settings.demo_model_url is not None
    app.cleanup_ctx.append(redis_ctx)
    app.cleanup_ctx.append(store_ctx)
    app.cleanup_ctx.append(run_service_ctx)
    app.cleanup_ctx.append(api_keys_ctx)
    app.cleanup_ctx.append(webhooks_ctx)
    setup_sessions(app, _cookie_storage(settings))
    app.add_routes(health_routes)
    setup_metrics(app)
    app.on_response_prepare.append(hide_server_version)
    app.add_routes(auth_routes)
    app.add_routes(session_routes)
    app.add_routes(run_routes)
    app.add_routes(pipeline_routes)
    app.add_routes(usage_routes)
    app.add_routes(api_key_routes)
    app.add_routes(webhook_routes)
    app.add_routes(admin_routes)
    app.add_routes(openai_routes)
    setup_ws(app)
    setup_openapi(app)
    setup_sse(app)
    setup_cors(app)
    setup_ui(app)
    return app


def runner_options(settings: Settings) -> dict[str, Any]:
    """Options of the AppRunner serving the app (``python -m server`` and tests alike).

    ``keepalive_timeout`` is also aiohttp's deadline for a connection's first request
    headers: a half-sent request is dropped after it. ``logger`` keeps unparsable client
    requests out of the error log.
    """
    return {"keepalive_timeout": settings.http_idle_timeout_s, "logger": server_log()}
