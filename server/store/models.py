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

RunStatus = Literal["queued", "running", "awaiting_approval", "completed", "failed", "cancelled"]
StageStatus = Literal["pending", "running", "completed", "failed", "cancelled"]
SessionStatus = Literal[
    "idle", "queued", "running", "awaiting_approval", "completed", "failed", "cancelled"
]
# What a message sent while the session's run is active does (docs/http-api.md, "Double
# texting"): refuse it (409), queue it after the run, cancel the run and start it, or add
# it to the run's context at its next stage boundary.
DoubleTexting = Literal["reject", "enqueue", "interrupt", "amend"]
# A user message is "sent" (part of the history), "queued" (waiting for the active run to
# end; not in the history yet) or "cancelled" (taken off the queue before it started).
MessageStatus = Literal["sent", "queued", "cancelled"]
Role = Literal["user", "admin"]
# Statuses a worker drives (a stage queued or streaming): leases, takeovers and the reaper's.
ACTIVE_RUN_STATUSES: tuple[RunStatus, ...] = ("queued", "running")
# Paused at an approval gate: no job, no lease, no worker; only the user (or the timeout)
# moves it on.
AWAITING_APPROVAL: RunStatus = "awaiting_approval"
# Every status a run can still end from.
OPEN_RUN_STATUSES: tuple[RunStatus, ...] = (*ACTIVE_RUN_STATUSES, AWAITING_APPROVAL)
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
    # Admin and budgets (issue 12, parts 5 and 7): "admin" may use /api/v1/admin; a budget of
    # None follows the server's default (BUDGET_TOKENS_PER_DAY, BUDGET_COST_PER_DAY), 0 means
    # unlimited for this user.
    role: Role = "user"
    budget_tokens_per_day: int | None = None
    budget_cost_per_day: float | None = None

    def public(self) -> dict[str, Any]:
        """Return the user as the API shows it (never the password hash)."""
        return self.model_dump(
            mode="json",
            exclude={"password_hash", "disabled", "budget_tokens_per_day", "budget_cost_per_day"},
        )

    def admin_view(self) -> dict[str, Any]:
        """Return the user as the admin API shows it: flags and budgets, never the hash."""
        return self.model_dump(mode="json", exclude={"password_hash"})


class ChatSession(Doc):
    session_id: str = Field(default_factory=new_id)
    user_id: str
    title: str = ""
    pipeline: str = "default"
    status: SessionStatus = "idle"
    active_run_id: str | None = None
    # The double-texting policy of this session; None: the server's DOUBLE_TEXTING.
    double_texting: DoubleTexting | None = None
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
    status: MessageStatus = "sent"
    # The policy that held the message back (queued, or amended into a run); None: it was
    # sent to an idle session and started its run at once.
    double_texting: DoubleTexting | None = None
    # When queued: the time it was queued; set again to the time it starts, so the history
    # stays in the order the model saw it.
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
    # An approval gate (the pipeline stage's ``approve = true``, copied when the run starts):
    # the run pauses after this stage until the user approves (the output possibly edited;
    # then ``output_original`` keeps the model's) or rejects it.
    approve: bool = False
    approved_at: Timestamp | None = None
    output_original: str | None = None
    # The amendment message ids (Run.amendments) this stage's prompt included (written when
    # it completes): an amendment no completed stage saw is queued when the run ends.
    amendments: list[str] = Field(default_factory=list)
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
    # A machine-readable reason of a failure, when there is one ("budget_exceeded").
    error_code: str | None = None
    cancel_requested: bool = False
    # The fencing token (DESIGN §9): bumped by each retry and each takeover of a stage whose
    # worker is gone, so the stage gets a fresh (stable) arq job id and the old generation
    # can write and publish nothing.
    generation: int = 0
    # Takeovers since the user last started or retried the run (not counting user retries).
    recoveries: int = 0
    assistant_message_id: str | None = None
    # While the run is awaiting_approval: the index of the stage awaiting it, and since when.
    awaiting_stage: int | None = None
    awaiting_since: Timestamp | None = None
    # Messages sent while the run was active with the "amend" policy, in order: each stage
    # that starts after one was added has it in its prompt.
    amendments: list[str] = Field(default_factory=list)
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


WebhookEvent = Literal["run.completed", "run.failed", "run.awaiting_approval", "webhook.test"]
DeliveryStatus = Literal["pending", "delivered", "failed"]


class Webhook(Doc):
    """A user's webhook (one per user): where run notifications go and the signing secret."""

    user_id: str
    url: str
    secret: str
    created_at: Timestamp = Field(default_factory=utcnow)
    updated_at: Timestamp = Field(default_factory=utcnow)

    def public(self) -> dict[str, Any]:
        """Return the webhook as the API shows it (never the secret)."""
        return self.model_dump(mode="json", exclude={"secret", "user_id"})


class WebhookAttempt(BaseModel):
    """One POST of a delivery: its answer (status code) or why it got none (error)."""

    attempt: int
    at: Timestamp
    status_code: int | None = None
    error: str | None = None
    duration_ms: float = 0.0


class WebhookDelivery(Doc):
    """One notification to a user's webhook: the signed body, its attempts, how it ended.

    ``delivery_id`` is sent as ``X-Chorus-Delivery`` and stays the same across retries;
    ``body`` is the exact JSON sent every time (only the signature's timestamp changes).
    """

    delivery_id: str = Field(default_factory=new_id)
    user_id: str
    event: WebhookEvent
    run_id: str | None = None
    session_id: str | None = None
    body: str
    status: DeliveryStatus = "pending"
    attempts: int = 0
    status_code: int | None = None
    error: str | None = None
    attempt_log: list[WebhookAttempt] = Field(default_factory=list)
    next_attempt_at: Timestamp | None = None
    created_at: Timestamp = Field(default_factory=utcnow)
    updated_at: Timestamp = Field(default_factory=utcnow)
    finished_at: Timestamp | None = None
