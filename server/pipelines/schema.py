"""The pipelines file's schema (TOML), validated with pydantic; names are the table keys."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

STAGE_NAME = r"^[a-z_][a-z0-9_]*$"


class _Spec(BaseModel):
    # Strict: "0.5" is not a number and a misspelt key is an error, not a silent default.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ProviderSpec(_Spec):
    """An OpenAI-compatible endpoint; ``base_url`` may hold ``${NAME}`` placeholders."""

    base_url: str = Field(min_length=1)
    api_key_env: str | None = Field(default=None, min_length=1)
    input_usd_per_million: float = Field(default=0.0, ge=0)
    output_usd_per_million: float = Field(default=0.0, ge=0)
    rpm: int | None = Field(default=None, gt=0)


class ModelSpec(_Spec):
    """A model as agents name it, served by a provider under its upstream id."""

    provider: str = Field(min_length=1)
    model: str = Field(min_length=1)


class AgentSpec(_Spec):
    """A system prompt template and the ordered chain of models that may answer it."""

    description: str = ""
    system: str = Field(min_length=1)
    models: list[str] = Field(min_length=1)
    temperature: float = Field(default=0.7, ge=0, le=2)
    max_tokens: int = Field(default=1024, gt=0)


class StageSpec(_Spec):
    """One stage of a pipeline; its name is a template variable for later stages."""

    name: str = Field(pattern=STAGE_NAME, max_length=64)
    agent: str = Field(min_length=1)
    # An approval gate: the run pauses after this stage until the user approves or rejects.
    approve: bool = False


class PipelineSpec(_Spec):
    """An ordered list of stages; the last stage's output is the assistant's answer."""

    description: str = ""
    stages: list[StageSpec] = Field(min_length=1)


class PipelinesFile(_Spec):
    """The whole file."""

    providers: dict[str, ProviderSpec] = Field(min_length=1)
    models: dict[str, ModelSpec] = Field(min_length=1)
    agents: dict[str, AgentSpec] = Field(min_length=1)
    pipelines: dict[str, PipelineSpec] = Field(min_length=1)
