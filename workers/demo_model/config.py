"""The demo model server's knobs and the statistics it keeps for tests."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class DemoConfig:
    """How the demo model answers and fails."""

    host: str = "127.0.0.1"
    port: int = 0
    token_delay_ms: float = 5.0
    # Models served; a request for any other is 404 model_not_found (empty: serve any name).
    models: tuple[str, ...] = ("chorus-demo", "chorus-demo-backup")
    # When set, requests must carry ``Authorization: Bearer <api_key>`` (else 401).
    api_key: str | None = None
    fail_rate: float = 0.0
    fail_kinds: tuple[str, ...] = ("500", "503", "429", "timeout", "cut")
    seed: int = 0
    down: bool = False
    retry_after_s: float = 1.0
    hang_s: float = 300.0


@dataclass
class DemoStats:
    """What the server did: calls by outcome, and the usage it reported to clients."""

    calls: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    calls_by_model: Counter[str] = field(default_factory=Counter)
    # Totals over the calls whose usage was reported (non-stream, or stream with a usage chunk).
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usage_reports: int = 0

    def record_usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        """Add one reported usage to the totals."""
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.usage_reports += 1
