"""Request bodies and query strings of the sessions API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from server.api.body import QueryModel, RequestModel

Title = Annotated[str, Field(max_length=200)]
PipelineName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
MessageId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


def _in_utc(value: datetime) -> datetime:
    """Read a timestamp as UTC (naive means UTC); refuse one that UTC cannot hold."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise ValueError("timestamp out of range") from None


Cursor = Annotated[datetime, AfterValidator(_in_utc)]
StatusFilter = Literal[
    "idle", "queued", "running", "awaiting_approval", "completed", "failed", "cancelled"
]


Policy = Literal["reject", "enqueue", "interrupt", "amend"]


class CreateSessionBody(RequestModel):
    title: Title = ""
    pipeline: PipelineName = "default"
    # null: the server's DOUBLE_TEXTING
    double_texting: Policy | None = None


class RenameSessionBody(RequestModel):
    title: Title | None = None
    # Sent as null: back to the server's DOUBLE_TEXTING; left out: unchanged.
    double_texting: Policy | None = None


class ListSessionsQuery(QueryModel):
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    skip: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    status: StatusFilter | None = None
    # Text searched in titles and messages (case-insensitive substring); blank = no search.
    q: Annotated[str, Field(max_length=200)] = ""
    sort: Literal["started", "updated"] = "started"


class ListMessagesQuery(QueryModel):
    limit: Annotated[int, Field(ge=1, le=200)] = 50
    before: Cursor | None = None
    before_id: MessageId | None = None
    # Read the newest branch through this message instead of the selected one.
    head: MessageId | None = None


class SessionQuery(QueryModel):
    # Show the newest branch through this message instead of the selected one.
    head: MessageId | None = None


class PostMessageBody(RequestModel):
    content: Annotated[str, Field(min_length=1, max_length=20_000)]
    # What this message does if the session's run is active (null: the session's policy).
    double_texting: Policy | None = None
    # Resend an edit of this earlier user message: a new branch from the same point.
    edit_of: MessageId | None = None


class SelectBranchBody(RequestModel):
    message_id: MessageId
