"""Shapes of the HTTP API's answers, for the OpenAPI document (the handlers build plain dicts).

Stored documents (sessions, messages, runs, usage) are answered as their models dump
them, so those models are used as they are; the rest are declared here. The document
marks every object closed (no other properties), so the schema test notices a field
added to an answer without the document knowing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from server.store.models import ChatSession, Message, Run, Timestamp


class PublicUser(BaseModel):
    """A user as the API shows it (never the password hash)."""

    user_id: str
    email: str
    name: str
    created_at: Timestamp
    updated_at: Timestamp


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
    """A session with the recent messages of its selected branch (oldest first) and its
    active run."""

    messages: list[BranchMessage]
    active_run: Run | None


class MessagePage(BaseModel):
    """One page of a branch, oldest first; ``next_before``/``next_before_id`` page further back."""

    items: list[BranchMessage]
    limit: int
    next_before: str | None
    next_before_id: str | None


class PostedMessage(BaseModel):
    message: Message
    run: Run


class RunEnvelope(BaseModel):
    run: Run


class StageInfo(BaseModel):
    name: str
    agent: str


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


class ErrorBody(BaseModel):
    """Every error: a stable machine-readable ``code`` and a human ``message``."""

    error: ErrorDetail
