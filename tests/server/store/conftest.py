"""Store contract fixtures: every test runs on SQLite and on MongoDB (real or mongomock)."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from server.store.base import Store
from server.store.models import ChatSession, LlmCall, Message, Run, StageState, User
from server.store.mongo import MongoStore
from server.store.sqlite import SqliteStore
from tests.support.mongomock_async import mock_database

MONGODB_URL = os.environ.get("MONGODB_URL") or None
MONGO_ID = "mongo-real" if MONGODB_URL else "mongo-mock"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


BACKENDS = "store backends: sqlite, " + (
    "mongo (real server at MONGODB_URL)" if MONGODB_URL else "mongomock (MONGODB_URL not set)"
)


def pytest_report_header(config: pytest.Config) -> str:
    """Say which store backends the contract suite runs on (when run from this folder)."""
    return BACKENDS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say it again at the end, where it also shows when the whole suite runs."""
    terminalreporter.write_line(BACKENDS)


def unique_db_name() -> str:
    """Return a database name private to one test (dropped after it)."""
    return f"chorus_test_{secrets.token_hex(6)}"


@pytest.fixture(params=["sqlite", "mongo"], ids=["sqlite", MONGO_ID])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An empty store with its indexes, on each backend."""
    if request.param == "sqlite":
        sqlite = await SqliteStore.open(tmp_path / "store.sqlite3")
        await sqlite.ensure_indexes()
        yield sqlite
        await sqlite.close()
    elif MONGODB_URL:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_URL, tz_aware=True)
        name = unique_db_name()
        try:
            real = MongoStore(client[name])
            await real.ensure_indexes()
            yield real
        finally:
            await client.drop_database(name)
            await client.close()
    else:
        mock = MongoStore(mock_database())
        await mock.ensure_indexes()
        yield mock
        await mock.close()


def at(minutes: float) -> datetime:
    """Return T0 plus some minutes."""
    return T0 + timedelta(minutes=minutes)


def make_user(email: str = "ann@example.test", **fields: Any) -> User:
    """Build a user."""
    return User(email=email, password_hash="hash", **fields)


def make_session(user_id: str, minutes: float = 0, **fields: Any) -> ChatSession:
    """Build a session started ``minutes`` after T0."""
    return ChatSession(user_id=user_id, started_at=at(minutes), updated_at=at(minutes), **fields)


def make_message(
    session: ChatSession, minutes: float, content: str = "hi", **fields: Any
) -> Message:
    """Build a user message in a session, created ``minutes`` after T0."""
    return Message(
        session_id=session.session_id, user_id=session.user_id, role="user",
        content=content, created_at=at(minutes), **fields,
    )  # fmt: skip


def make_run(session: ChatSession, minutes: float = 0, **fields: Any) -> Run:
    """Build a three-stage run in a session, created and updated ``minutes`` after T0."""
    stages = [StageState(name=name, agent=name) for name in ("plan", "draft", "review")]
    fields.setdefault("updated_at", at(minutes))
    return Run(
        session_id=session.session_id, user_id=session.user_id, pipeline="default",
        input_message_id="m", stages=stages, created_at=at(minutes), **fields,
    )  # fmt: skip


def make_call(run: Run, when: datetime, **fields: Any) -> LlmCall:
    """Build an LLM call record of a run."""
    fields = {
        "stage": "plan",
        "provider": "demo",
        "model": "m",
        "attempt": 1,
        "outcome": "ok",
    } | fields
    return LlmCall(run_id=run.run_id, user_id=run.user_id, created_at=when, **fields)


@pytest.fixture
def make() -> SimpleNamespace:
    """Document builders shared by the contract tests."""
    return SimpleNamespace(
        at=at, user=make_user, session=make_session, message=make_message, run=make_run,
        call=make_call,
    )  # fmt: skip
