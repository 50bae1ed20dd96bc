"""Chorus session events as AG-UI events (docs/ag-ui.md has the table).

Each stage is an AG-UI step and also one assistant text message, whose id is
``<run_id>:<stage>``; the last stage's message is the answer. Events with no AG-UI
counterpart travel as ``CUSTOM`` events named ``chorus.<event name>``.
"""

from __future__ import annotations

from typing import Any

AgUiEvent = dict[str, Any]


def _message_id(event: dict[str, Any]) -> str:
    return f"{event['run_id']}:{event['data']['stage']}"


def _custom(event: dict[str, Any]) -> list[AgUiEvent]:
    return [{"type": "CUSTOM", "name": f"chorus.{event['name']}", "value": event["data"]}]


def _stage_started(event: dict[str, Any]) -> list[AgUiEvent]:
    return [
        {"type": "STEP_STARTED", "stepName": event["data"]["stage"]},
        {"type": "TEXT_MESSAGE_START", "messageId": _message_id(event), "role": "assistant"},
    ]


def _stage_delta(event: dict[str, Any]) -> list[AgUiEvent]:
    text = event["data"]["text"]
    if not text:
        return []  # AG-UI requires a non-empty delta
    return [{"type": "TEXT_MESSAGE_CONTENT", "messageId": _message_id(event), "delta": text}]


def _stage_completed(event: dict[str, Any]) -> list[AgUiEvent]:
    return [
        {"type": "TEXT_MESSAGE_END", "messageId": _message_id(event)},
        {"type": "STEP_FINISHED", "stepName": event["data"]["stage"]},
    ]


def _run_started(event: dict[str, Any]) -> list[AgUiEvent]:
    return [{"type": "RUN_STARTED", "threadId": event["session_id"], "runId": event["run_id"]}]


def _run_completed(event: dict[str, Any]) -> list[AgUiEvent]:
    return [
        {"type": "RUN_FINISHED", "threadId": event["session_id"], "runId": event["run_id"],
         "outcome": "success", "result": event["data"]}
    ]  # fmt: skip


def _run_awaiting_approval(event: dict[str, Any]) -> list[AgUiEvent]:
    # AG-UI's human-in-the-loop pause: the run "finishes" with an interrupt; here it is
    # resumed by POST /runs/{id}/approve (or ended by reject), not by a new run's input.
    return [
        {"type": "RUN_FINISHED", "threadId": event["session_id"], "runId": event["run_id"],
         "outcome": "interrupt",
         "interrupt": {"id": _message_id(event), "reason": "human_approval",
                       "payload": event["data"]}}
    ]  # fmt: skip


def _run_failed(event: dict[str, Any]) -> list[AgUiEvent]:
    data = event["data"]
    code = data.get("error_code") or "run_failed"
    return [{"type": "RUN_ERROR", "message": str(data.get("error")), "code": code}]


def _run_cancelled(event: dict[str, Any]) -> list[AgUiEvent]:
    message = event["data"].get("error") or "the run was cancelled"
    return [{"type": "RUN_ERROR", "message": str(message), "code": "run_cancelled"}]


_MAPPERS = {
    "run.started": _run_started,
    "stage.started": _stage_started,
    "stage.delta": _stage_delta,
    "stage.completed": _stage_completed,
    "run.completed": _run_completed,
    "run.failed": _run_failed,
    "run.cancelled": _run_cancelled,
    "run.awaiting_approval": _run_awaiting_approval,
}


def to_ag_ui(event: dict[str, Any]) -> list[AgUiEvent]:
    """Map one Chorus event to the AG-UI events it stands for (maybe none)."""
    mapper = _MAPPERS.get(event["name"], _custom)
    return mapper(event)
