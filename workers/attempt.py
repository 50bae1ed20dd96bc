"""AttemptRunner: one streamed call to one model, reported as an llm_calls record."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, cast

import openai
from openai.types.chat import ChatCompletionChunk

from server.pipelines import AgentRegistry, Model, Provider
from server.store.models import Usage
from workers.cancel import StageCancelled
from workers.chain_types import ChainResult, StageContext
from workers.metrics import ChainMetrics
from workers.providers import ProviderPool
from workers.retry import BrokenStream, Failure, Outcome, classify

# Tokenizer-free estimate: about four characters a token for English text with the
# common BPE vocabularies. Used only when the provider sent no usage (a stream Chorus
# abandoned, or a provider that never reports it); such records say usage_estimated.
CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """Estimate the tokens of a text without a tokenizer (ceil of chars / 4)."""
    return -(-len(text) // CHARS_PER_TOKEN)


@dataclass
class _Progress:
    started: float
    parts: list[str] = field(default_factory=list)
    ttft: float | None = None
    finish: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    opened: bool = False  # the provider accepted the request and began a stream
    usage_reported: bool = False

    def estimate_usage(self, messages: list[dict[str, str]]) -> bool:
        """Fill in estimated tokens when the provider sent none; True if it did so."""
        if self.usage_reported or not self.opened:
            return False
        self.prompt_tokens = sum(estimate_tokens(m.get("content", "")) for m in messages)
        self.completion_tokens = estimate_tokens("".join(self.parts))
        return True


class AttemptRunner:
    """Make one attempt: pace to the provider's rpm, stream with timeouts, record the call."""

    def __init__(
        self, pool: ProviderPool, registry: AgentRegistry, timeout_s: float, metrics: ChainMetrics
    ) -> None:
        self._pool = pool
        self._registry = registry
        self._timeout_s = timeout_s
        self._metrics = metrics

    async def run(self, stage: StageContext, model: Model) -> ChainResult | Failure:
        """Attempt the stage once on ``model``; return the result or why it failed."""
        provider = self._registry.provider(model.provider)
        client = self._pool.client(provider.name)
        if client is not None and not await self._pace(stage, provider):
            return Failure("timeout", "the stage deadline passed waiting for the rpm limit", False)
        stage.attempts += 1
        progress = _Progress(asyncio.get_running_loop().time())
        if client is None:
            failure = Failure("error", f"provider {provider.name!r}: {provider.problem}", False)
            await self._report(stage, model, provider, progress, failure)
            return failure
        try:
            await self._stream(stage, model, client, progress)
        except StageCancelled:
            await self._report(
                stage, model, provider, progress, Failure("cancelled", "cancelled", False)
            )
            raise
        except Exception as exc:
            classified = classify(exc, emitted=bool(progress.parts))
            if classified is None:
                raise
            failure = self._explain(classified, stage, progress)
            await self._report(stage, model, provider, progress, failure)
            if progress.parts:
                await stage.observer.on_reset()
            return failure
        await self._report(stage, model, provider, progress, None)
        return ChainResult(
            "".join(progress.parts), model.name, provider.name, stage.attempts, stage.usage,
            progress.finish or "stop", list(stage.calls),
        )  # fmt: skip

    async def _pace(self, stage: StageContext, provider: Provider) -> bool:
        try:
            with stage.watch.waiting():
                async with asyncio.timeout_at(stage.deadline):
                    await self._pool.pace(provider.name)
        except TimeoutError:
            stage.errors.append(f"the deadline passed waiting for {provider.name!r}'s rpm limit")
            return False
        return True

    def _next_deadline(self, stage: StageContext) -> float:
        return min(asyncio.get_running_loop().time() + self._timeout_s, stage.deadline)

    async def _stream(
        self, stage: StageContext, model: Model, client: openai.AsyncOpenAI, progress: _Progress
    ) -> None:
        # Timeouts and cancels interrupt only the waits for the model, never the observer
        # in the middle of publishing a delta.
        agent = stage.agent
        with stage.watch.waiting():
            async with asyncio.timeout_at(self._next_deadline(stage)):
                stream = await client.chat.completions.create(
                    model=model.upstream, messages=cast(Any, stage.messages), stream=True,
                    stream_options={"include_usage": True},
                    temperature=agent.temperature, max_tokens=agent.max_tokens,
                )  # fmt: skip
        progress.opened = True
        async with stream:
            while True:
                with stage.watch.waiting():
                    async with asyncio.timeout_at(self._next_deadline(stage)):
                        chunk = await anext(stream, None)
                if chunk is None:
                    break
                await self._take(chunk, stage, progress)
        if progress.finish is None:
            raise BrokenStream("the stream ended before the model finished")

    async def _take(
        self, chunk: ChatCompletionChunk, stage: StageContext, progress: _Progress
    ) -> None:
        if chunk.usage is not None:
            progress.usage_reported = True
            progress.prompt_tokens = chunk.usage.prompt_tokens
            progress.completion_tokens = chunk.usage.completion_tokens
        if chunk.choices:
            choice = chunk.choices[0]
            text = choice.delta.content if choice.delta is not None else None
            if text:
                if progress.ttft is None:
                    progress.ttft = asyncio.get_running_loop().time() - progress.started
                progress.parts.append(text)
                await stage.observer.on_delta(text)
            if choice.finish_reason:
                progress.finish = choice.finish_reason
        stage.watch.raise_if_cancelled()

    def _explain(self, failure: Failure, stage: StageContext, progress: _Progress) -> Failure:
        if failure.outcome != "timeout":
            return failure
        if stage.expired():
            message = "the stage deadline passed during the call"
        elif progress.ttft is None:
            message = f"no token within {self._timeout_s:g}s"
        else:
            message = f"no token for {self._timeout_s:g}s after {len(progress.parts)} chunks"
        return Failure("timeout", message, failure.retryable)

    async def _report(
        self, stage: StageContext, model: Model, provider: Provider, progress: _Progress,
        failure: Failure | None,
    ) -> None:  # fmt: skip
        now = asyncio.get_running_loop().time()
        outcome: Outcome = "ok" if failure is None else failure.outcome
        # An abandoned stream (timeout, stall, cancel, cut) was still billed for what it
        # streamed: record an estimate rather than 0, so per-user usage does not under-count.
        estimated = progress.estimate_usage(stage.messages)
        cost = provider.cost(progress.prompt_tokens, progress.completion_tokens)
        record: dict[str, Any] = {
            "provider": provider.name, "model": model.name, "attempt": stage.attempts,
            "outcome": outcome, "status_code": 200 if failure is None else failure.status_code,
            "latency_ms": round((now - progress.started) * 1000, 1),
            "ttft_ms": None if progress.ttft is None else round(progress.ttft * 1000, 1),
            "prompt_tokens": progress.prompt_tokens,
            "completion_tokens": progress.completion_tokens, "cost_usd": cost,
            "error": None if failure is None else failure.message,
            "usage_estimated": estimated,
        }  # fmt: skip
        stage.usage = stage.usage.plus(
            Usage(
                prompt_tokens=progress.prompt_tokens,
                completion_tokens=progress.completion_tokens,
                cost_usd=cost,
            )
        )
        stage.calls.append(record)
        if failure is not None and failure.outcome != "cancelled":
            stage.errors.append(f"{model.name} attempt {stage.attempts}: {failure.message}")
        self._metrics.observe_call(record)
        await stage.observer.on_call(dict(record))
