"""The terminal view of a run: a stage stepper on stderr, the answer streamed to stdout."""

from __future__ import annotations

from typing import TextIO

from chorus_client.models import Event

# What the stepper says of an approval gate's events (the data fills the fields in).
_GATE_LINES = {
    "run.awaiting_approval": "⏸ {stage} awaits your approval: approve or reject it in the UI, "
    "or with POST /api/v1/runs/{run}/approve (or /reject)",
    "run.approved": "▶ {stage} approved",
    "run.rejected": "✗ {stage} rejected",
    "run.approval_expired": "✗ {stage} was not approved within {timeout_s:g} s",
}


class Stepper:
    """Render one run's events as they arrive."""

    def __init__(self, stages: list[str], out: TextIO, err: TextIO, *, all_stages: bool) -> None:
        self._stages = stages
        self._out = out
        self._err = err
        self._all = all_stages
        self.answer = ""
        self.status: str | None = None

    def _step(self, stage: str) -> str:
        index = self._stages.index(stage) + 1 if stage in self._stages else 0
        return f"[{index}/{len(self._stages)}] {stage}"

    def show(self, event: Event) -> None:
        """Render one event."""
        data, stage = event.data, str(event.data.get("stage", ""))
        is_answer = bool(self._stages) and stage == self._stages[-1]
        if event.name == "stage.started":
            self._line(f"{self._step(stage)} …")
        elif event.name == "stage.delta":
            if is_answer:
                self.answer += data["text"]
                self._out.write(data["text"])
                self._out.flush()
            elif self._all:
                self._err.write(data["text"])
        elif event.name == "stage.reset":
            self._line(f"{self._step(stage)} restarting (its partial text is discarded)")
        elif event.name == "stage.retrying":
            self._line(f"{self._step(stage)} retrying: {data.get('error')}")
        elif event.name == "stage.completed":
            self._completed(stage, data, is_answer)
        elif event.name.startswith("run.") and event.name != "run.queued":
            self._run(event)

    def _completed(self, stage: str, data: dict[str, object], is_answer: bool) -> None:
        if is_answer or self._all:
            self._out.write("\n") if is_answer else self._err.write("\n")
        usage = data.get("usage") or {}
        tokens = usage.get("completion_tokens", 0) if isinstance(usage, dict) else 0
        self._line(f"{self._step(stage)} ✓ {data.get('model', '')} · {tokens} tokens")

    def _run(self, event: Event) -> None:
        if event.name == "run.started":
            self._line(f"run {event.run_id} started")
            return
        if event.name in _GATE_LINES:  # an approval gate: the run waits, goes on, or ends
            self._line(_GATE_LINES[event.name].format(run=event.run_id, **event.data))
            return
        self.status = event.name.removeprefix("run.")
        if event.name == "run.failed":
            self._line(f"✗ run failed: {event.data.get('error')}")
        elif event.name == "run.cancelled":
            error = event.data.get("error")
            self._line(f"✗ run cancelled: {error}" if error else "✗ run cancelled")
        else:
            usage = event.data.get("usage") or {}
            self._line(f"✓ done · {usage.get('prompt_tokens', 0)} prompt + "
                       f"{usage.get('completion_tokens', 0)} completion tokens")  # fmt: skip

    def _line(self, text: str) -> None:
        self._err.write(text + "\n")
        self._err.flush()
