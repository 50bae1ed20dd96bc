"""BudgetMeter: charge a streaming stage to the day's budget counters, and say when spent.

While an attempt streams, its spend is estimated as the AttemptRunner estimates an
abandoned stream (the prompt's characters / 4 plus the streamed characters / 4, priced at
the current model's provider rates). The executor's stop check polls it about every 50 ms;
the first poll and then one poll every CHECK_INTERVAL_S (0.25 s) charge what the estimate
grew by and read the counters back, in one Redis command (a script; without any budget
to check, only a charge, and nothing when nothing was streamed). When the attempt's
``llm_calls`` record arrives, the counters are corrected to its exact tokens and cost. The
bookkeeping is synchronous before each Redis call, so the poller and the stream may
interleave freely.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from server.budgets import BudgetBook, cost_units
from server.pipelines import Agent, AgentRegistry
from server.store.models import User
from workers.attempt import estimate_tokens

# How often a stage charges and checks its budget (seconds): at most one Redis round trip
# per streaming stage per interval, however often the stop check polls.
CHECK_INTERVAL_S = 0.25


class BudgetMeter:
    """One stage's charges against its user's and the global daily budget."""

    def __init__(
        self,
        book: BudgetBook,
        user: User,
        registry: AgentRegistry,
        agent: Agent,
        messages: list[dict[str, str]],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._book = book
        self._user = user
        self._limit = book.limit_of(user)
        self._registry = registry
        self._model = agent.models[0]
        self._prompt_tokens = sum(estimate_tokens(m.get("content", "")) for m in messages)
        self._chars = 0
        self._streaming = False
        self._charged_tokens = 0
        self._charged_units = 0
        self._clock = clock
        self._checked_at: float | None = None  # when spent() last went to Redis
        self.exceeded: str | None = None  # which budget stopped the stage: "user", "global"

    def on_delta(self, text: str) -> None:
        """Count streamed text."""
        self._streaming = True
        self._chars += len(text)

    def on_model(self, model: str | None) -> None:
        """The next attempt runs on ``model`` (a retry or a fallback)."""
        if model is not None:
            self._model = model

    def _estimate(self) -> tuple[int, int]:
        if not self._streaming:
            return 0, 0
        completion = -(-self._chars // 4)
        provider = self._registry.provider(self._registry.model(self._model).provider)
        return (
            self._prompt_tokens + completion,
            cost_units(provider.cost(self._prompt_tokens, completion)),
        )

    async def on_call(self, record: dict[str, Any]) -> None:
        """Correct the counters to the attempt's recorded usage; the next attempt starts at 0."""
        tokens = int(record["prompt_tokens"]) + int(record["completion_tokens"])
        units = cost_units(float(record["cost_usd"]))
        delta_tokens, delta_units = tokens - self._charged_tokens, units - self._charged_units
        self._charged_tokens = self._charged_units = self._chars = 0
        self._streaming = False
        await self._book.charge(self._user.user_id, delta_tokens, delta_units)

    async def spent(self) -> bool:
        """Charge what the stream added since the last charge and check the budgets (on the
        first call, then at most every CHECK_INTERVAL_S); True once a budget is spent."""
        now = self._clock()
        if self._checked_at is not None and now - self._checked_at < CHECK_INTERVAL_S:
            return False
        self._checked_at = now
        tokens, units = self._estimate()
        delta_tokens = max(0, tokens - self._charged_tokens)
        delta_units = max(0, units - self._charged_units)
        self._charged_tokens += delta_tokens
        self._charged_units += delta_units
        if self._limit.tokens is None and self._limit.cost_usd is None and self._book.unlimited:
            await self._book.charge(self._user.user_id, delta_tokens, delta_units)
            return False  # no budget to check: charging keeps the counters right
        user_id = self._user.user_id
        mine, everyone = await self._book.charge_and_spend(user_id, delta_tokens, delta_units)
        if self._limit.spent(mine):
            self.exceeded = "user"
        elif self._book.global_limit.spent(everyone):
            self.exceeded = "global"
        return self.exceeded is not None
