"""Helpers for the model chain tests: a recording observer, a test registry, a live chain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from server.config import Settings
from server.pipelines import AgentRegistry
from server.store.models import LlmCall
from workers.demo_model import DemoConfig, DemoModelServer
from workers.model_chain import ModelChain

# Two demo models in the agents' chain, plus a few broken ones for fallback tests.
TEST_PIPELINES = """
[providers.demo]
base_url = "${DEMO_MODEL_URL}"
input_usd_per_million = 0.15
output_usd_per_million = 0.60
rpm = 100000

[providers.locked]
base_url = "${DEMO_MODEL_URL}"
api_key_env = "LOCKED_API_KEY"

[models.main]
provider = "demo"
model = "chorus-demo"

[models.backup]
provider = "demo"
model = "chorus-demo-backup"

[models.missing]
provider = "demo"
model = "no-such-model"

[models.keyless]
provider = "locked"
model = "chorus-demo"

[agents.planner]
system = "You are the planner. Plan an answer to the user's message."
models = ["main", "backup"]
max_tokens = 400

[agents.finder]
system = "You are the planner of a team whose first model does not exist."
models = ["missing", "backup"]

[agents.locked]
system = "You are the planner; the first provider has no API key."
models = ["keyless", "backup"]

[pipelines.default]
stages = [{ name = "plan", agent = "planner" }]
"""


def chain_settings(**changes: Any) -> Settings:
    """Settings with short timeouts and backoffs, so failure tests stay fast."""
    base: dict[str, Any] = {
        "attempt_timeout_s": 0.5, "stage_timeout_s": 10.0,
        "llm_attempts_per_model": 3, "llm_backoff_base_s": 0.01, "llm_backoff_max_s": 0.05,
    }  # fmt: skip
    base.update(changes)
    return Settings(**base)


def make_registry(url: str) -> AgentRegistry:
    """The test pipelines, pointed at a live demo server."""
    return AgentRegistry.loads(TEST_PIPELINES, demo_url=url)


def messages(text: str, system: str = "You are the planner.") -> list[dict[str, str]]:
    """A two-message prompt."""
    return [{"role": "system", "content": system}, {"role": "user", "content": text}]


@dataclass
class Recorder:
    """An observer that keeps everything the chain tells it."""

    parts: list[str] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The stage's text as a client would show it (resets discard it)."""
        return "".join(self.parts)

    def names(self) -> list[str]:
        """The kinds of events, in order."""
        return [event[0] for event in self.events]

    async def on_delta(self, text: str) -> None:
        self.parts.append(text)
        self.events.append(("delta", text))

    async def on_reset(self) -> None:
        self.parts.clear()
        self.events.append(("reset",))

    async def on_retrying(self, attempt: int, error: str, next_model: str | None) -> None:
        self.events.append(("retrying", attempt, error, next_model))

    async def on_call(self, record: dict[str, Any]) -> None:
        LlmCall(run_id="run", stage="stage", user_id="user", **record)  # the shape is storable
        self.calls.append(record)
        self.events.append(("call", record["outcome"]))


@dataclass
class Live:
    """A running demo server, a registry pointed at it and a chain using both."""

    server: DemoModelServer
    registry: AgentRegistry
    chain: ModelChain


@asynccontextmanager
async def live_chain(
    config: DemoConfig | None = None, settings: Settings | None = None, **chain_options: Any
) -> AsyncIterator[Live]:
    """Start a demo server and a chain against it; close both afterwards."""
    async with DemoModelServer(config or DemoConfig(token_delay_ms=0)) as server:
        registry = make_registry(server.base_url)
        chain = ModelChain(registry, settings or chain_settings(), **chain_options)
        try:
            yield Live(server, registry, chain)
        finally:
            await chain.close()
