"""Bodies and answers of the API keys resource."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from server.api.body import RequestModel
from server.store.models import Timestamp


class CreateKeyBody(RequestModel):
    name: Annotated[str, Field(max_length=100)] = ""


class ApiKeyView(BaseModel):
    """A key as listed: never the key itself, nor its hash."""

    key_id: str
    name: str
    prefix: str
    created_at: Timestamp
    last_used_at: Timestamp | None
    revoked_at: Timestamp | None


class ApiKeyCreated(ApiKeyView):
    """A new key: the only answer that carries ``key``."""

    key: str


class ApiKeyList(BaseModel):
    items: list[ApiKeyView]
