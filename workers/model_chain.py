"""ModelChain: perform one stage with an agent's models — stream, retry, fall back.

For each model of the agent's chain, in order: up to ``attempts_per_model`` attempts,
retrying 408/409/429/5xx, timeouts, connection errors and broken streams after an
exponential backoff with full jitter (or the Retry-After asked for, when it fits the
deadline); 400/401/404 and other refusals move straight to the next model. Every
attempt is reported to the observer as an llm_calls record and counted in metrics.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from server.config import Settings
from server.pipelines import Agent, AgentRegistry, Model
from workers.attempt import AttemptRunner
from workers.cancel import CancelWatch, StageCancelled
from workers.chain_types import ChainObserver, ChainResult, StageContext, StageFailed
from workers.metrics import ChainMetrics
from workers.providers import ProviderPool
from workers.retry import Failure, RetryPolicy

__all__ = ["ChainObserver", "ChainResult", "ModelChain", "StageCancelled", "StageFailed"]


class ModelChain:
    """Run stages against the registry's providers; one client per provider, closed by close()."""

    def __init__(
        self,
        registry: AgentRegistry,
        settings: Settings,
        *,
        policy: RetryPolicy | None = None,
        metrics: ChainMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._registry = registry
        self._policy = policy or RetryPolicy.from_settings(settings)
        self._stage_timeout_s = settings.stage_timeout_s
        self._rng = rng or random.Random()
        self.metrics = metrics or ChainMetrics()
        self._pool = ProviderPool(registry.providers(), settings.attempt_timeout_s)
        self._attempts = AttemptRunner(
            self._pool, registry, settings.attempt_timeout_s, self.metrics
        )

    async def close(self) -> None:
        """Close every provider client."""
        await self._pool.close()

    async def run(
        self,
        agent: Agent,
        messages: list[dict[str, str]],
        observer: ChainObserver,
        cancelled: Callable[[], Awaitable[bool]] | None = None,
        *,
        deadline_s: float | None = None,
        models: Sequence[str] | None = None,
    ) -> ChainResult:
        """Perform a stage; raise StageFailed when no model succeeds in time, StageCancelled.

        ``models`` replaces the agent's chain (a stage re-run with one chosen model: that
        model alone, with its retries).
        """
        if models is not None:
            agent = replace(agent, models=tuple(models))
        loop = asyncio.get_running_loop()
        timeout = self._stage_timeout_s if deadline_s is None else deadline_s
        async with CancelWatch(cancelled, self._policy.cancel_poll_s) as watch:
            stage = StageContext(agent, messages, observer, watch, loop.time() + timeout)
            try:
                result = await self._run_models(stage)
            except StageCancelled:
                self.metrics.stages.labels("cancelled").inc()
                raise
        if result is None:
            self.metrics.stages.labels("failed").inc()
            raise self._failed(stage, timeout)
        self.metrics.stages.labels("ok").inc()
        return result

    async def _run_models(self, stage: StageContext) -> ChainResult | None:
        models = stage.agent.models
        for index, name in enumerate(models):
            if stage.expired():
                return None
            following = models[index + 1] if index + 1 < len(models) else None
            result = await self._run_model(stage, self._registry.model(name), following)
            if result is not None:
                return result
        return None

    async def _run_model(
        self, stage: StageContext, model: Model, following: str | None
    ) -> ChainResult | None:
        failure: Failure | None = None
        for retry in range(self._policy.attempts_per_model):
            outcome = await self._attempts.run(stage, model)
            if isinstance(outcome, ChainResult):
                return outcome
            failure = outcome
            delay = self._retry_delay(stage, failure, retry)
            if delay is None:
                break
            await stage.observer.on_retrying(stage.attempts + 1, failure.message, model.name)
            await stage.watch.sleep(delay)
        if failure is not None and following is not None and not stage.expired():
            await stage.observer.on_retrying(stage.attempts + 1, failure.message, following)
        return None

    def _retry_delay(self, stage: StageContext, failure: Failure, retry: int) -> float | None:
        """Return how long to wait before retrying the same model, or None to move on."""
        if not failure.retryable or retry + 1 >= self._policy.attempts_per_model:
            return None
        delay = max(self._policy.backoff(retry, self._rng), failure.retry_after_s or 0.0)
        # A wait that would overrun the deadline cannot help; the next model might.
        if asyncio.get_running_loop().time() + delay >= stage.deadline:
            return None
        return delay

    def _failed(self, stage: StageContext, timeout: float) -> StageFailed:
        last = stage.errors[-1] if stage.errors else "no attempt could start"
        if stage.expired():
            reason = f"the stage deadline of {timeout:g}s passed"
        else:
            reason = f"every model failed ({', '.join(stage.agent.models)})"
        message = (
            f"agent {stage.agent.name!r}: {reason} after {stage.attempts} attempt(s); "
            f"last error: {last}"
        )
        return StageFailed(message, stage.attempts, list(stage.errors))
