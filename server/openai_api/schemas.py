"""Request bodies of /v1/chat/completions, validated at the edge."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from server.errors import InvalidRequest

SessionId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        """The message's text (text parts joined); 400 for images, audio and the like."""
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        if any(part.type != "text" or part.text is None for part in self.content):
            raise InvalidRequest("messages: only text content is supported")
        return "".join(part.text or "" for part in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionBody(BaseModel):
    """OpenAI's fields that Chorus honours, two extensions, and any others (ignored)."""

    model_config = ConfigDict(extra="allow")

    model: Annotated[str, Field(min_length=1, max_length=64)]
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=1000)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: Annotated[int, Field(ge=1, le=1)] = 1
    # Extensions: continue a Chorus session; turn stage-progress chunks off.
    chorus_session_id: SessionId | None = None
    chorus_progress: bool = True

    @field_validator("messages")
    @classmethod
    def _last_is_user(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        if messages[-1].role != "user":
            raise ValueError("the last message must be the user's")
        return messages

    @property
    def include_usage(self) -> bool:
        """Whether the stream ends with a usage chunk."""
        return self.stream_options is not None and self.stream_options.include_usage


# Answers, as the OpenAPI document describes them (the handlers build plain dicts).


class ModelChorus(BaseModel):
    description: str
    answer_stage: str
    stages: list[str]


class ModelInfo(BaseModel):
    """A pipeline as an OpenAI model."""

    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    chorus: ModelChorus


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelInfo]


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str
    refusal: None


class CompletionChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: None
    finish_reason: Literal["stop"]


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionChorus(BaseModel):
    session_id: str
    run_id: str


class ChatCompletion(BaseModel):
    """A finished (non-streaming) completion; ``stream: true`` answers SSE chunks instead."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    system_fingerprint: None
    choices: list[CompletionChoice]
    usage: CompletionUsage
    chorus: CompletionChorus


class OpenAiErrorDetail(BaseModel):
    message: str
    type: str
    param: None
    code: str | None


class OpenAiErrorBody(BaseModel):
    """OpenAI's error envelope."""

    error: OpenAiErrorDetail
