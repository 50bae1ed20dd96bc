"""Cleanup contexts: each opens one shared client at start-up and closes it at shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from arq.connections import ArqRedis

from server import keys
from server.auth.tokens import TokenService
from server.config import Settings
from server.events.bus import EventBus
from server.ratelimit import RateLimiter
from server.redis_keys import RedisKeys
from server.runs.leases import LeaseBook
from server.runs.service import RunDeps, RunService
from server.store.factory import open_store


def redis_client(settings: Settings) -> ArqRedis:
    """Build a Redis client (arq's subclass: it also enqueues jobs) — web and workers alike.

    Every command has a deadline (``REDIS_TIMEOUT_S``) and the socket TCP keepalive, so a
    silent Redis fails a request or a job instead of hanging it; pub/sub readers poll
    with shorter timeouts of their own. Workers pass it to arq as ``redis_pool``.
    """
    assert settings.redis_url is not None, "REDIS_URL is resolved before clients are built"
    client: ArqRedis = ArqRedis.from_url(
        settings.redis_url,
        health_check_interval=15,
        socket_connect_timeout=min(5.0, settings.redis_timeout_s),
        socket_timeout=settings.redis_timeout_s,
        socket_keepalive=True,
        retry_on_timeout=True,
    )
    client.default_queue_name = RedisKeys(settings.redis_key_prefix).arq_queue()
    return client


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the Redis client and the services built on it."""
    settings = app[keys.SETTINGS]
    assert settings.redis_url is not None, "REDIS_URL is resolved before create_app"
    assert settings.secret_key is not None, "SECRET_KEY is resolved before create_app"
    redis = redis_client(settings)
    app[keys.REDIS] = redis
    app[keys.TOKENS] = TokenService(
        settings.secret_key, settings.jwt_ttl_s, redis, app[keys.REDIS_KEYS]
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
    app[keys.RUN_SERVICE] = RunService(
        RunDeps(settings=settings, store=app[keys.STORE], redis=redis, keys=app[keys.REDIS_KEYS],
                bus=app[keys.EVENT_BUS], registry=app[keys.PIPELINES], leases=leases,
                limiter=app[keys.RATE_LIMITER])
    )  # fmt: skip
    yield
