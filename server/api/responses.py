"""Shapes of the HTTP API's answers, for the OpenAPI document (the handlers build plain dicts).

Stored documents (sessions, messages, runs, usage) are answered as their models dump
them, so those models are used as they are; the rest are declared here. The document
marks every object closed (no other properties), so the schema test notices a field
added to an answer without the document knowing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from server.store.models import ChatSession, Message, Role, Run, Timestamp, UsageSummary


class PublicUser(BaseModel):
    """A user as the API shows it (never the password hash)."""

    user_id: str
    email: str
    name: str
    created_at: Timestamp
    updated_at: Timestamp
    role: Role


class AdminUser(PublicUser):
    """A user as the admin API shows it: with its flags and budgets (null: the default)."""

    disabled: bool
    budget_tokens_per_day: int | None
    budget_cost_per_day: float | None


class AdminUserEnvelope(BaseModel):
    user: AdminUser


class AdminUserPage(BaseModel):
    items: list[AdminUser]
    limit: int
    skip: int
    total: int


class Meter(BaseModel):
    """One budget today: its limit (null: unlimited), what was used, what is left."""

    limit: float | None
    used: float
    remaining: float | None


class BudgetStatus(BaseModel):
    """Today's (UTC) budget of the caller; ``global_exceeded``: the server's budget is spent."""

    day: str
    resets_at: str
    tokens: Meter
    cost_usd: Meter
    exceeded: bool
    global_exceeded: bool


class UsageAnswer(UsageSummary):
    """The caller's usage, totals and per day, and what is left of today's budget."""

    budget: BudgetStatus


class AdminUserDetail(BaseModel):
    """A user with today's budget as it applies to them."""

    user: AdminUser
    budget: BudgetStatus


class UserEnvelope(BaseModel):
    user: PublicUser


class LoginAnswer(BaseModel):
    access_token: str
    token_type: Literal["bearer"]
    expires_in: int
    user: PublicUser


class SessionPage(BaseModel):
    items: list[ChatSession]
    limit: int
    skip: int
    total: int


class BranchMessage(Message):
    """A message of a branch, with its siblings (itself included, oldest first): the
    alternatives a "< 2/3 >" switcher moves between."""

    sibling_ids: list[str]
    sibling_index: int


class SessionDetail(ChatSession):
    """A session with the recent messages of its selected branch (oldest first), its active
    run and its queue."""

    messages: list[BranchMessage]
    active_run: Run | None
    # Messages waiting for the active run to end, in the order they will start.
    queued: list[Message]


class MessagePage(BaseModel):
    """One page of a branch, oldest first; ``next_before``/``next_before_id`` page further back."""

    items: list[BranchMessage]
    limit: int
    next_before: str | None
    next_before_id: str | None


class PostedMessage(BaseModel):
    """A sent message and what became of it (double texting, docs/http-api.md)."""

    message: Message
    # "started": ``run`` is the run started on it; "queued": it waits (``run`` is null);
    # "amended": it was added to the active run, ``run``.
    outcome: Literal["started", "queued", "amended"]
    run: Run | None


class MessageEnvelope(BaseModel):
    message: Message


class RunEnvelope(BaseModel):
    run: Run


class StageInfo(BaseModel):
    name: str
    agent: str
    approve: bool


class PipelineInfo(BaseModel):
    name: str
    description: str
    stages: list[StageInfo]
    answer_stage: str


class AgentInfo(BaseModel):
    name: str
    description: str
    models: list[str]
    temperature: float
    max_tokens: int


class Pipelines(BaseModel):
    default: str
    pipelines: list[PipelineInfo]
    agents: list[AgentInfo]


class Health(BaseModel):
    status: Literal["ok"]


class ReadyChecks(BaseModel):
    redis: Literal["ok", "unavailable"]
    store: Literal["ok", "unavailable"]


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: ReadyChecks


class ErrorDetail(BaseModel):
    code: str
    message: str
    # budget_exceeded only: when the spent budget starts again, and which ("user", "global").
    resets_at: str | None = None
    budget: str | None = None


class ErrorBody(BaseModel):
    """Every error: a stable machine-readable ``code`` and a human ``message``."""

    error: ErrorDetail
