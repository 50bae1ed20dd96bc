"""Request bodies and query strings of the sessions API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from server.api.body import QueryModel, RequestModel

Title = Annotated[str, Field(max_length=200)]
PipelineName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
StatusFilter = Literal["idle", "queued", "running", "completed", "failed", "cancelled"]


class CreateSessionBody(RequestModel):
    title: Title = ""
    pipeline: PipelineName = "default"


class RenameSessionBody(RequestModel):
    title: Title


class ListSessionsQuery(QueryModel):
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    skip: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    status: StatusFilter | None = None
    # Text searched in titles and messages (case-insensitive substring); blank = no search.
    q: Annotated[str, Field(max_length=200)] = ""
    sort: Literal["started", "updated"] = "started"


class ListMessagesQuery(QueryModel):
    limit: Annotated[int, Field(ge=1, le=200)] = 50
    before: datetime | None = None


class PostMessageBody(RequestModel):
    content: Annotated[str, Field(min_length=1, max_length=20_000)]
