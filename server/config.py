"""Settings: read from the environment once, at start-up, into one frozen object.

Each setting is one field, ``name: type = setting("VARIABLE", default, minimum=...)``: its
environment variable, default and bounds in one place. Two ways in, on purpose:

- ``Settings.from_env(env)`` is the one reader of the environment (``os.environ`` unless a
  mapping is given): pydantic-settings' environment source runs over that mapping
  (case-sensitive names; an empty value counts as unset), then the cross-field rules of
  ``check()`` apply. A bad value raises ``ConfigError`` naming the variable.
- ``Settings(...)`` takes keyword arguments by field name and reads nothing else (its only
  pydantic-settings source is the keyword arguments), so tests that build settings
  directly never pick up the developer's shell.

Secrets (``SECRET_KEY``, ``METRICS_TOKEN``, the Redis and MongoDB URLs, which may carry a
password, and the model providers' API keys) are ``SecretStr``: they show as ``**********``
in a repr or a log line; ``.get_secret_value()`` is called only where one is used.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from server.pipelines.registry import api_key_variables

_YEAR_S = 366 * 24 * 3600.0


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it."""


def _comma_list(value: object) -> object:
    """``a, b/,`` → ``("a", "b")``: items stripped, a trailing slash dropped, empties skipped."""
    if isinstance(value, str):
        return tuple(item.strip().rstrip("/") for item in value.split(",") if item.strip())
    return value


# A comma-separated list in the environment (not JSON), a tuple in Python.
CommaList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_list)]


def setting(
    variable: str,
    default: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
) -> Any:
    """A field read from ``variable``; ``from_env`` refuses a value out of the bounds given.

    The bounds guard the environment only: tests build settings directly with values
    below them (a JWT that expires in 2 s, a tiny socket queue), as they always could.
    """
    bounds = {"minimum": minimum, "maximum": maximum, "above": above}
    extra: dict[str, Any] = {k: v for k, v in bounds.items() if v is not None}
    return Field(default, validation_alias=variable, json_schema_extra=extra or None)


def _check_bounds(model: BaseModel) -> None:
    """Raise ConfigError naming the first variable whose value is out of its bounds."""
    for name, info in type(model).model_fields.items():
        value, bounds = getattr(model, name), info.json_schema_extra
        if isinstance(value, BaseModel):
            _check_bounds(value)
        if value is None or not isinstance(bounds, dict):
            continue
        variable = info.validation_alias
        if "minimum" in bounds and value < bounds["minimum"]:
            raise ConfigError(f"{variable} must be >= {bounds['minimum']}, got {value}")
        if "maximum" in bounds and value > bounds["maximum"]:
            raise ConfigError(f"{variable} must be <= {bounds['maximum']}, got {value}")
        if "above" in bounds and value <= bounds["above"]:
            raise ConfigError(f"{variable} must be > {bounds['above']}, got {value}")


class _Frozen(BaseSettings):
    """A frozen settings model whose only source is its keyword arguments (see module doc)."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        case_sensitive=True,
        env_ignore_empty=True,
        validate_by_name=True,
        validate_by_alias=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments only: ``Settings.from_env`` is the one reader of the environment."""
        return (init_settings,)


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._mapping = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # The fields' variables only (not a lowercase ``port`` by field name), empty = unset.
        names = {f.validation_alias for f in self.settings_cls.model_fields.values()}
        return {
            k: v
            for k, v in self._mapping.items()
            if k in names and (v != "" or not self.env_ignore_empty)
        }


class Limits(_Frozen):
    """Rate limits; each is (count, window in seconds)."""

    llm_per_user: int = setting("RATE_LLM_PER_USER", 100, minimum=1)
    llm_global: int = setting("RATE_LLM_GLOBAL", 10_000, minimum=1)
    llm_window_s: int = setting("RATE_LLM_WINDOW_S", 3600, minimum=1)
    api_per_user: int = setting("RATE_API_PER_USER", 1200, minimum=1)
    api_window_s: int = setting("RATE_API_WINDOW_S", 60, minimum=1)
    login_per_email: int = setting("RATE_LOGIN_PER_EMAIL", 10, minimum=1)
    login_per_ip: int = setting("RATE_LOGIN_PER_IP", 50, minimum=1)
    login_window_s: int = setting("RATE_LOGIN_WINDOW_S", 300, minimum=1)
    # Each registration costs a bcrypt hash: limited per client address.
    register_per_ip: int = setting("RATE_REGISTER_PER_IP", 20, minimum=1)
    register_window_s: int = setting("RATE_REGISTER_WINDOW_S", 3600, minimum=1)


