"""JSON logs carrying request, user, session and run ids (from context variables)."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
user_id_var: ContextVar[str | None] = ContextVar("user_id", default=None)
session_id_var: ContextVar[str | None] = ContextVar("session_id", default=None)
run_id_var: ContextVar[str | None] = ContextVar("run_id", default=None)

_CONTEXT = {
    "request_id": request_id_var,
    "user_id": user_id_var,
    "session_id": session_id_var,
    "run_id": run_id_var,
}
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# HTTP client libraries log one INFO line per request (each model call): DEBUG detail.
_PER_REQUEST_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "openai")


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record with its context ids and extra fields."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, var in _CONTEXT.items():
            value = var.get()
            if value is not None:
                entry[name] = value
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class QuietHousekeeping(logging.Filter):
    """Drop arq's INFO lines about the reaper's cron job (every few seconds, mostly idle).

    The reaper logs a WARNING of its own when it took something over.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record but arq's INFO lines naming the reaper job."""
        return not (record.levelno <= logging.INFO and "reap_stale_runs" in record.getMessage())


def configure_logging(level: str) -> None:
    """Send JSON logs to stderr at the given level (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_chorus", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(QuietHousekeeping())
    handler._chorus = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    debug = root.getEffectiveLevel() <= logging.DEBUG
    for name in _PER_REQUEST_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.WARNING)
