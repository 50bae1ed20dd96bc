"""Failure injection: markers in the prompt, a seeded failure rate, a "down" switch.

A marker ``[[fail:KIND]]`` in the system prompt or the last user message makes the
call fail. KIND is an HTTP status (``500``, ``429``, ``401``...), ``timeout`` (hang
before answering), ``stall`` (stream a few tokens, then hang) or ``cut`` (stream a
few tokens, then drop the connection). ``@MODEL`` scopes it to one model and
``*N`` to the first N matching calls of that conversation, so retries can succeed:
``[[fail:500@chorus-demo*2]]``.

Random failures are drawn from ``Random(f"{seed}:{conversation}:{n}")`` for the n-th
call of a conversation, so a seeded run fails the same calls however concurrent
requests interleave.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass

from workers.demo_model.config import DemoConfig

_MARKER = re.compile(
    r"\[\[fail:(?P<kind>[a-z]+|\d{3})(?:@(?P<model>[^\]*@\s]+))?(?:\*(?P<times>\d+))?\]\]"
)
_MAX_TRACKED = 50_000
STREAM_KINDS = ("timeout", "stall", "cut")


@dataclass(frozen=True)
class Marker:
    """One failure marker found in a prompt."""

    raw: str
    kind: str
    model: str | None
    times: int | None


def parse_markers(text: str) -> list[Marker]:
    """Return the failure markers in text, in order."""
    return [
        Marker(m.group(0), m["kind"], m["model"], int(m["times"]) if m["times"] else None)
        for m in _MARKER.finditer(text)
    ]


def strip_markers(text: str) -> str:
    """Remove failure markers from text."""
    return _MARKER.sub("", text)


def is_known_kind(kind: str) -> bool:
    """Whether a failure kind is an HTTP status or one of the stream failures."""
    return kind in STREAM_KINDS or (kind.isdigit() and 400 <= int(kind) <= 599)


class FaultPlan:
    """Decide which calls fail; counts calls per conversation for ``*N`` and the seeded rate."""

    def __init__(self) -> None:
        self._fired: Counter[tuple[str, str]] = Counter()
        self._calls: Counter[str] = Counter()

    def _track(self) -> None:
        if len(self._fired) + len(self._calls) > _MAX_TRACKED:
            self._fired.clear()
            self._calls.clear()

    def _marker_fault(self, markers: list[Marker], conversation: str, model: str) -> str | None:
        for marker in markers:
            if not is_known_kind(marker.kind) or (marker.model and marker.model != model):
                continue
            if marker.times is not None:
                key = (conversation, marker.raw)
                if self._fired[key] >= marker.times:
                    continue
                self._fired[key] += 1
            return marker.kind
        return None

    def choose(self, config: DemoConfig, conversation: str, model: str, prompt: str) -> str | None:
        """Return the failure kind for this call, or None to answer normally."""
        self._track()
        if config.down:
            return "503"
        fault = self._marker_fault(parse_markers(prompt), conversation, model)
        if fault is not None or config.fail_rate <= 0 or not config.fail_kinds:
            return fault
        n = self._calls[conversation]
        self._calls[conversation] += 1
        rng = random.Random(f"{config.seed}:{conversation}:{n}")
        if rng.random() < config.fail_rate:
            return rng.choice(config.fail_kinds)
        return None
