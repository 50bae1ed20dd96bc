"""Request bodies of the runs API (approval gates, regenerate, stage re-run)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from server.api.body import RequestModel
from server.sessions.schemas import PipelineName

ModelName = Annotated[str, Field(min_length=1, max_length=200)]


class ApproveBody(RequestModel):
    # The stage's output as the user edited it (replaces the output; the model's is kept as
    # ``output_original``); absent or null: approved as it is.
    output: Annotated[str, Field(max_length=100_000)] | None = None


class RejectBody(RequestModel):
    reason: Annotated[str, Field(max_length=2_000)] = ""


class RegenerateBody(RequestModel):
    # Answer with another pipeline than the session's (the session keeps its own).
    pipeline: PipelineName | None = None


class RerunStageBody(RequestModel):
    # One model of the pipelines file's models table; none: the stage's agent's own chain.
    model: ModelName | None = None
