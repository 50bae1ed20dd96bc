"""Request bodies of the runs API (approval gates)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from server.api.body import RequestModel


class ApproveBody(RequestModel):
    # The stage's output as the user edited it (replaces the output; the model's is kept as
    # ``output_original``); absent or null: approved as it is.
    output: Annotated[str, Field(max_length=100_000)] | None = None


class RejectBody(RequestModel):
    reason: Annotated[str, Field(max_length=2_000)] = ""
