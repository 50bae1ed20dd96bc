"""The one start-up line of a process: what runs where (URL, store, Redis, models, workers)."""

from __future__ import annotations

import logging
import sys
from urllib.parse import urlsplit, urlunsplit

from server.config import Settings, secret
from server.pipelines import AgentRegistry
from server.store.factory import SQLITE_FILE

log = logging.getLogger("chorus.startup")


def redact(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def describe_store(settings: Settings) -> str:
    """Name the document store and where it lives."""
    if settings.mongodb_url:
        return f"mongodb {redact(settings.mongodb_url.get_secret_value())} db={settings.mongodb_db}"
    return f"sqlite {settings.data_dir / SQLITE_FILE}"


def describe_models(registry: AgentRegistry) -> str:
    """Name each provider with its endpoint, or why it cannot be called."""
    parts = []
    for provider in registry.providers():
        where = provider.base_url if provider.problem is None else f"UNUSABLE: {provider.problem}"
        parts.append(f"{provider.name} {where}")
    return ", ".join(parts)


def announce(
    headline: str,
    settings: Settings,
    registry: AgentRegistry,
    workers: str,
    *,
    private_redis: bool = False,
) -> str:
    """Print the start-up line on stdout (plain, to stand out) and log it as JSON; return it."""
    redis = redact(secret(settings.redis_url) or "none")
    if private_redis:
        redis += " (private redis-server)"
    fields = {
        "store": describe_store(settings),
        "redis": redis,
        "models": describe_models(registry),
        "workers": workers,
    }
    line = f"{headline} · " + " · ".join(f"{k}: {v}" for k, v in fields.items())
    print(line, file=sys.stdout, flush=True)
    log.info(headline, extra=fields)
    return line
