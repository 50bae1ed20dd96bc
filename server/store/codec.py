"""Conversions shared by the stores: field paths, field values and usage sums."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from server.store.models import DayUsage, UsageSummary, format_ts

# A path part is a field name or an array index; "$", "_id" and empty parts are refused,
# so a caller's key can never become a query operator or touch the storage id.
_PART = re.compile(r"[A-Za-z][A-Za-z0-9_]*|[0-9]+")
_COST_DIGITS = 10


def path_parts(path: str) -> list[str]:
    """Split a dotted field path such as ``stages.1.status``; raise ValueError if invalid."""
    parts = path.split(".")
    if parts[0].isdigit() or not all(_PART.fullmatch(part) for part in parts):
        raise ValueError(f"invalid field path: {path!r}")
    return parts


def json_path(path: str) -> str:
    """Translate a dotted field path into an SQLite JSON path (``$.stages[1].status``)."""
    return "$" + "".join(f"[{part}]" if part.isdigit() else f".{part}" for part in path_parts(path))


def utc_ms(value: datetime) -> datetime:
    """Return the timestamp in UTC at millisecond precision (naive means UTC)."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.replace(microsecond=aware.microsecond // 1000 * 1000)


def to_json(value: Any) -> Any:
    """Convert a field value to plain JSON data (timestamps as fixed-width text)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, datetime):
        return format_ts(utc_ms(value))
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    return value


def to_bson(value: Any) -> Any:
    """Convert a field value to BSON-ready data (timestamps as UTC datetimes)."""
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, datetime):
        return utc_ms(value)
    if isinstance(value, dict):
        return {str(key): to_bson(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_bson(item) for item in value]
    return value


def summarize(days: Iterable[DayUsage]) -> UsageSummary:
    """Build a usage summary from per-day sums, newest day first."""
    ordered = sorted(days, key=lambda day: day.day, reverse=True)
    for day in ordered:
        day.cost_usd = round(day.cost_usd, _COST_DIGITS)
    return UsageSummary(
        prompt_tokens=sum(day.prompt_tokens for day in ordered),
        completion_tokens=sum(day.completion_tokens for day in ordered),
        cost_usd=round(sum(day.cost_usd for day in ordered), _COST_DIGITS),
        calls=sum(day.calls for day in ordered),
        days=ordered,
    )


def day_bounds(day: str) -> tuple[datetime, datetime]:
    """Return the start of a UTC day (``YYYY-MM-DD``) and of the next; ValueError if bad."""
    start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    return start, start + timedelta(days=1)
