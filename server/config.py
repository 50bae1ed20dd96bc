"""Settings: read from the environment once, at start-up, into one frozen object."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def _optional_float(env: Mapping[str, str], name: str) -> float | None:
    return _float(env, name, 0.0) if env.get(name) else None


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = env.get(name, "")
    return tuple(item.strip().rstrip("/") for item in raw.split(",") if item.strip())


def _hardening(env: Mapping[str, str]) -> dict[str, Any]:
    """Read the abuse-limit, proxy, metrics and timeout settings."""
    d = Settings
    return {
        "ws_queue_bytes": _int(env, "WS_QUEUE_BYTES", d.ws_queue_bytes, 64 * 1024),
        "ws_rate_per_s": _float(env, "WS_RATE_PER_S", d.ws_rate_per_s),
        "ws_rate_burst": _int(env, "WS_RATE_BURST", d.ws_rate_burst, 1),
        "ws_max_per_user": _int(env, "WS_MAX_PER_USER", d.ws_max_per_user, 1),
        "ws_max_pending": _int(env, "WS_MAX_PENDING", d.ws_max_pending, 1),
        "http_idle_timeout_s": _float(env, "HTTP_IDLE_TIMEOUT_S", d.http_idle_timeout_s),
        "trusted_proxies": _list(env, "TRUSTED_PROXIES"),
        "metrics_token": env.get("METRICS_TOKEN") or None,
        "metrics_port": _int(env, "METRICS_PORT", 0) or None,
        "metrics_host": env.get("METRICS_HOST", d.metrics_host),
        "redis_timeout_s": _float(env, "REDIS_TIMEOUT_S", d.redis_timeout_s),
        "mongodb_timeout_ms": _int(env, "MONGODB_TIMEOUT_MS", d.mongodb_timeout_ms, 100),
    }


def _budgets(env: Mapping[str, str]) -> dict[str, Any]:
    """Read the daily budgets (0: unlimited) and who becomes admin."""
    budgets: dict[str, Any] = {
        "budget_tokens_per_day": _int(env, "BUDGET_TOKENS_PER_DAY", 0),
        "budget_global_tokens_per_day": _int(env, "BUDGET_GLOBAL_TOKENS_PER_DAY", 0),
    }
    for name in ("BUDGET_COST_PER_DAY", "BUDGET_GLOBAL_COST_PER_DAY"):
        value = _float(env, name, 0.0)
        if value < 0:
            raise ConfigError(f"{name} must be >= 0, got {value}")
        budgets[name.lower()] = value
    budgets["first_user_admin"] = env.get("FIRST_USER_ADMIN", "1") not in ("0", "false", "no")
    return budgets


@dataclass(frozen=True)
class Limits:
    """Rate limits; each is (count, window in seconds)."""

    llm_per_user: int = 100
    llm_global: int = 10_000
    llm_window_s: int = 3600
    api_per_user: int = 1200
    api_window_s: int = 60
    login_per_email: int = 10
    login_per_ip: int = 50
    login_window_s: int = 300
    # Each registration costs a bcrypt hash: limited per client address.
    register_per_ip: int = 20
    register_window_s: int = 3600


@dataclass(frozen=True)
class Settings:
    """Every knob Chorus reads; see the configuration table in README.md."""

    env: Literal["production", "development"] = "development"
    host: str = "127.0.0.1"
    port: int = 8080
    redis_url: str | None = None
    mongodb_url: str | None = None
    mongodb_db: str = "chorus"
    data_dir: Path = Path("data")
    secret_key: str | None = None
    allowed_origins: tuple[str, ...] = ()
    log_level: str = "INFO"
    bcrypt_rounds: int = 12
    jwt_ttl_s: int = 24 * 3600
    max_body_bytes: int = 1024 * 1024
    limits: Limits = field(default_factory=Limits)
    redis_key_prefix: str = "chorus"
    # Worker and run knobs (read here too: the same object serves server and workers).
    pipelines_file: Path | None = None
    embedded_worker: bool = True
    delta_flush_ms: int = 50
    stage_timeout_s: float = 120.0
    attempt_timeout_s: float = 30.0
    # Stage leases (DESIGN §9): a worker renews its stage's lease every lease_renew_s; a lease
    # not renewed for lease_ttl_s lapses and a watchdog (every watchdog_interval_s, in every
    # worker) takes the stage over. A run taken over more than run_max_recoveries times fails.
    lease_ttl_s: float = 6.0
    lease_renew_s: float = 2.0
    watchdog_interval_s: float = 1.0
    run_max_recoveries: int = 5
    # On SIGTERM a worker lets running stages finish for worker_grace_s, then hands them back.
    worker_grace_s: float = 8.0
    # The reaper, the last net: how often it runs, and after how long unchanged a run with
    # neither a live lease nor a waiting job is taken over (None: lease_ttl_s * 2).
    reaper_interval_s: int = 5
    reaper_stale_s: float | None = None
    # Model chain retries (DESIGN §6): attempts per model, exponential backoff with full jitter.
    llm_attempts_per_model: int = 3
    llm_backoff_base_s: float = 0.25
    llm_backoff_max_s: float = 8.0
    event_history: int = 5000
    event_history_ttl_s: int = 6 * 3600
    worker_max_jobs: int = 600
    worker_poll_s: float = 0.005
    demo_token_delay_ms: float = 5.0
    demo_model_url: str | None = None
    ui_api_base: str = ""
    # WebSocket knobs (DESIGN §5).
    ws_auth_timeout_s: float = 10.0
    ws_heartbeat_s: float = 20.0
    ws_queue_size: int = 1024
    # Operations: where `python -m workers` serves /metrics and /healthz (0: nowhere).
    worker_metrics_port: int = 9101
    # Abuse limits and timeouts (see "Limits" in README.md).
    ws_queue_bytes: int = 16 * 1024 * 1024
    ws_rate_per_s: float = 20.0
    ws_rate_burst: int = 200
    ws_max_per_user: int = 32
    ws_max_pending: int = 1000
    http_idle_timeout_s: float = 75.0
    trusted_proxies: tuple[str, ...] = ()
    metrics_token: str | None = field(default=None, repr=False)
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    redis_timeout_s: float = 10.0
    mongodb_timeout_ms: int = 10_000
    # Open interfaces (API keys, SSE, the OpenAI-compatible endpoint).
    api_keys_per_user: int = 20
    sse_heartbeat_s: float = 15.0
    # Daily budgets per UTC day (docs/budgets.md): a user's default (an admin may set one per
    # user) and the server's total; 0 is unlimited. The first registered user becomes admin.
    budget_tokens_per_day: int = 0
    budget_cost_per_day: float = 0.0
    budget_global_tokens_per_day: int = 0
    budget_global_cost_per_day: float = 0.0
    first_user_admin: bool = True

    @property
    def production(self) -> bool:
        """Whether the stricter production rules apply."""
        return self.env == "production"

    @property
    def reaper_min_age_s(self) -> float:
        """How long a run with no lease and no waiting job sits before the reaper takes it."""
        return self.reaper_stale_s if self.reaper_stale_s is not None else self.lease_ttl_s * 2

    @property
    def embedded(self) -> bool:
        """Whether the embedded mode must supply Redis (no REDIS_URL given)."""
        return self.redis_url is None

    def replace(self, **changes: object) -> Settings:
        """Return a copy with some fields changed (used by the embedded bootstrap and tests)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from the environment; raise ConfigError naming a bad one."""
        env = os.environ if env is None else env
        mode = env.get("ENV", "development").lower()
        if mode not in ("production", "development"):
            raise ConfigError(f"ENV must be 'production' or 'development', got {mode!r}")
        limits = Limits(
            llm_per_user=_int(env, "RATE_LLM_PER_USER", Limits.llm_per_user, 1),
            llm_global=_int(env, "RATE_LLM_GLOBAL", Limits.llm_global, 1),
            llm_window_s=_int(env, "RATE_LLM_WINDOW_S", Limits.llm_window_s, 1),
            api_per_user=_int(env, "RATE_API_PER_USER", Limits.api_per_user, 1),
            api_window_s=_int(env, "RATE_API_WINDOW_S", Limits.api_window_s, 1),
            login_per_email=_int(env, "RATE_LOGIN_PER_EMAIL", Limits.login_per_email, 1),
            login_per_ip=_int(env, "RATE_LOGIN_PER_IP", Limits.login_per_ip, 1),
            login_window_s=_int(env, "RATE_LOGIN_WINDOW_S", Limits.login_window_s, 1),
            register_per_ip=_int(env, "RATE_REGISTER_PER_IP", Limits.register_per_ip, 1),
            register_window_s=_int(env, "RATE_REGISTER_WINDOW_S", Limits.register_window_s, 1),
        )
        settings = cls(
            env=mode,  # type: ignore[arg-type]
            host=env.get("HOST", cls.host),
            port=_int(env, "PORT", cls.port),
            redis_url=env.get("REDIS_URL") or None,
            mongodb_url=env.get("MONGODB_URL") or None,
            mongodb_db=env.get("MONGODB_DB", cls.mongodb_db),
            data_dir=Path(env.get("DATA_DIR", "data")),
            secret_key=env.get("SECRET_KEY") or None,
            allowed_origins=_list(env, "ALLOWED_ORIGINS"),
            log_level=env.get("LOG_LEVEL", cls.log_level).upper(),
            bcrypt_rounds=_int(env, "BCRYPT_ROUNDS", cls.bcrypt_rounds, 4),
            jwt_ttl_s=_int(env, "JWT_TTL_S", cls.jwt_ttl_s, 60),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", cls.max_body_bytes, 1024),
            limits=limits,
            redis_key_prefix=env.get("REDIS_KEY_PREFIX", cls.redis_key_prefix),
            pipelines_file=Path(env["PIPELINES_FILE"]) if env.get("PIPELINES_FILE") else None,
            embedded_worker=env.get("EMBEDDED_WORKER", "1") not in ("0", "false", "no"),
            delta_flush_ms=_int(env, "DELTA_FLUSH_MS", cls.delta_flush_ms, 1),
            stage_timeout_s=_float(env, "STAGE_TIMEOUT_S", cls.stage_timeout_s),
            attempt_timeout_s=_float(env, "ATTEMPT_TIMEOUT_S", cls.attempt_timeout_s),
            reaper_interval_s=_int(env, "REAPER_INTERVAL_S", cls.reaper_interval_s, 1),
            reaper_stale_s=_optional_float(env, "REAPER_STALE_S"),
            lease_ttl_s=_float(env, "LEASE_TTL_S", cls.lease_ttl_s),
            lease_renew_s=_float(env, "LEASE_RENEW_S", cls.lease_renew_s),
            watchdog_interval_s=_float(env, "WATCHDOG_INTERVAL_S", cls.watchdog_interval_s),
            run_max_recoveries=_int(env, "RUN_MAX_RECOVERIES", cls.run_max_recoveries, 0),
            worker_grace_s=_float(env, "WORKER_GRACE_S", cls.worker_grace_s),
            llm_attempts_per_model=_int(
                env, "LLM_ATTEMPTS_PER_MODEL", cls.llm_attempts_per_model, 1
            ),
            llm_backoff_base_s=_float(env, "LLM_BACKOFF_BASE_S", cls.llm_backoff_base_s),
            llm_backoff_max_s=_float(env, "LLM_BACKOFF_MAX_S", cls.llm_backoff_max_s),
            event_history=_int(env, "EVENT_HISTORY", cls.event_history, 10),
            event_history_ttl_s=_int(env, "EVENT_HISTORY_TTL_S", cls.event_history_ttl_s, 60),
            worker_max_jobs=_int(env, "WORKER_MAX_JOBS", cls.worker_max_jobs, 1),
            worker_poll_s=_float(env, "WORKER_POLL_S", cls.worker_poll_s),
            demo_token_delay_ms=_float(env, "DEMO_TOKEN_DELAY_MS", cls.demo_token_delay_ms),
            demo_model_url=env.get("DEMO_MODEL_URL") or None,
            ui_api_base=env.get("UI_API_BASE", "").rstrip("/"),
            ws_auth_timeout_s=_float(env, "WS_AUTH_TIMEOUT_S", cls.ws_auth_timeout_s),
            ws_heartbeat_s=_float(env, "WS_HEARTBEAT_S", cls.ws_heartbeat_s),
            ws_queue_size=_int(env, "WS_QUEUE_SIZE", cls.ws_queue_size, 1),
            worker_metrics_port=_int(env, "WORKER_METRICS_PORT", cls.worker_metrics_port),
            **_hardening(env),
            api_keys_per_user=_int(env, "API_KEYS_PER_USER", cls.api_keys_per_user, 1),
            sse_heartbeat_s=_float(env, "SSE_HEARTBEAT_S", cls.sse_heartbeat_s),
            **_budgets(env),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse settings that are unsafe for the chosen mode."""
        if not 1 <= self.reaper_interval_s <= 60:
            raise ConfigError("REAPER_INTERVAL_S must be between 1 and 60")
        if self.reaper_stale_s is not None and self.reaper_stale_s < 0:
            raise ConfigError("REAPER_STALE_S must be >= 0")
        if not 0 < self.lease_renew_s < self.lease_ttl_s:
            raise ConfigError("LEASE_RENEW_S must be > 0 and below LEASE_TTL_S")
        if not 0 < self.watchdog_interval_s <= self.lease_ttl_s:
            raise ConfigError("WATCHDOG_INTERVAL_S must be > 0 and at most LEASE_TTL_S")
        if self.worker_grace_s < 0:
            raise ConfigError("WORKER_GRACE_S must be >= 0")
        self._validate_hardening()
        if self.production:
            if not self.secret_key or len(self.secret_key.encode()) < 32:
                raise ConfigError("SECRET_KEY of at least 32 bytes is required when ENV=production")
            if self.bcrypt_rounds < 12:
                raise ConfigError("BCRYPT_ROUNDS must be >= 12 when ENV=production")
        elif self.secret_key is not None and len(self.secret_key.encode()) < 32:
            raise ConfigError("SECRET_KEY must be at least 32 bytes")

    def _validate_hardening(self) -> None:
        if self.production and not self.mongodb_url:
            # Each web and worker container would get its own SQLite file: runs
            # enqueued by one would never be found by the others.
            raise ConfigError("MONGODB_URL is required when ENV=production")
        if self.ws_rate_per_s <= 0:
            raise ConfigError("WS_RATE_PER_S must be > 0")
        if self.http_idle_timeout_s <= 0 or self.redis_timeout_s <= 0:
            raise ConfigError("HTTP_IDLE_TIMEOUT_S and REDIS_TIMEOUT_S must be > 0")
        try:
            for entry in self.trusted_proxies:
                ipaddress.ip_network(entry, strict=False)
        except ValueError as exc:
            raise ConfigError(f"TRUSTED_PROXIES: {exc}") from None
        if self.metrics_token is not None and len(self.metrics_token) < 16:
            raise ConfigError("METRICS_TOKEN must be at least 16 characters")