class Settings(_Frozen):
    """Every knob Chorus reads; see docs/configuration.md (generated from server/config_docs.py)."""

    env: Literal["production", "development"] = setting("ENV", "development")
    host: str = setting("HOST", "127.0.0.1")
    port: int = setting("PORT", 8080, minimum=0)
    redis_url: SecretStr | None = setting("REDIS_URL", None)
    mongodb_url: SecretStr | None = setting("MONGODB_URL", None)
    mongodb_db: str = setting("MONGODB_DB", "chorus")
    data_dir: Path = setting("DATA_DIR", Path("data"))
    secret_key: SecretStr | None = setting("SECRET_KEY", None)
    allowed_origins: CommaList = setting("ALLOWED_ORIGINS", ())
    log_level: str = setting("LOG_LEVEL", "INFO")
    bcrypt_rounds: int = setting("BCRYPT_ROUNDS", 12, minimum=4)
    jwt_ttl_s: int = setting("JWT_TTL_S", 24 * 3600, minimum=60)
    max_body_bytes: int = setting("MAX_BODY_BYTES", 1024 * 1024, minimum=1024)
    limits: Limits = Field(default_factory=Limits)  # the RATE_* variables
    redis_key_prefix: str = setting("REDIS_KEY_PREFIX", "chorus")
    # Worker and run knobs (read here too: the same object serves server and workers).
    pipelines_file: Path | None = setting("PIPELINES_FILE", None)
    embedded_worker: bool = setting("EMBEDDED_WORKER", True)
    delta_flush_ms: int = setting("DELTA_FLUSH_MS", 50, minimum=1)
    stage_timeout_s: float = setting("STAGE_TIMEOUT_S", 120.0)
    attempt_timeout_s: float = setting("ATTEMPT_TIMEOUT_S", 30.0)
    # Stage leases (DESIGN §9): a worker renews its stage's lease every lease_renew_s; a lease
    # not renewed for lease_ttl_s lapses and a watchdog (every watchdog_interval_s, in every
    # worker) takes the stage over. A run taken over more than run_max_recoveries times fails.
    lease_ttl_s: float = setting("LEASE_TTL_S", 6.0)
    lease_renew_s: float = setting("LEASE_RENEW_S", 2.0)
    watchdog_interval_s: float = setting("WATCHDOG_INTERVAL_S", 1.0)
    run_max_recoveries: int = setting("RUN_MAX_RECOVERIES", 5, minimum=0)
    # On SIGTERM a worker lets running stages finish for worker_grace_s, then hands them back.
    worker_grace_s: float = setting("WORKER_GRACE_S", 8.0, minimum=0)
    # The reaper, the last net: how often it runs, and after how long unchanged a run with
    # neither a live lease nor a waiting job is taken over (None: lease_ttl_s * 2).
    reaper_interval_s: int = setting("REAPER_INTERVAL_S", 5, minimum=1, maximum=60)
    reaper_stale_s: float | None = setting("REAPER_STALE_S", None, minimum=0)
    # Model chain retries (DESIGN §6): attempts per model, exponential backoff with full jitter.
    llm_attempts_per_model: int = setting("LLM_ATTEMPTS_PER_MODEL", 3, minimum=1)
    llm_backoff_base_s: float = setting("LLM_BACKOFF_BASE_S", 0.25)
    llm_backoff_max_s: float = setting("LLM_BACKOFF_MAX_S", 8.0)
    event_history: int = setting("EVENT_HISTORY", 5000, minimum=10)
    event_history_ttl_s: int = setting("EVENT_HISTORY_TTL_S", 6 * 3600, minimum=60)
    worker_max_jobs: int = setting("WORKER_MAX_JOBS", 600, minimum=1)
    worker_poll_s: float = setting("WORKER_POLL_S", 0.005)
    demo_token_delay_ms: float = setting("DEMO_TOKEN_DELAY_MS", 5.0)
    demo_model_url: str | None = setting("DEMO_MODEL_URL", None)
    ui_api_base: str = setting("UI_API_BASE", "")
    # WebSocket knobs (DESIGN §5).
    ws_auth_timeout_s: float = setting("WS_AUTH_TIMEOUT_S", 10.0)
    ws_heartbeat_s: float = setting("WS_HEARTBEAT_S", 20.0)
    ws_queue_size: int = setting("WS_QUEUE_SIZE", 1024, minimum=1)
    # Operations: where `python -m workers` serves /metrics and /healthz (0: nowhere).
    worker_metrics_port: int = setting("WORKER_METRICS_PORT", 9101, minimum=0)
    # Abuse limits and timeouts (see "Limits" in README.md).
    ws_queue_bytes: int = setting("WS_QUEUE_BYTES", 16 * 1024 * 1024, minimum=64 * 1024)
    ws_rate_per_s: float = setting("WS_RATE_PER_S", 20.0, above=0)
    ws_rate_burst: int = setting("WS_RATE_BURST", 200, minimum=1)
    ws_max_per_user: int = setting("WS_MAX_PER_USER", 32, minimum=1)
    ws_max_pending: int = setting("WS_MAX_PENDING", 1000, minimum=1)
    http_idle_timeout_s: float = setting("HTTP_IDLE_TIMEOUT_S", 75.0, above=0)
    trusted_proxies: CommaList = setting("TRUSTED_PROXIES", ())
    metrics_token: SecretStr | None = setting("METRICS_TOKEN", None)
    metrics_port: int | None = setting("METRICS_PORT", None, minimum=0)  # 0: unset
    metrics_host: str = setting("METRICS_HOST", "127.0.0.1")
    redis_timeout_s: float = setting("REDIS_TIMEOUT_S", 10.0, above=0)
    mongodb_timeout_ms: int = setting("MONGODB_TIMEOUT_MS", 10_000, minimum=100)
    # Open interfaces (API keys, SSE, the OpenAI-compatible endpoint).
    api_keys_per_user: int = setting("API_KEYS_PER_USER", 20, minimum=1)
    sse_heartbeat_s: float = setting("SSE_HEARTBEAT_S", 15.0)
    # A run paused at an approval gate longer than this is ended by the reaper (cancelled).
    approval_timeout_s: float = setting("APPROVAL_TIMEOUT_S", 24 * 3600.0)
    # What a message sent while its session's run is active does, unless the session or the
    # send says otherwise: "reject" (409), "enqueue", "interrupt" or "amend".
    double_texting: Literal["reject", "enqueue", "interrupt", "amend"] = setting(
        "DOUBLE_TEXTING", "enqueue"
    )
    # Notifications (docs/webhooks.md): each webhook POST's timeout; attempts per delivery,
    # retried with exponential backoff and jitter; how long a watching socket counts as
    # present without a refresh (its web process refreshes it every third of that).
    webhook_timeout_s: float = setting("WEBHOOK_TIMEOUT_S", 10.0)
    webhook_max_attempts: int = setting("WEBHOOK_MAX_ATTEMPTS", 6, minimum=1)
    webhook_backoff_base_s: float = setting("WEBHOOK_BACKOFF_BASE_S", 5.0)
    webhook_backoff_max_s: float = setting("WEBHOOK_BACKOFF_MAX_S", 600.0)
    presence_ttl_s: float = setting("PRESENCE_TTL_S", 30.0)
    # Whether webhooks may reach loopback, private and link-local addresses (None: only
    # outside production).
    webhook_allow_private: bool | None = setting("WEBHOOK_ALLOW_PRIVATE", None)
    # Daily budgets per UTC day (docs/budgets.md): a user's default (an admin may set one per
    # user) and the server's total; 0 is unlimited. The first registered user becomes admin.
    budget_tokens_per_day: int = setting("BUDGET_TOKENS_PER_DAY", 0, minimum=0)
    budget_cost_per_day: float = setting("BUDGET_COST_PER_DAY", 0.0, minimum=0)
    budget_global_tokens_per_day: int = setting("BUDGET_GLOBAL_TOKENS_PER_DAY", 0, minimum=0)
    budget_global_cost_per_day: float = setting("BUDGET_GLOBAL_COST_PER_DAY", 0.0, minimum=0)
    first_user_admin: bool = setting("FIRST_USER_ADMIN", True)
    # The model providers' API keys, by the variable each provider's ``api_key_env`` names in
    # the pipelines file (from_env reads exactly those); never shown.
    provider_keys: dict[str, SecretStr] = Field(default_factory=dict, repr=False)

    @field_validator("env", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("ui_api_base", mode="before")
    @classmethod
    def _no_trailing_slash(cls, value: object) -> object:
        return value.rstrip("/") if isinstance(value, str) else value

    @field_validator("metrics_port", mode="after")
    @classmethod
    def _zero_is_unset(cls, value: int | None) -> int | None:
        return value or None

    @property
    def production(self) -> bool:
        """Whether the stricter production rules apply."""
        return self.env == "production"

    @property
    def reaper_min_age_s(self) -> float:
        """How long a run with no lease and no waiting job sits before the reaper takes it."""
        return self.reaper_stale_s if self.reaper_stale_s is not None else self.lease_ttl_s * 2

    @property
    def webhook_private_ok(self) -> bool:
        """Whether webhook deliveries may go to non-public addresses."""
        if self.webhook_allow_private is not None:
            return self.webhook_allow_private
        return not self.production

    @property
    def embedded(self) -> bool:
        """Whether the embedded mode must supply Redis (no REDIS_URL given)."""
        return self.redis_url is None

    def replace(self, **changes: object) -> Settings:
        """Return a copy with some fields (by name) changed and validated again."""
        values = {name: getattr(self, name) for name in type(self).model_fields}
        return type(self)(**(values | changes))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from the environment; raise ConfigError naming a bad one."""
        env = os.environ if env is None else env
        try:
            values = _MappingSource(cls, env)()
            values["limits"] = _MappingSource(Limits, env)()
        except SettingsError as exc:  # a value that cannot be decoded at all
            raise ConfigError(str(exc)) from None
        wanted = api_key_variables(env.get("PIPELINES_FILE"))
        values["provider_keys"] = {name: env[name] for name in wanted if env.get(name)}
        try:
            settings = cls(**values)
        except ValidationError as exc:
            raise _config_error(exc.errors()[0]) from None
        _check_bounds(settings)
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse settings that are unsafe for the chosen mode, or contradict each other."""
        if not 0 < self.lease_renew_s < self.lease_ttl_s:
            raise ConfigError("LEASE_RENEW_S must be > 0 and below LEASE_TTL_S")
        if not 0 < self.watchdog_interval_s <= self.lease_ttl_s:
            raise ConfigError("WATCHDOG_INTERVAL_S must be > 0 and at most LEASE_TTL_S")
        self._check_hardening()
        self._check_approvals()
        self._check_notifications()
        secret = self.secret_key.get_secret_value() if self.secret_key is not None else None
        if self.production:
            if not secret or len(secret.encode()) < 32:
                raise ConfigError("SECRET_KEY of at least 32 bytes is required when ENV=production")
            if self.bcrypt_rounds < 12:
                raise ConfigError("BCRYPT_ROUNDS must be >= 12 when ENV=production")
        elif secret is not None and len(secret.encode()) < 32:
            raise ConfigError("SECRET_KEY must be at least 32 bytes")

    def _check_approvals(self) -> None:
        if not 0 <= self.approval_timeout_s <= _YEAR_S:  # also refuses nan and inf
            raise ConfigError(f"APPROVAL_TIMEOUT_S must be between 0 and {_YEAR_S:g} (a year)")

    def _check_notifications(self) -> None:
        if min(self.webhook_timeout_s, self.webhook_backoff_base_s, self.presence_ttl_s) <= 0:
            raise ConfigError(
                "WEBHOOK_TIMEOUT_S, WEBHOOK_BACKOFF_BASE_S and PRESENCE_TTL_S must be > 0"
            )
        if self.webhook_backoff_max_s < self.webhook_backoff_base_s:
            raise ConfigError("WEBHOOK_BACKOFF_MAX_S must be >= WEBHOOK_BACKOFF_BASE_S")

    def _check_hardening(self) -> None:
        if self.production and not self.mongodb_url:
            # Each web and worker container would get its own SQLite file: runs
            # enqueued by one would never be found by the others.
            raise ConfigError("MONGODB_URL is required when ENV=production")
        try:
            for entry in self.trusted_proxies:
                ipaddress.ip_network(entry, strict=False)
        except ValueError as exc:
            raise ConfigError(f"TRUSTED_PROXIES: {exc}") from None
        token = self.metrics_token.get_secret_value() if self.metrics_token else None
        if token is not None and len(token) < 16:
            raise ConfigError("METRICS_TOKEN must be at least 16 characters")


def secret(value: SecretStr | None) -> str | None:
    """The plain text of a secret setting (None stays None): only where it is used."""
    return value.get_secret_value() if value is not None else None


_MESSAGES = {
    "int_parsing": "{name} must be an integer, got {input!r}",
    "int_from_float": "{name} must be an integer, got {input!r}",
    "float_parsing": "{name} must be a number, got {input!r}",
    "bool_parsing": "{name} must be 1 or 0 (true/false, yes/no, on/off), got {input!r}",
    "literal_error": "{name} must be {expected}, got {input!r}",
}


def _config_error(error: ErrorDetails) -> ConfigError:
    """A ConfigError naming the variable (the field name when settings were built directly)."""
    name = next((str(part) for part in reversed(error["loc"]) if isinstance(part, str)), "?")
    template = _MESSAGES.get(error["type"], "{name}: {msg}, got {input!r}")
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    return ConfigError(template.format(name=name, input=error["input"], msg=error["msg"], **ctx))
