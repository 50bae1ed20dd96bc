"""SQL text for SqliteStore: the schema, its indexes and JSON field equality tests."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from server.store.codec import json_path, to_json

# table -> (id field, indexed fields); each becomes a virtual generated column.
_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "users": ("user_id", ("email",)),
    "sessions": ("session_id", ("user_id", "status", "started_at")),
    "messages": ("message_id", ("session_id", "user_id", "created_at")),
    "runs": ("run_id", ("session_id", "user_id", "status", "created_at", "updated_at")),
    "llm_calls": ("call_id", ("run_id", "user_id", "created_at")),
    "api_keys": ("key_id", ("user_id", "key_hash", "created_at")),
    "webhooks": ("user_id", ()),
    "webhook_deliveries": ("delivery_id", ("user_id", "created_at")),
}
_UPDATED = "json_extract(doc, '$.updated_at')"
# Secondary indexes; the id column of every table gets a unique index too.
_INDEXES: tuple[tuple[str, str, str, bool], ...] = (
    ("users_email", "users", "email", True),
    ("sessions_user_started", "sessions", "user_id, started_at DESC, id DESC", False),
    ("sessions_user_status", "sessions", "user_id, status, started_at DESC, id DESC", False),
    # An expression, not a generated column: tables made before it existed have no such column.
    ("sessions_user_updated", "sessions", f"user_id, {_UPDATED} DESC, id DESC", False),
    ("messages_user_created", "messages", "user_id, created_at", False),
    ("messages_session_created", "messages", "session_id, created_at, id", False),
    ("runs_session_created", "runs", "session_id, created_at", False),
    ("runs_status_updated", "runs", "status, updated_at", False),
    ("llm_calls_run", "llm_calls", "run_id", False),
    ("llm_calls_user_created", "llm_calls", "user_id, created_at", False),
    ("api_keys_hash", "api_keys", "key_hash", True),
    ("api_keys_user_created", "api_keys", "user_id, created_at, id", False),
    ("webhook_deliveries_user", "webhook_deliveries", "user_id, created_at DESC, id DESC", False),
)
# Sessions holding an active-run claim (few at any time): what the session repair scans.
CLAIMED_SESSIONS = "json_extract(doc, '$.active_run_id')"
# A message's status (documents written before it existed have none: they were sent).
MESSAGE_STATUS = "coalesce(json_extract(doc, '$.status'), 'sent')"
SENT = f"{MESSAGE_STATUS} = 'sent'"
_PARTIAL_INDEXES = (
    f"CREATE INDEX IF NOT EXISTS sessions_claimed ON sessions ({CLAIMED_SESSIONS}) "
    f"WHERE {CLAIMED_SESSIONS} IS NOT NULL",
    # Queued messages (few at any time): what the queue and the reaper read.
    f"CREATE INDEX IF NOT EXISTS messages_queued ON messages (created_at, id) "
    f"WHERE {MESSAGE_STATUS} = 'queued'",
)
SESSION_ORDER = {
    "started": "started_at DESC, id DESC",
    "updated": f"{_UPDATED} DESC, id DESC",
}
# A session matches a search when its title or one of its messages contains the text
# (case-insensitive for ASCII letters, as SQLite's lower() is). Parameters: text, user, text.
SEARCH_SQL = """(
  instr(lower(coalesce(json_extract(doc, '$.title'), '')), lower(?)) > 0
  OR id IN (SELECT session_id FROM messages WHERE user_id = ?
            AND instr(lower(json_extract(doc, '$.content')), lower(?)) > 0)
)"""
# A message's links to its branch (a MessageLink), as one JSON object per row.
LINK_FIELDS = (
    "json_object("
    + ", ".join(
        f"'{name}', json_extract(doc, '$.{name}')"
        for name in ("message_id", "role", "run_id", "parent_id", "edit_of", "created_at")
    )
    + ")"
)
PRAGMAS = ("busy_timeout=5000", "journal_mode=WAL", "synchronous=NORMAL")
USAGE_SQL = """
SELECT substr(created_at, 1, 10) AS day,
       coalesce(sum(json_extract(doc, '$.prompt_tokens')), 0),
       coalesce(sum(json_extract(doc, '$.completion_tokens')), 0),
       total(json_extract(doc, '$.cost_usd')),
       count(*)
FROM llm_calls WHERE user_id = ? GROUP BY day
"""

DAY_USAGE_SQL = """
SELECT coalesce(sum(json_extract(doc, '$.prompt_tokens')), 0),
       coalesce(sum(json_extract(doc, '$.completion_tokens')), 0),
       total(json_extract(doc, '$.cost_usd')),
       count(*)
FROM llm_calls"""


def _table_sql(table: str, id_field: str, fields: Iterable[str]) -> str:
    columns = [f"id TEXT GENERATED ALWAYS AS (json_extract(doc, '$.{id_field}')) VIRTUAL NOT NULL"]
    columns += [
        f"{name} TEXT GENERATED ALWAYS AS (json_extract(doc, '$.{name}')) VIRTUAL"
        for name in fields
    ]
    return (
        f"CREATE TABLE IF NOT EXISTS {table} "
        f"(doc TEXT NOT NULL CHECK (json_valid(doc)), {', '.join(columns)})"
    )


def schema() -> list[str]:
    """Return the statements that create every table and index, idempotently."""
    statements = [_table_sql(t, id_field, fields) for t, (id_field, fields) in _TABLES.items()]
    statements += [f"CREATE UNIQUE INDEX IF NOT EXISTS {t}_id ON {t} (id)" for t in _TABLES]
    statements += [
        f"CREATE {'UNIQUE ' if unique else ''}INDEX IF NOT EXISTS {name} ON {table} ({cols})"
        for name, table, cols, unique in _INDEXES
    ]
    statements += _PARTIAL_INDEXES
    return statements


def condition(path: str, value: Any) -> tuple[str, list[Any]]:
    """Return an SQL test that the field at ``path`` equals ``value`` (None: null or missing)."""
    jpath = json_path(path)
    plain = to_json(value)
    if plain is None:
        return "json_extract(doc, ?) IS NULL", [jpath]
    if isinstance(plain, bool):
        return "json_type(doc, ?) = ?", [jpath, "true" if plain else "false"]
    if isinstance(plain, int | float):
        sql = "json_type(doc, ?) IN ('integer', 'real') AND json_extract(doc, ?) = ?"
        return sql, [jpath, jpath, plain]
    if isinstance(plain, str):
        return "json_type(doc, ?) = 'text' AND json_extract(doc, ?) = ?", [jpath, jpath, plain]
    sql = "json_type(doc, ?) IN ('object', 'array') AND json_extract(doc, ?) = json(?)"
    return sql, [jpath, jpath, json.dumps(plain, separators=(",", ":"))]
