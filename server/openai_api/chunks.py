"""Translate a run's Chorus events into OpenAI chat completion chunks.

The answer is the last stage's text: its deltas become ``delta.content``. Earlier
stages, and each stage's start, retry and end, appear only as the ``chorus`` extension
field of chunks whose ``delta`` is empty, which plain clients ignore. A retry that
restarts the answer stage (``stage.reset``) cannot take back text already sent: the
new attempt's text is sent only past what was sent, as long as it repeats it; if it
differs, a ``chorus.event = "answer.replaced"`` chunk says so and the new text follows
whole (a plain client shows both). ``run.completed`` carries the stored answer and usage,
so any text not yet sent is sent then, and the usage is the run's exact total.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from server.openai_api.errors import error_payload

Chunk = dict[str, Any]
_PROGRESS = frozenset({"stage.started", "stage.retrying", "stage.completed", "stage.reset"})


@dataclass
class Outcome:
    """How the run ended, once it has."""

    status: str  # completed | failed | cancelled
    answer: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    error: str = ""


class ChunkWriter:
    """Builds the chunks of one completion from the run's events, in order."""

    def __init__(
        self, completion_id: str, created: int, model: str, stages: list[str], *,
        progress: bool, include_usage: bool,
    ) -> None:  # fmt: skip
        self.completion_id = completion_id
        self._base = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                      "model": model, "system_fingerprint": None}  # fmt: skip
        self._answer_stage = stages[-1]
        self._stages = len(stages)
        self._progress = progress
        self._include_usage = include_usage
        self.sent = ""  # answer text sent so far
        self._redo: str | None = None  # the answer stage's text since its last reset
        self.outcome: Outcome | None = None

    def chunk(self, delta: dict[str, Any], finish: str | None = None, **ext: Any) -> Chunk:
        """One chunk with a single choice (and the ``chorus`` extension if given)."""
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        out: Chunk = {**self._base, "choices": [choice]}
        if self._include_usage:
            out["usage"] = None
        if ext:
            out["chorus"] = ext
        return out

    def first(self, session_id: str, run_id: str) -> Chunk:
        """The opening chunk: the assistant role, and where the run lives."""
        return self.chunk({"role": "assistant", "content": ""}, session_id=session_id,
                          run_id=run_id, stages=self._stages)  # fmt: skip

    def feed(self, event: dict[str, Any]) -> list[Chunk]:
        """The chunks one event stands for (maybe none)."""
        name, data = event["name"], event["data"]
        if name == "stage.delta":
            if data["stage"] == self._answer_stage:
                return self._answer_text(data["text"])
            if not self._progress:
                return []
            return self._ext(event, stage=data["stage"], text=data["text"])
        if name == "stage.reset" and data["stage"] == self._answer_stage:
            self._redo = ""
        if name in _PROGRESS:
            return self._ext(event, **data) if self._progress else []
        return self._final(name, data)

    def _ext(self, event: dict[str, Any], **fields: Any) -> list[Chunk]:
        return [self.chunk({}, event=event["name"], **fields)]

    def _answer_text(self, text: str) -> list[Chunk]:
        if self._redo is None:
            return self._content(text)
        redo = self._redo + text
        if self.sent.startswith(redo):
            self._redo = redo  # the new attempt is still repeating what was sent
            return []
        self._redo = None
        if redo.startswith(self.sent):
            return self._content(redo[len(self.sent) :])  # caught up: go on past it
        # A different answer: say so, then send it whole (plain clients see both).
        self.sent = ""
        return [self.chunk({}, event="answer.replaced"), *self._content(redo)]

    def _content(self, text: str) -> list[Chunk]:
        self.sent += text
        return [self.chunk({"content": text})]

    def _final(self, name: str, data: dict[str, Any]) -> list[Chunk]:
        if name == "run.completed":
            answer = str(data["message"]["content"])
            usage = data.get("usage") or {}
            self.outcome = Outcome("completed", answer, _usage(usage))
            rest = answer[len(self.sent) :] if answer.startswith(self.sent) else ""
            out = self._content(rest) if rest else []
            return [*out, self.chunk({}, "stop")]
        if name == "run.failed":
            self.outcome = Outcome("failed", error=str(data.get("error") or "the run failed"))
        elif name == "run.cancelled":
            # Rejected or timed out at an approval gate: the event says so.
            error = str(data.get("error") or "the run was cancelled")
            self.outcome = Outcome("cancelled", error=error)
        return []

    def closing(self) -> list[Chunk | dict[str, Any]]:
        """What follows the run's end: the usage chunk, or the error."""
        outcome = self.outcome
        assert outcome is not None
        if outcome.status != "completed":
            return [error_payload(outcome.error, "server_error", f"run_{outcome.status}")]
        if not self._include_usage:
            return []
        return [{**self._base, "choices": [], "usage": outcome.usage}]


def _usage(usage: dict[str, Any]) -> dict[str, int]:
    prompt, completion = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}  # fmt: skip
