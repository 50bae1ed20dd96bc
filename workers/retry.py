"""The model chain's retry policy: what is retryable, how long to back off, Retry-After."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import openai

from server.config import Settings

RETRYABLE_STATUSES = frozenset({408, 409, 429})
_MAX_MESSAGE = 300

Outcome = Literal["ok", "error", "timeout", "broken_stream", "cancelled"]


class BrokenStream(Exception):
    """The stream ended before the model said it had finished."""


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts each model gets and how long to wait between them."""

    attempts_per_model: int = 3
    backoff_base_s: float = 0.25
    backoff_max_s: float = 8.0
    cancel_poll_s: float = 0.05

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """Build the policy from the settings."""
        return cls(
            attempts_per_model=settings.llm_attempts_per_model,
            backoff_base_s=settings.llm_backoff_base_s,
            backoff_max_s=settings.llm_backoff_max_s,
        )

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Return the wait before retry number ``retry`` (0-based): exponential, full jitter."""
        return rng.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2**retry))


@dataclass(frozen=True)
class Failure:
    """Why an attempt failed, and whether the same model may be tried again."""

    outcome: Outcome
    message: str
    retryable: bool
    status_code: int | None = None
    retry_after_s: float | None = None


# A gateway (LiteLLM) forwards the upstream provider's headers under this prefix.
_GATEWAY_PREFIX = "llm_provider-"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return headers.get(name) or headers.get(_GATEWAY_PREFIX + name) or None


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Return the wait a response asks for (``retry-after-ms`` or ``Retry-After``), if any.

    Each is also read as a gateway forwards it: ``llm_provider-retry-after(-ms)``.
    """
    millis = _header(headers, "retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    raw = _header(headers, "retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _short(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _status_failure(exc: openai.APIStatusError) -> Failure:
    status = exc.status_code
    retryable = status in RETRYABLE_STATUSES or status >= 500
    return Failure(
        "error", _short(f"HTTP {status}: {exc.message}"), retryable, status,
        retry_after(exc.response.headers) if retryable else None,
    )  # fmt: skip


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return f"{exc} ({type(cause).__name__}: {cause})" if cause else str(exc)


def classify(exc: Exception, *, emitted: bool) -> Failure | None:
    """Describe an attempt's exception; None for one that is not a model failure (a bug)."""
    if isinstance(exc, BrokenStream):
        return Failure("broken_stream", str(exc), True)
    if isinstance(exc, openai.APIStatusError):
        return _status_failure(exc)
    if isinstance(exc, openai.APITimeoutError | TimeoutError):
        return Failure("timeout", "timed out waiting for the model", True)
    if isinstance(exc, openai.APIConnectionError | openai.APIError):
        kind: Outcome = "broken_stream" if emitted else "error"
        return Failure(
            kind,
            _short(f"{'stream broken' if emitted else 'connection failed'}: {_cause(exc)}"),
            True,
        )
    if isinstance(exc, openai.OpenAIError):
        return Failure("error", _short(f"{type(exc).__name__}: {exc}"), False)
    return None
