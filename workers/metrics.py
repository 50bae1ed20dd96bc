"""Prometheus metrics of the model chain (attempts, outcomes, latency, tokens, cost)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ChainMetrics:
    """The chain's counters on one registry (a private one unless given: tests build many)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        labels = ["provider", "model"]
        self.attempts = Counter(
            "chorus_llm_attempts_total", "LLM call attempts by outcome", [*labels, "outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "chorus_llm_attempt_seconds", "LLM call attempt duration", labels,
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.ttft = Histogram(
            "chorus_llm_ttft_seconds", "Time to the first token of an LLM call", labels,
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.tokens = Counter(
            "chorus_llm_tokens_total", "Tokens reported by providers", [*labels, "kind"],
            registry=self.registry,
        )  # fmt: skip
        self.cost = Counter(
            "chorus_llm_cost_usd_total", "Cost of LLM calls in USD", labels, registry=self.registry
        )
        self.stages = Counter(
            "chorus_llm_stages_total", "Stages run through the model chain, by result", ["result"],
            registry=self.registry,
        )  # fmt: skip

    def observe_call(self, record: dict[str, Any]) -> None:
        """Count one attempt (a record shaped like an llm_calls document)."""
        provider, model = record["provider"], record["model"]
        self.attempts.labels(provider, model, record["outcome"]).inc()
        self.latency.labels(provider, model).observe(record["latency_ms"] / 1000)
        if record["ttft_ms"] is not None:
            self.ttft.labels(provider, model).observe(record["ttft_ms"] / 1000)
        if record["prompt_tokens"]:
            self.tokens.labels(provider, model, "prompt").inc(record["prompt_tokens"])
        if record["completion_tokens"]:
            self.tokens.labels(provider, model, "completion").inc(record["completion_tokens"])
        if record["cost_usd"]:
            self.cost.labels(provider, model).inc(record["cost_usd"])
