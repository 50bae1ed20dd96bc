"""What each environment variable means: the source of docs/configuration.md.

Defaults are not written here: the generator reads them from ``Settings()``. A test
fails when a Settings field has no entry, an entry names no field, or ``from_env`` does
not read the variable an entry names. A new setting needs one ``Var`` (and ``make docs``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Var:
    """One environment variable: the Settings field it sets and what it means."""

    env: str
    field: str  # attribute path in Settings, e.g. "limits.llm_per_user"
    meaning: str
    sample: str | None = None  # a valid non-default value (the test derives one if None)


SECTIONS: tuple[tuple[str, tuple[Var, ...]], ...] = (
    ("Server", (
        Var("ENV", "env", "`production` requires `SECRET_KEY` (≥ 32 bytes), "
            "`BCRYPT_ROUNDS` ≥ 12 and `MONGODB_URL`, and marks cookies `Secure`",
            sample="production"),
        Var("HOST", "host", "the address the web server (and a worker's metrics server) "
            "listens on"),
        Var("PORT", "port", "the web server's port"),
        Var("ALLOWED_ORIGINS", "allowed_origins", "comma-separated origins allowed for "
            "cookie requests, WebSocket handshakes and CORS; empty: same origin only"),
        Var("LOG_LEVEL", "log_level", "JSON logs on stderr, with request, user, session and "
            "run ids; `DEBUG` also shows each model HTTP request", sample="DEBUG"),
        Var("MAX_BODY_BYTES", "max_body_bytes", "request body cap (413 beyond)"),
        Var("UI_API_BASE", "ui_api_base", "API base URL the UI uses when it is hosted "
            "elsewhere; empty: same origin", sample="https://api.example.test"),
    )),
    ("Storage and Redis", (
        Var("REDIS_URL", "redis_url", "Redis for the queue, pub/sub, event history, rate "
            "limits, token denylist; unset: `python -m server` starts a private "
            "redis-server", sample="redis://redis.example.test:6379/0"),
        Var("REDIS_KEY_PREFIX", "redis_key_prefix", "prefix of every Redis key, channel and "
            "the arq queue"),
        Var("MONGODB_URL", "mongodb_url", "MongoDB connection string (replica set and "
            "sharded cluster URLs work unchanged); unset: SQLite in `DATA_DIR`",
            sample="mongodb://mongo.example.test:27017"),
        Var("MONGODB_DB", "mongodb_db", "MongoDB database name"),
        Var("DATA_DIR", "data_dir", "SQLite store and the generated secret key (embedded "
            "mode)", sample="/var/lib/chorus"),
    )),
    ("Security", (
        Var("SECRET_KEY", "secret_key", "signs JWTs (HS256); the cookie key is derived from "
            "it; unset in development: generated into `DATA_DIR/secret_key`",
            sample="a-secret-key-of-at-least-32-bytes-0123456789"),
        Var("BCRYPT_ROUNDS", "bcrypt_rounds", "bcrypt cost (production refuses < 12)"),
        Var("JWT_TTL_S", "jwt_ttl_s", "access token lifetime, seconds"),
    )),
    ("Rate limits (count per window, in Redis, shared by every web process)", (
        Var("RATE_LLM_PER_USER", "limits.llm_per_user", "requests that start LLM work (new "
            "message, retry) per user"),
        Var("RATE_LLM_GLOBAL", "limits.llm_global", "requests that start LLM work, all users"),
        Var("RATE_LLM_WINDOW_S", "limits.llm_window_s", "their window, seconds"),
        Var("RATE_API_PER_USER", "limits.api_per_user", "every other authenticated API "
            "request, per user"),
        Var("RATE_API_WINDOW_S", "limits.api_window_s", "its window, seconds"),
        Var("RATE_LOGIN_PER_EMAIL", "limits.login_per_email", "login attempts per email"),
        Var("RATE_LOGIN_PER_IP", "limits.login_per_ip", "login attempts per client address"),
        Var("RATE_LOGIN_WINDOW_S", "limits.login_window_s", "their window, seconds"),
        Var("RATE_REGISTER_PER_IP", "limits.register_per_ip", "registrations per client "
            "address (each costs a bcrypt hash)"),
        Var("RATE_REGISTER_WINDOW_S", "limits.register_window_s", "their window, seconds"),
    )),
    ("Abuse limits, proxies and timeouts", (
        Var("WS_RATE_PER_S", "ws_rate_per_s", "frames a socket may send per second once its "
            "burst is spent (beyond: close 1008)"),
        Var("WS_RATE_BURST", "ws_rate_burst", "frames a socket may send at once"),
        Var("WS_QUEUE_BYTES", "ws_queue_bytes", "bytes of frames queued per socket before it "
            "is closed with 1013 (a replay counts by its bytes; a newer replay of a session "
            "replaces one still queued)"),
        Var("WS_MAX_PER_USER", "ws_max_per_user", "sockets one user may hold in one web "
            "process (beyond: close 1008)"),
        Var("WS_MAX_PENDING", "ws_max_pending", "sockets still authenticating in one web "
            "process (beyond: the handshake gets 503 with `Retry-After`)"),
        Var("HTTP_IDLE_TIMEOUT_S", "http_idle_timeout_s", "a connection's deadline for its "
            "first request's headers, and for idle keep-alive; keep it above your proxy's "
            "upstream idle timeout"),
        Var("TRUSTED_PROXIES", "trusted_proxies", "comma-separated addresses or networks of "
            "reverse proxies whose `X-Forwarded-For`/`-Proto`/`-Host` are believed (client "
            "address for rate limits, scheme and host for the same-origin check); empty: "
            "none", sample="10.0.0.0/8"),
        Var("METRICS_TOKEN", "metrics_token", "when set, `/metrics` requires "
            "`Authorization: Bearer <token>` (≥ 16 characters); without it or "
            "`METRICS_PORT`, production refuses `/metrics` (403)",
            sample="a-metrics-token-0123456789"),
        Var("METRICS_PORT", "metrics_port", "serve `/metrics` on a listener of its own "
            "(the API port then answers 404); unset: on the API port", sample="9102"),
        Var("METRICS_HOST", "metrics_host", "the address of the `METRICS_PORT` listener",
            sample="0.0.0.0"),
        Var("REDIS_TIMEOUT_S", "redis_timeout_s", "deadline of every Redis command (with TCP "
            "keepalive), so a silent Redis fails a request instead of hanging it"),
        Var("MONGODB_TIMEOUT_MS", "mongodb_timeout_ms", "MongoDB `timeoutMS`: every "
            "operation's deadline"),
    )),
    ("Pipelines and models", (
        Var("PIPELINES_FILE", "pipelines_file", "agents, models, providers and pipelines "
            "(TOML, see docs/providers.md); unset: the built-in "
            "`server/pipelines/default.toml`", sample="/etc/chorus/pipelines.toml"),
        Var("DEMO_MODEL_URL", "demo_model_url", "base URL of a running demo model server; "
            "unset: started in-process when the pipelines use `${DEMO_MODEL_URL}`",
            sample="http://demo.example.test:9000/v1"),
        Var("DEMO_TOKEN_DELAY_MS", "demo_token_delay_ms", "the in-process demo model's delay "
            "per token"),
        Var("STAGE_TIMEOUT_S", "stage_timeout_s", "a stage's overall deadline"),
        Var("ATTEMPT_TIMEOUT_S", "attempt_timeout_s", "one model attempt's timeout"),
        Var("DOUBLE_TEXTING", "double_texting", "what a message sent while its session's run "
            "is active does, unless the session or the send says: `reject` (409 "
            "`session_busy`, the behaviour before this setting), `enqueue`, `interrupt` or "
            "`amend` (docs/http-api.md#double-texting)", sample="reject"),
        Var("LLM_ATTEMPTS_PER_MODEL", "llm_attempts_per_model", "attempts on one model "
            "before falling back to the next"),
        Var("LLM_BACKOFF_BASE_S", "llm_backoff_base_s", "first retry backoff (exponential, "
            "full jitter)"),
        Var("LLM_BACKOFF_MAX_S", "llm_backoff_max_s", "largest retry backoff"),
    )),
    ("Workers", (
        Var("EMBEDDED_WORKER", "embedded_worker", "run an arq worker inside "
            "`python -m server` (`0` when workers run apart)"),
        Var("WORKER_POLL_S", "worker_poll_s", "arq poll interval, seconds (workers are also "
            "woken on enqueue)"),
        Var("WORKER_MAX_JOBS", "worker_max_jobs", "concurrent stages per worker"),
        Var("WORKER_METRICS_PORT", "worker_metrics_port", "where `python -m workers` serves "
            "`/metrics` and `/healthz` (on `HOST`); `0`: nowhere"),
        Var("LEASE_TTL_S", "lease_ttl_s", "a running stage's lease lapses after this long "
            "without a renewal; the stage is then taken over by another worker", sample="10"),
        Var("LEASE_RENEW_S", "lease_renew_s", "how often the worker running a stage renews "
            "its lease (below `LEASE_TTL_S`)", sample="3"),
        Var("WATCHDOG_INTERVAL_S", "watchdog_interval_s", "how often each worker looks for "
            "lapsed leases (at most `LEASE_TTL_S`)", sample="2"),
        Var("RUN_MAX_RECOVERIES", "run_max_recoveries", "a run whose stages were taken over "
            "this many times (since the user started or retried it) fails instead", sample="3"),
        Var("WORKER_GRACE_S", "worker_grace_s", "on SIGTERM a worker stops taking jobs, lets "
            "running stages finish for this long, then hands the rest to other workers",
            sample="20"),
        Var("REAPER_INTERVAL_S", "reaper_interval_s", "how often the reaper (the last net "
            "behind leases) looks for stale runs (1–60 s)"),
        Var("REAPER_STALE_S", "reaper_stale_s", "how long a queued or running run with "
            "neither a live lease nor a waiting job may sit unchanged before it is taken "
            "over; unset: `LEASE_TTL_S` × 2", sample="30"),
        Var("APPROVAL_TIMEOUT_S", "approval_timeout_s", "a run paused at an approval gate "
            "(a stage with `approve = true`) this long is ended by the reaper: cancelled, "
            "its error saying the approval timed out", sample="3600"),
    )),
    ("Events and WebSocket", (
        Var("DELTA_FLUSH_MS", "delta_flush_ms", "token deltas are coalesced into one event "
            "at most this often"),
        Var("EVENT_HISTORY", "event_history", "per-session replay log: entries kept"),
        Var("EVENT_HISTORY_TTL_S", "event_history_ttl_s", "per-session replay log: kept this "
            "long after the last event"),
        Var("WS_AUTH_TIMEOUT_S", "ws_auth_timeout_s", "first-frame auth deadline (close 4401 "
            "after)"),
        Var("WS_HEARTBEAT_S", "ws_heartbeat_s", "WebSocket ping interval; dead peers are "
            "reaped"),
        Var("WS_QUEUE_SIZE", "ws_queue_size", "outgoing frames queued per socket before it "
            "is closed with 1013 (an SSE stream's buffer: past it, it rereads the replay log)"),
    )),
    ("Open interfaces (docs/openai.md, docs/sse.md)", (
        Var("API_KEYS_PER_USER", "api_keys_per_user", "active API keys a user may hold (409 "
            "`too_many_api_keys` beyond)"),
        Var("SSE_HEARTBEAT_S", "sse_heartbeat_s", "idle time after which SSE streams "
            "(session events, `/v1/chat/completions`) send a `: ping` comment"),
    )),
    ("Notifications (docs/webhooks.md)", (
        Var("WEBHOOK_TIMEOUT_S", "webhook_timeout_s", "each webhook POST's deadline, "
            "connecting included; a timeout is retried"),
        Var("WEBHOOK_MAX_ATTEMPTS", "webhook_max_attempts", "POSTs per delivery at most "
            "(connection errors, timeouts, 5xx and 429 are retried; other answers are final)"),
        Var("WEBHOOK_BACKOFF_BASE_S", "webhook_backoff_base_s", "wait before the first "
            "retry; doubled for each next one, with jitter (half fixed, half random)"),
        Var("WEBHOOK_BACKOFF_MAX_S", "webhook_backoff_max_s", "the longest wait between "
            "two attempts"),
        Var("WEBHOOK_ALLOW_PRIVATE", "webhook_allow_private", "`1`: webhooks may reach "
            "loopback, private, link-local and other non-public addresses; `0`: such "
            "addresses (as written in the URL or as its name resolves) fail the delivery at "
            "once; unset: `0` when `ENV=production`, else `1`", sample="0"),
        Var("PRESENCE_TTL_S", "presence_ttl_s", "a socket or SSE stream watching a session "
            "counts as present this long unless its web process refreshes it (every third "
            "of it); a crashed process's watchers lapse after it"),
    )),
    ("Budgets and admin (docs/budgets.md)", (
        Var("BUDGET_TOKENS_PER_DAY", "budget_tokens_per_day", "tokens (prompt + completion) "
            "a user may spend per UTC day, unless an admin set the user's own; 0: unlimited",
            sample="200000"),
        Var("BUDGET_COST_PER_DAY", "budget_cost_per_day", "USD a user may spend per UTC day, "
            "unless an admin set the user's own; 0: unlimited", sample="2.5"),
        Var("BUDGET_GLOBAL_TOKENS_PER_DAY", "budget_global_tokens_per_day", "tokens every "
            "user together may spend per UTC day; 0: unlimited", sample="5000000"),
        Var("BUDGET_GLOBAL_COST_PER_DAY", "budget_global_cost_per_day", "USD every user "
            "together may spend per UTC day; 0: unlimited", sample="50"),
        Var("FIRST_USER_ADMIN", "first_user_admin", "the first account registered becomes "
            "an admin; `0`: admins only by `python -m server admin promote`", sample="0"),
    )),
)  # fmt: skip


def all_vars() -> tuple[Var, ...]:
    """Every documented variable, in document order."""
    return tuple(var for _title, group in SECTIONS for var in group)
