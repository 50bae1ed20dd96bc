"""The one place Redis clients are configured: the web server's and the workers'."""

from __future__ import annotations

from arq.connections import ArqRedis

from server.config import Settings
from server.redis_keys import RedisKeys


def redis_client(settings: Settings, *, pubsub: bool = False) -> ArqRedis:
    """Build a Redis client (arq's subclass: it also enqueues jobs) — web and workers alike.

    Every command has a deadline (``REDIS_TIMEOUT_S``) and the socket TCP keepalive, so a
    silent Redis fails a request or a job instead of hanging it; pub/sub readers poll
    with shorter timeouts of their own. Workers pass it to arq as ``redis_pool``.
    """
    assert settings.redis_url is not None, "REDIS_URL is resolved before clients are built"
    client: ArqRedis = ArqRedis.from_url(
        settings.redis_url.get_secret_value(),
        health_check_interval=15,
        socket_connect_timeout=min(5.0, settings.redis_timeout_s),
        # A pub/sub reader waits with get_message(timeout=...) of its own; a socket timeout
        # on its connection made redis-py swallow the task's cancellation at shutdown (the
        # EventHub's subscriber task never ended), so pub/sub clients have none.
        socket_timeout=None if pubsub else settings.redis_timeout_s,
        socket_keepalive=True,
        # No retry_on_timeout: with health checks on, redis-py 5.3 then retries a silent
        # server's timeouts without end (measured: a PING hung past 20 s at a 0.3 s
        # timeout). A timed-out command fails; callers that retry do it with backoff.
    )
    client.default_queue_name = RedisKeys(settings.redis_key_prefix).arq_queue()
    return client
