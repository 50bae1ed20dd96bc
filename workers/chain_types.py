"""Types the model chain shares with its caller and its attempt runner."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

from server.pipelines import Agent
from server.store.models import Usage
from workers.cancel import CancelWatch


class ChainObserver(Protocol):
    """What the chain tells its caller while a stage runs."""

    async def on_delta(self, text: str) -> None:
        """Receive the text of one streamed chunk."""

    async def on_reset(self) -> None:
        """Discard the text received so far: the attempt broke and the stage starts over."""

    async def on_retrying(self, attempt: int, error: str, next_model: str | None) -> None:
        """Hear that attempt number ``attempt`` will run on ``next_model`` after ``error``."""

    async def on_call(self, record: dict[str, Any]) -> None:
        """Receive one attempt's record (an llm_calls document without run, user and stage)."""


class StageFailed(Exception):
    """Every model of the chain failed, or the stage deadline passed; the message says how."""

    def __init__(self, message: str, attempts: int, errors: list[str]) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.errors = errors


@dataclass(frozen=True)
class ChainResult:
    """A completed stage: its text, the model that wrote it, and usage summed over all attempts."""

    text: str
    model: str
    provider: str
    attempts: int
    usage: Usage
    finish_reason: str
    calls: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class StageContext:
    """One stage's run through the chain: what it asks, who listens, and what happened so far."""

    agent: Agent
    messages: list[dict[str, str]]
    observer: ChainObserver
    watch: CancelWatch
    deadline: float
    attempts: int = 0
    usage: Usage = field(default_factory=Usage)
    errors: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def expired(self) -> bool:
        """Whether the stage deadline has passed."""
        return asyncio.get_running_loop().time() >= self.deadline
