"""Stored documents: one pydantic model per collection (docs/architecture.md, "Storage")."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer


def utcnow() -> datetime:
    """Return the current UTC time at millisecond precision (what MongoDB stores)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def new_id() -> str:
    """Return a new random, URL-safe document id."""
    return secrets.token_hex(12)


def _as_utc(value: Any) -> Any:
    if isinstance(value, datetime):
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return aware.replace(microsecond=aware.microsecond // 1000 * 1000)
    return value


def format_ts(value: datetime) -> str:
    """Format a timestamp as fixed-width ISO 8601 UTC, so text order is time order."""
    utc = value.astimezone(UTC)  # the year padded by hand: strftime's %Y gives "1" for year 1
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


Timestamp = Annotated[
    datetime,
    BeforeValidator(_as_utc),
    PlainSerializer(format_ts, return_type=str, when_used="json"),
]

RunStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
StageStatus = Literal["pending", "running", "completed", "failed", "cancelled"]
SessionStatus = Literal["idle", "queued", "running", "completed", "failed", "cancelled"]
ACTIVE_RUN_STATUSES: tuple[RunStatus, ...] = ("queued", "running")
FINAL_RUN_STATUSES: tuple[RunStatus, ...] = ("completed", "failed", "cancelled")


class Doc(BaseModel):
    """Base of stored documents: unknown keys (e.g. Mongo's _id) are dropped on load."""

    model_config = ConfigDict(extra="ignore")


class User(Doc):
    user_id: str = Field(default_factory=new_id)
    email: str
    password_hash: str
    name: str = ""
    created_at: Timestamp = Field(default_factory=utcnow)
    updated_at: Timestamp = Field(default_factory=utcnow)
    disabled: bool = False

    def public(self) -> dict[str, Any]:
        """Return the user as the API shows it (never the password hash)."""
        return self.model_dump(mode="json", exclude={"password_hash", "disabled"})


class ChatSession(Doc):
    session_id: str = Field(default_factory=new_id)
    user_id: str
    title: str = ""
    pipeline: str = "default"
    status: SessionStatus = "idle"
    active_run_id: str | None = None
    # The tip of the selected branch (docs/architecture.md, "Branches"); None in sessions
    # stored before branches (their messages form one line by created_at).
    head_message_id: str | None = None
    started_at: Timestamp = Field(default_factory=utcnow)
    updated_at: Timestamp = Field(default_factory=utcnow)


class Message(Doc):
    message_id: str = Field(default_factory=new_id)
    session_id: str
    user_id: str
    role: Literal["user", "assistant"]
    content: str
    content_html: str | None = None
    run_id: str | None = None
    # The previous message on this message's branch (None for the first, and in messages
    # stored before branches). A resent edit names the message it edits in ``edit_of``.
    parent_id: str | None = None
    edit_of: str | None = None
    created_at: Timestamp = Field(default_factory=utcnow)


class MessageLink(BaseModel):
    """What the branch tree needs of a message (read without its content)."""

    message_id: str
    role: Literal["user", "assistant"]
    run_id: str | None = None
    parent_id: str | None = None
    edit_of: str | None = None
    created_at: Timestamp


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def plus(self, other: Usage) -> Usage:
        """Return the sum of two usages."""
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cost_usd=round(self.cost_usd + other.cost_usd, 10),
        )


class StageResult(BaseModel):
    """What one performance of a stage gave (the current one, or an earlier version)."""

    status: StageStatus = "pending"
    output: str | None = None
    model: str | None = None
    attempts: int = 0
    usage: Usage = Field(default_factory=Usage)
    error: str | None = None
    # The text a stage had streamed when it was cancelled or failed (kept, marked stopped).
    partial: str | None = None
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None


class StageVersion(StageResult):
    """An earlier result of a stage, kept when the stage was re-run (POST .../rerun)."""

    # The answer the run gave with this version (None if the run gave none).
    assistant_message_id: str | None = None


class StageState(StageResult):
    name: str
    agent: str
    # A re-run with one chosen model: the chain is that model alone (with its retries).
    model_override: str | None = None
    # Earlier results of this stage, oldest first (each re-run pushes the current one).
    versions: list[StageVersion] = Field(default_factory=list)


class Run(Doc):
    run_id: str = Field(default_factory=new_id)
    session_id: str
    user_id: str
    pipeline: str
    input_message_id: str
    status: RunStatus = "queued"
    stages: list[StageState]
    usage: Usage = Field(default_factory=Usage)
    error: str | None = None
    cancel_requested: bool = False
    # The fencing token (DESIGN §9): bumped by each retry and each takeover of a stage whose
    # worker is gone, so the stage gets a fresh (stable) arq job id and the old generation
    # can write and publish nothing.
    generation: int = 0
    # Takeovers since the user last started or retried the run (not counting user retries).
    recoveries: int = 0
    assistant_message_id: str | None = None
    created_at: Timestamp = Field(default_factory=utcnow)
    updated_at: Timestamp = Field(default_factory=utcnow)
    finished_at: Timestamp | None = None

    def current_stage(self) -> int:
        """The index of the first stage not completed (the last one if all are)."""
        return next(
            (i for i, s in enumerate(self.stages) if s.status != "completed"), len(self.stages) - 1
        )


class LlmCall(Doc):
    call_id: str = Field(default_factory=new_id)
    run_id: str
    stage: str
    user_id: str
    provider: str
    model: str
    attempt: int
    outcome: Literal["ok", "error", "timeout", "broken_stream", "cancelled"]
    status_code: int | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # True when the provider sent no usage (an abandoned stream): tokens are a
    # tokenizer-free estimate (characters / 4), not the provider's count.
    usage_estimated: bool = False
    cost_usd: float = 0.0
    error: str | None = None
    created_at: Timestamp = Field(default_factory=utcnow)


class ApiKey(Doc):
    """A user's API key: only its keyed hash is stored; the key itself is shown once."""

    key_id: str = Field(default_factory=new_id)
    user_id: str
    name: str = ""
    key_hash: str
    prefix: str
    created_at: Timestamp = Field(default_factory=utcnow)
    last_used_at: Timestamp | None = None
    revoked_at: Timestamp | None = None

    def public(self) -> dict[str, Any]:
        """Return the key as the API lists it (never its hash)."""
        return self.model_dump(mode="json", exclude={"key_hash", "user_id"})


class DayUsage(BaseModel):
    day: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0


class UsageSummary(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0
    days: list[DayUsage] = Field(default_factory=list)
