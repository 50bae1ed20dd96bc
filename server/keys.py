"""Every typed application key: state travels through these, never module globals."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from redis.asyncio import Redis

from server.auth.passwords import PasswordHasher
from server.auth.tokens import TokenService
from server.config import Settings
from server.events.bus import EventBus
from server.events.hub import EventHub
from server.metrics import Metrics
from server.ratelimit import RateLimiter
from server.redis_keys import RedisKeys
from server.store.base import Store

if TYPE_CHECKING:
    from server.apikeys.service import ApiKeyService
    from server.budgets import BudgetBook
    from server.notify.webhooks import WebhookService
    from server.pipelines import AgentRegistry
    from server.runs.service import RunService
    from server.ws.limits import SocketLimits

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", Redis)
REDIS_KEYS = web.AppKey("redis_keys", RedisKeys)
STORE = web.AppKey("store", Store)
TOKENS = web.AppKey("tokens", TokenService)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
METRICS = web.AppKey("metrics", Metrics)
PASSWORDS = web.AppKey("passwords", PasswordHasher)
PIPELINES: web.AppKey[AgentRegistry] = web.AppKey("pipelines")
EVENT_BUS = web.AppKey("event_bus", EventBus)
EVENT_HUB = web.AppKey("event_hub", EventHub)
RUN_SERVICE: web.AppKey[RunService] = web.AppKey("run_service")
WS_LIMITS: web.AppKey[SocketLimits] = web.AppKey("ws_limits")
# Whether the built-in demo model is answering (set by the embedded bootstrap; the UI says so).
DEMO_MODEL_ACTIVE = web.AppKey("demo_model_active", bool)
API_KEYS: web.AppKey[ApiKeyService] = web.AppKey("api_keys")
WEBHOOKS: web.AppKey[WebhookService] = web.AppKey("webhooks")
BUDGETS: web.AppKey[BudgetBook] = web.AppKey("budgets")
