"""SQLite only: opening a new database file while another connection locks it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from server.store import sqlite as sqlite_store
from server.store.sqlite import SqliteStore


async def test_opening_waits_while_another_connection_holds_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The switch to WAL needs the file to itself and SQLite's busy wait does not cover
    it: the store retries instead of failing start-up (the web app's store and the
    embedded worker's open one new file at once)."""
    path = tmp_path / "chorus.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    refused = asyncio.Event()
    pragma = sqlite_store._exec

    async def noting(conn: object, sql: str, *args: object) -> int:
        try:
            return await pragma(conn, sql, *args)  # type: ignore[arg-type]
        except sqlite3.OperationalError:
            refused.set()
            raise

    monkeypatch.setattr(sqlite_store, "_exec", noting)
    opening = asyncio.create_task(SqliteStore.open(path))
    await asyncio.wait_for(refused.wait(), 10)  # it met the lock at least once
    holder.execute("COMMIT")
    holder.close()
    store = await asyncio.wait_for(opening, 10)
    try:
        await store.ensure_indexes()
        await store.ping()
    finally:
        await store.close()
