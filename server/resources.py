"""Cleanup contexts: each opens one shared client at start-up and closes it at shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from arq.connections import ArqRedis

from server import keys
from server.auth.tokens import TokenService
from server.budgets import BudgetBook
from server.events.bus import EventBus
from server.ratelimit import RateLimiter
from server.redis_client import redis_client
from server.runs.leases import LeaseBook
from server.runs.service import RunDeps, RunService
from server.store.factory import open_store


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the Redis client and the services built on it."""
    settings = app[keys.SETTINGS]
    assert settings.redis_url is not None, "REDIS_URL is resolved before create_app"
    assert settings.secret_key is not None, "SECRET_KEY is resolved before create_app"
    redis = redis_client(settings)
    app[keys.REDIS] = redis
    app[keys.TOKENS] = TokenService(
        settings.secret_key.get_secret_value(), settings.jwt_ttl_s, redis, app[keys.REDIS_KEYS]
    )
    app[keys.RATE_LIMITER] = RateLimiter(redis, app[keys.REDIS_KEYS])
    app[keys.EVENT_BUS] = EventBus(
        redis, app[keys.REDIS_KEYS], settings.event_history, settings.event_history_ttl_s
    )
    yield
    await redis.aclose()


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the document store (indexes created idempotently) and close it."""
    store = await open_store(app[keys.SETTINGS])
    app[keys.STORE] = store
    yield
    await store.close()


async def run_service_ctx(app: web.Application) -> AsyncIterator[None]:
    """Build the RunService once Redis and the store are open."""
    redis, settings = app[keys.REDIS], app[keys.SETTINGS]
    assert isinstance(redis, ArqRedis)
    leases = LeaseBook(redis, app[keys.REDIS_KEYS], settings.lease_ttl_s, settings.lease_renew_s)
    budgets = BudgetBook(redis, app[keys.REDIS_KEYS], app[keys.STORE], settings)
    app[keys.BUDGETS] = budgets
    app[keys.RUN_SERVICE] = RunService(
        RunDeps(settings=settings, store=app[keys.STORE], redis=redis, keys=app[keys.REDIS_KEYS],
                bus=app[keys.EVENT_BUS], registry=app[keys.PIPELINES], leases=leases,
                limiter=app[keys.RATE_LIMITER], budgets=budgets)
    )  # fmt: skip
    yield
