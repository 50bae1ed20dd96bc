"""The slice of the OpenAI chat-completions wire format the demo model speaks."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from workers.demo_model.answers import Turn

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = "text"
    text: str | None = None


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[_Part] | None = None

    def turn(self) -> Turn:
        """Return the message as plain text."""
        if isinstance(self.content, list):
            return Turn(self.role, "".join(p.text or "" for p in self.content))
        return Turn(self.role, self.content or "")


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatRequest(BaseModel):
    """A chat completion request (unknown fields are accepted and ignored)."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    messages: list[_Message] = Field(min_length=1)
    stream: bool = False
    stream_options: _StreamOptions | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    max_completion_tokens: int | None = Field(default=None, gt=0)

    def turns(self) -> list[Turn]:
        """Return the messages as plain-text turns."""
        return [m.turn() for m in self.messages]

    def token_limit(self) -> int | None:
        """Return the completion token limit, if any."""
        return self.max_completion_tokens or self.max_tokens

    def include_usage(self) -> bool:
        """Whether a streamed answer ends with a usage chunk."""
        return self.stream_options is not None and self.stream_options.include_usage


def error_body(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    """Return an OpenAI-style error body."""
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def usage_body(prompt: int, completion: int) -> dict[str, int]:
    """Return a usage object."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def completion_body(
    call_id: str, created: int, model: str, *, text: str, finish: str, usage: dict[str, int]
) -> dict[str, Any]:
    """Return a non-streamed chat completion."""
    return {
        "id": call_id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": finish, "logprobs": None}],
        "usage": usage,
    }  # fmt: skip


class ChunkEncoder:
    """Encode one stream's SSE lines; the fixed parts are encoded once."""

    def __init__(self, call_id: str, created: int, model: str) -> None:
        head = {
            "id": call_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        self._head = json.dumps(head)[:-1]
        self._delta_prefix = (
            self._head + ', "choices": [{"index": 0, "delta": {"content": '
        ).encode()
        self._delta_suffix = b'}, "finish_reason": null}]}\n\n'

    def _event(self, body: str) -> bytes:
        return f"data: {self._head}, {body}}}\n\n".encode()

    def role(self) -> bytes:
        """Return the first chunk, which carries the role."""
        return self._event(
            '"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, '
            '"finish_reason": null}]'
        )

    def delta(self, token: str) -> bytes:
        """Return a chunk carrying one token."""
        return b"data: " + self._delta_prefix + json.dumps(token).encode() + self._delta_suffix

    def finish(self, reason: str) -> bytes:
        """Return the chunk that carries the finish reason."""
        return self._event(
            f'"choices": [{{"index": 0, "delta": {{}}, "finish_reason": "{reason}"}}]'
        )

    def usage(self, usage: dict[str, int]) -> bytes:
        """Return the final usage chunk (empty choices)."""
        return self._event(f'"choices": [], "usage": {json.dumps(usage)}')

    @staticmethod
    def done() -> bytes:
        """Return the end-of-stream line."""
        return b"data: [DONE]\n\n"
