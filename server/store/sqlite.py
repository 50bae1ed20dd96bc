"""SqliteStore: the embedded document store, JSON documents in SQLite.

Each collection is a table whose ``doc`` column (the document as JSON) is the single
source of truth; the id and the indexed fields are virtual columns generated from it.
Timestamps are fixed-width ISO text, so text order is time order.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
from pydantic import BaseModel

from server.store.base import DuplicateError, Fields, SessionOrder
from server.store.codec import day_bounds, json_path, summarize, to_json
from server.store.models import (
    ApiKey,
    ChatSession,
    DayUsage,
    LlmCall,
    Message,
    MessageLink,
    Run,
    UsageSummary,
    User,
    Webhook,
    WebhookDelivery,
)
from server.store.sqlite_sql import (
    CLAIMED_SESSIONS,
    DAY_USAGE_SQL,
    LINK_FIELDS,
    MESSAGE_STATUS,
    PRAGMAS,
    SEARCH_SQL,
    SENT,
    SESSION_ORDER,
    USAGE_SQL,
    condition,
    schema,
)

M = TypeVar("M", bound=BaseModel)


_PRAGMA_TRIES = 40  # about 40 s of waiting in all


async def _exec(conn: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> int:
    """Run one statement, close its cursor and return how many rows it changed."""
    async with conn.execute(sql, params) as cursor:
        return cursor.rowcount


async def _pragma(conn: aiosqlite.Connection, pragma: str) -> None:
    """Run a PRAGMA, retrying while another connection locks the file.

    Switching a new file to WAL takes an exclusive lock and SQLite does not wait on the busy
    handler for it: two connections opening one new file at once (the web app's store and
    the embedded worker's) made one fail with "database is locked".
    """
    for attempt in range(_PRAGMA_TRIES):
        try:
            await _exec(conn, f"PRAGMA {pragma}")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == _PRAGMA_TRIES - 1:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))


def _load(model: type[M], rows: Iterable[Any]) -> list[M]:
    return [model.model_validate_json(row[0]) for row in rows]


class SqliteStore:
    """The Store protocol over one aiosqlite connection (WAL, serialized writes)."""

    backend = "sqlite"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        # Writes are serialized so no statement lands inside another's transaction.
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> SqliteStore:
        """Open (creating if needed) the database file at ``path``."""
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            for pragma in PRAGMAS:
                await _pragma(conn, pragma)
        except BaseException:
            await conn.close()
            raise
        return cls(conn)

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        # One hop to the connection's thread: a write on this connection must never run
        # between a read's first step and its fetch (the read's open snapshot would make
        # the write fail at once with SQLITE_BUSY once another connection has committed).
        return list(await self._conn.execute_fetchall(sql, params))

    async def _write(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        # Writes are serialized, so their latency bounds the store's write throughput: one
        # hop to the connection's thread (execute and fetch together), not three.
        async with self._write_lock:
            return list(await self._conn.execute_fetchall(sql, params))

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._write_lock:
            await _exec(self._conn, "BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                await _exec(self._conn, "ROLLBACK")
                raise
            await _exec(self._conn, "COMMIT")

    async def _insert(self, table: str, doc: BaseModel) -> None:
        try:
            await self._write(f"INSERT INTO {table} (doc) VALUES (?)", (doc.model_dump_json(),))
        except sqlite3.IntegrityError as exc:
            if exc.sqlite_errorname == "SQLITE_CONSTRAINT_UNIQUE":
                raise DuplicateError(str(exc)) from exc
            raise

    async def _update(
        self, table: str, where: str, params: list[Any], set_fields: Fields, expect: Fields | None
    ) -> str | None:
        """Set fields on the document matching ``where`` and ``expect``; return its JSON."""
        params = list(params)
        for path, value in (expect or {}).items():
            test, test_params = condition(path, value)
            where += f" AND {test}"
            params.extend(test_params)
        if not set_fields:
            rows = await self._rows(f"SELECT doc FROM {table} WHERE {where}", params)
        else:
            pairs = ", ".join("?, json(?)" for _ in set_fields)
            values = [
                item
                for path, value in set_fields.items()
                for item in (json_path(path), json.dumps(to_json(value)))
            ]
            sql = f"UPDATE {table} SET doc = json_set(doc, {pairs}) WHERE {where} RETURNING doc"
            rows = await self._write(sql, values + params)
        return str(rows[0][0]) if rows else None

    async def ensure_indexes(self) -> None:
        """Create every table and index; safe to call on every start-up."""
        async with self._transaction() as conn:
            for statement in schema():
                await _exec(conn, statement)

    async def ping(self) -> None:
        """Raise if the database cannot answer a query."""
        await self._rows("SELECT 1")

    async def close(self) -> None:
        """Close the connection."""
        await self._conn.close()

    async def create_user(self, user: User) -> None:
        """Insert a user; raise DuplicateError if the email or id is taken."""
        await self._insert("users", user)

    async def get_user(self, user_id: str) -> User | None:
        """Return the user with this id."""
        rows = await self._rows("SELECT doc FROM users WHERE id = ?", (user_id,))
        return next(iter(_load(User, rows)), None)

    async def get_user_by_email(self, email: str) -> User | None:
        """Return the user with this (already lower-cased) email."""
        rows = await self._rows("SELECT doc FROM users WHERE email = ?", (email,))
        return next(iter(_load(User, rows)), None)

    async def list_users(self, *, limit: int, skip: int = 0) -> tuple[list[User], int]:
        """Return one page of every user, oldest first (the admin's list), and the total."""
        total = int((await self._rows("SELECT count(*) FROM users"))[0][0])
        if limit <= 0:
            return [], total
        sql = (
            "SELECT doc FROM users ORDER BY json_extract(doc, '$.created_at'), id LIMIT ? OFFSET ?"
        )
        return _load(User, await self._rows(sql, (limit, max(skip, 0)))), total

    async def update_user(
        self, user_id: str, set_fields: Fields, *, expect: Fields | None = None
    ) -> User | None:
        """Set fields on the user if it matches ``expect``; return it updated, else None."""
        doc = await self._update("users", "id = ?", [user_id], set_fields, expect)
        return None if doc is None else User.model_validate_json(doc)

    async def create_session(self, session: ChatSession) -> None:
        """Insert a session."""
        await self._insert("sessions", session)

    async def get_session(self, user_id: str, session_id: str) -> ChatSession | None:
        """Return the user's session, or None if absent or another user's."""
        sql = "SELECT doc FROM sessions WHERE id = ? AND user_id = ?"
        return next(iter(_load(ChatSession, await self._rows(sql, (session_id, user_id)))), None)

    async def list_sessions(
        self,
        user_id: str,
        *,
        status: str | None,
        limit: int,
        skip: int,
        search: str | None = None,
        order: SessionOrder = "started",
    ) -> tuple[list[ChatSession], int]:
        """Return one page of the user's sessions, newest first, and the total."""
        where, params = "user_id = ?", [user_id]
        if status is not None:
            where, params = where + " AND status = ?", [*params, status]
        if search:
            where, params = where + f" AND {SEARCH_SQL}", [*params, search, user_id, search]
        total = (await self._rows(f"SELECT count(*) FROM sessions WHERE {where}", params))[0][0]
        if limit <= 0:
            return [], int(total)
        sql = (
            f"SELECT doc FROM sessions WHERE {where} "
            f"ORDER BY {SESSION_ORDER[order]} LIMIT ? OFFSET ?"
        )
        rows = await self._rows(sql, [*params, limit, max(skip, 0)])
        return _load(ChatSession, rows), int(total)

    async def list_claimed_sessions(
        self, *, updated_before: datetime, limit: int = 100
    ) -> list[ChatSession]:
        """Return sessions holding an active-run claim, unchanged since ``updated_before``."""
        sql = (
            f"SELECT doc FROM sessions WHERE {CLAIMED_SESSIONS} IS NOT NULL "
            "AND json_extract(doc, '$.updated_at') < ? LIMIT ?"
        )
        return _load(ChatSession, await self._rows(sql, [to_json(updated_before), limit]))

    async def update_session(
        self, user_id: str, session_id: str, set_fields: Fields, *, expect: Fields | None = None
    ) -> ChatSession | None:
        """Set fields if the session is the user's and matches ``expect``; return it updated."""
        doc = await self._update(
            "sessions", "id = ? AND user_id = ?", [session_id, user_id], set_fields, expect
        )
        return None if doc is None else ChatSession.model_validate_json(doc)

    async def delete_session(self, user_id: str, session_id: str) -> bool:
        """Delete the user's session with its messages and runs; False if absent."""
        async with self._transaction() as conn:
            sql = "DELETE FROM sessions WHERE id = ? AND user_id = ?"
            if await _exec(conn, sql, (session_id, user_id)) == 0:
                return False
            await _exec(conn, "DELETE FROM messages WHERE session_id = ?", (session_id,))
            await _exec(conn, "DELETE FROM runs WHERE session_id = ?", (session_id,))
        return True

    async def insert_message(self, message: Message) -> bool:
        """Insert a message once: False (and no write) if its message_id exists."""
        sql = "INSERT INTO messages (doc) VALUES (?) ON CONFLICT DO NOTHING RETURNING id"
        return len(await self._write(sql, (message.model_dump_json(),))) == 1

    async def list_messages(
        self,
        user_id: str,
        session_id: str,
        *,
        limit: int,
        before: datetime | None = None,
        before_id: str | None = None,
    ) -> list[Message]:
        """Return the ``limit`` newest messages before the cursor, oldest first (see Store)."""
        if limit <= 0:
            return []
        where, params = f"session_id = ? AND user_id = ? AND {SENT}", [session_id, user_id]
        if before is not None and before_id is not None:
            when = to_json(before)
            where += " AND (created_at < ? OR (created_at = ? AND id < ?))"
            params += [when, when, before_id]
        elif before is not None:
            where, params = where + " AND created_at < ?", [*params, to_json(before)]
        sql = f"SELECT doc FROM messages WHERE {where} ORDER BY created_at DESC, id DESC LIMIT ?"
        return _load(Message, await self._rows(sql, [*params, limit]))[::-1]

    async def list_queued_messages(
        self,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        created_before: datetime | None = None,
        limit: int = 100,
    ) -> list[Message]:
        """Return queued messages (a session's, or any user's for the reaper), oldest first."""
        if limit <= 0:
            return []
        where, params = f"{MESSAGE_STATUS} = 'queued'", list[Any]()
        for test, value in (("user_id = ?", user_id), ("session_id = ?", session_id),
                            ("created_at < ?", created_before)):  # fmt: skip
            if value is not None:
                where, params = f"{where} AND {test}", [*params, to_json(value)]
        sql = f"SELECT doc FROM messages WHERE {where} ORDER BY created_at, id LIMIT ?"
        return _load(Message, await self._rows(sql, [*params, limit]))

    async def update_message(
        self, user_id: str, message_id: str, set_fields: Fields, *, expect: Fields | None = None
    ) -> Message | None:
        """Set fields if the message is the user's and matches ``expect``; return it updated."""
        doc = await self._update(
            "messages", "id = ? AND user_id = ?", [message_id, user_id], set_fields, expect
        )
        return None if doc is None else Message.model_validate_json(doc)

    async def delete_message(self, user_id: str, session_id: str, message_id: str) -> bool:
        """Delete one message of the user's session; False if absent."""
        sql = "DELETE FROM messages WHERE id = ? AND session_id = ? AND user_id = ? RETURNING id"
        return len(await self._write(sql, (message_id, session_id, user_id))) == 1

    async def list_message_links(self, user_id: str, session_id: str) -> list[MessageLink]:
        """Return every sent message of the session without its content, oldest first."""
        sql = (
            f"SELECT {LINK_FIELDS} FROM messages WHERE session_id = ? AND user_id = ? "
            f"AND {SENT} ORDER BY created_at, id"
        )
        return _load(MessageLink, await self._rows(sql, (session_id, user_id)))

    async def get_messages(
        self, user_id: str, session_id: str, message_ids: list[str]
    ) -> list[Message]:
        """Return the session's messages with these ids, in the order of ``message_ids``."""
        if not message_ids:
            return []
        marks = ", ".join("?" for _ in message_ids)
        sql = f"SELECT doc FROM messages WHERE session_id = ? AND user_id = ? AND id IN ({marks})"
        found = {
            m.message_id: m
            for m in _load(Message, await self._rows(sql, [session_id, user_id, *message_ids]))
        }
        return [found[i] for i in message_ids if i in found]

    async def insert_run(self, run: Run) -> None:
        """Insert a run."""
        await self._insert("runs", run)

    async def get_run(self, run_id: str, user_id: str | None = None) -> Run | None:
        """Return the run; with ``user_id``, only if it is that user's."""
        sql, params = "SELECT doc FROM runs WHERE id = ?", [run_id]
        if user_id is not None:
            sql, params = sql + " AND user_id = ?", [*params, user_id]
        return next(iter(_load(Run, await self._rows(sql, params))), None)

    async def update_run(
        self, run_id: str, set_fields: Fields, *, expect: Fields | None = None
    ) -> Run | None:
        """Set fields if the run matches ``expect``; return it updated, else None."""
        doc = await self._update("runs", "id = ?", [run_id], set_fields, expect)
        return None if doc is None else Run.model_validate_json(doc)

    async def list_runs(
        self,
        *,
        session_id: str | None = None,
        statuses: tuple[str, ...] | None = None,
        updated_before: datetime | None = None,
        limit: int = 100,
    ) -> list[Run]:
        """Return runs by session and/or status (oldest updated first), for reapers and views."""
        tests: list[str] = []
        params: list[Any] = []
        if session_id is not None:
            tests.append("session_id = ?")
            params.append(session_id)
        if statuses is not None:
            tests.append(f"status IN ({', '.join('?' for _ in statuses)})")
            params.extend(statuses)
        if updated_before is not None:
            tests.append("updated_at < ?")
            params.append(to_json(updated_before))
        if limit <= 0:
            return []
        where = " AND ".join(tests) or "1"
        sql = f"SELECT doc FROM runs WHERE {where} ORDER BY updated_at, id LIMIT ?"
        return _load(Run, await self._rows(sql, [*params, limit]))

    async def insert_llm_call(self, call: LlmCall) -> None:
        """Record one LLM call attempt."""
        await self._insert("llm_calls", call)

    async def list_llm_calls(self, run_id: str) -> list[LlmCall]:
        """Return a run's LLM calls in the order they were made."""
        sql = "SELECT doc FROM llm_calls WHERE run_id = ? ORDER BY created_at, id"
        return _load(LlmCall, await self._rows(sql, (run_id,)))

    async def usage_summary(self, user_id: str) -> UsageSummary:
        """Sum the user's tokens and cost, in total and per UTC day (newest day first)."""
        rows = await self._rows(USAGE_SQL, (user_id,))
        return summarize(
            DayUsage(day=day, prompt_tokens=p, completion_tokens=c, cost_usd=cost, calls=n)
            for day, p, c, cost, n in rows
        )

    async def usage_of_day(self, day: str, user_id: str | None = None) -> DayUsage:
        """Sum the LLM calls of one UTC day (``YYYY-MM-DD``): the user's, or everyone's."""
        start, end = day_bounds(day)
        where, params = "created_at >= ? AND created_at < ?", [to_json(start), to_json(end)]
        if user_id is not None:
            where, params = f"user_id = ? AND {where}", [user_id, *params]
        rows = await self._rows(f"{DAY_USAGE_SQL} WHERE {where}", params)
        prompt, completion, cost, calls = rows[0]
        return DayUsage(
            day=day, prompt_tokens=prompt, completion_tokens=completion,
            cost_usd=round(cost, 10), calls=calls,
        )  # fmt: skip

    async def insert_api_key(self, key: ApiKey) -> None:
        """Insert an API key; raise DuplicateError if its hash exists."""
        await self._insert("api_keys", key)

    async def list_api_keys(self, user_id: str) -> list[ApiKey]:
        """Return the user's API keys, revoked ones too, oldest first."""
        sql = "SELECT doc FROM api_keys WHERE user_id = ? ORDER BY created_at, id"
        return _load(ApiKey, await self._rows(sql, (user_id,)))

    async def get_api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        """Return the API key with this hash (any user's: the hash is the credential)."""
        rows = await self._rows("SELECT doc FROM api_keys WHERE key_hash = ?", (key_hash,))
        return next(iter(_load(ApiKey, rows)), None)

    async def update_api_key(self, user_id: str, key_id: str, set_fields: Fields) -> ApiKey | None:
        """Set fields on the user's API key; return it updated, or None if absent."""
        doc = await self._update(
            "api_keys", "id = ? AND user_id = ?", [key_id, user_id], set_fields, None
        )
        return None if doc is None else ApiKey.model_validate_json(doc)

    async def put_webhook(self, webhook: Webhook) -> None:
        """Insert or replace the user's webhook."""
        async with self._transaction() as conn:
            await _exec(conn, "DELETE FROM webhooks WHERE id = ?", (webhook.user_id,))
            await _exec(conn, "INSERT INTO webhooks (doc) VALUES (?)", (webhook.model_dump_json(),))

    async def get_webhook(self, user_id: str) -> Webhook | None:
        """Return the user's webhook, if any."""
        rows = await self._rows("SELECT doc FROM webhooks WHERE id = ?", (user_id,))
        return next(iter(_load(Webhook, rows)), None)

    async def delete_webhook(self, user_id: str) -> bool:
        """Delete the user's webhook; False if there was none."""
        rows = await self._write("DELETE FROM webhooks WHERE id = ? RETURNING id", (user_id,))
        return len(rows) == 1

    async def insert_webhook_delivery(self, delivery: WebhookDelivery) -> None:
        """Insert a delivery; raise DuplicateError if its id exists."""
        await self._insert("webhook_deliveries", delivery)

    async def get_webhook_delivery(self, delivery_id: str) -> WebhookDelivery | None:
        """Return the delivery (any user's: for the worker delivering it)."""
        rows = await self._rows("SELECT doc FROM webhook_deliveries WHERE id = ?", (delivery_id,))
        return next(iter(_load(WebhookDelivery, rows)), None)

    async def update_webhook_delivery(
        self, delivery_id: str, set_fields: Fields, *, expect: Fields | None = None
    ) -> WebhookDelivery | None:
        """Set fields if the delivery matches ``expect``; return it updated, else None."""
        doc = await self._update("webhook_deliveries", "id = ?", [delivery_id], set_fields, expect)
        return None if doc is None else WebhookDelivery.model_validate_json(doc)

    async def list_webhook_deliveries(self, user_id: str, *, limit: int) -> list[WebhookDelivery]:
        """Return the user's ``limit`` newest deliveries, newest first."""
        if limit <= 0:
            return []
        sql = (
            "SELECT doc FROM webhook_deliveries WHERE user_id = ? "
            "ORDER BY created_at DESC, id DESC LIMIT ?"
        )
        return _load(WebhookDelivery, await self._rows(sql, (user_id, limit)))

    async def prune_webhook_deliveries(self, user_id: str, *, keep: int) -> int:
        """Delete the user's deliveries but the ``keep`` newest; return how many went."""
        sql = (
            "DELETE FROM webhook_deliveries WHERE user_id = ? AND id NOT IN ("
            "SELECT id FROM webhook_deliveries WHERE user_id = ? "
            "ORDER BY created_at DESC, id DESC LIMIT ?) RETURNING id"
        )
        return len(await self._write(sql, (user_id, user_id, max(keep, 0))))
