"""Bodies and answers of the webhook resource."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, Field

from server.api.body import QueryModel, RequestModel
from server.store.models import Timestamp, WebhookDelivery

MAX_URL_CHARS = 2048


def _webhook_url(value: str) -> str:
    """Accept an absolute http(s) URL with a host; refuse anything else."""
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018  # raises ValueError for a bad port
    except ValueError:
        raise ValueError("not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not host:
        raise ValueError("must name a host")
    if any(ch.isspace() for ch in value):
        raise ValueError("must not contain whitespace")
    return value


WebhookUrl = Annotated[str, Field(min_length=1, max_length=MAX_URL_CHARS),
                       AfterValidator(_webhook_url)]  # fmt: skip


class PutWebhookBody(RequestModel):
    url: WebhookUrl
    # Given: used as the signing secret. Absent: the webhook's secret is kept, or a new
    # one is generated (and answered once) when the user had no webhook.
    secret: Annotated[str, Field(min_length=16, max_length=256)] | None = None


class WebhookView(BaseModel):
    """The webhook as answered: never its secret."""

    url: str
    created_at: Timestamp
    updated_at: Timestamp


class WebhookPut(WebhookView):
    """The webhook just set: ``secret`` only when the server generated it (shown once)."""

    secret: str | None = None


class DeliveriesQuery(QueryModel):
    limit: Annotated[int, Field(ge=1, le=100)] = 20


class DeliveryEnvelope(BaseModel):
    delivery: WebhookDelivery


class DeliveryList(BaseModel):
    items: list[WebhookDelivery]
