"""The Store protocol: every durable read and write Chorus makes (docs/architecture.md, "Storage").

Two implementations pass one contract suite (tests/server/store/): MongoStore and
SqliteStore. Every method that reads a user's data takes that user's id and filters
by it; the few that do not (``get_run_internal``, ``update_run``...) are for workers
and the server's own bookkeeping, never called with ids taken from a request alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Protocol

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

# Field values allowed in ``set_fields``/``expect``: JSON-like values, datetimes and
# pydantic models (stored as their dump). Keys of ``set_fields`` may be dotted paths
# into nested documents and arrays, e.g. ``"stages.1.status"``.
Fields = dict[str, Any]
# How a list of sessions is ordered: by start (creation) or by last activity (updated_at).
SessionOrder = Literal["started", "updated"]


class DuplicateError(Exception):
    """A unique key (user email, document id) already exists."""


class Store(Protocol):
    """Document storage for users, sessions, messages, runs and LLM calls."""

    backend: str

    async def ensure_indexes(self) -> None:
        """Create every collection and index; safe to call on every start-up."""

    async def ping(self) -> None:
        """Raise if the store is not reachable."""

    async def close(self) -> None:
        """Release connections."""

    # users
    async def create_user(self, user: User) -> None:
        """Insert a user; raise DuplicateError if the email is taken."""

    async def get_user(self, user_id: str) -> User | None:
        """Return the user with this id."""

    async def get_user_by_email(self, email: str) -> User | None:
        """Return the user with this (already lower-cased) email."""

    async def list_users(self, *, limit: int, skip: int = 0) -> tuple[list[User], int]:
        """Return one page of every user, oldest first (the admin's list), and the total."""

    async def update_user(
        self, user_id: str, set_fields: Fields, *, expect: Fields | None = None
    ) -> User | None:
        """Set fields on the user if it matches ``expect``; return it updated, else None."""

    # sessions
    async def create_session(self, session: ChatSession) -> None:
        """Insert a session."""

    async def get_session(self, user_id: str, session_id: str) -> ChatSession | None:
        """Return the user's session, or None if absent or another user's."""

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
        """Return one page of the user's sessions, newest first, and the total.

        ``search`` keeps the sessions whose title or one of whose messages contains it
        (case-insensitive substring); ``order`` sorts by started_at or updated_at.
        """

    async def list_claimed_sessions(
        self, *, updated_before: datetime, limit: int = 100
    ) -> list[ChatSession]:
        """Return sessions (any user's) holding an active-run claim, unchanged since then."""

    async def update_session(
        self, user_id: str, session_id: str, set_fields: Fields, *, expect: Fields | None = None
    ) -> ChatSession | None:
        """Set fields if the session is the user's and matches ``expect``; return it updated."""

    async def delete_session(self, user_id: str, session_id: str) -> bool:
        """Delete the user's session with its messages and runs; False if absent."""

    # messages
    async def insert_message(self, message: Message) -> bool:
        """Insert a message once: False (and no write) if its message_id exists."""

    async def list_messages(
        self,
        user_id: str,
        session_id: str,
        *,
        limit: int,
        before: datetime | None = None,
        before_id: str | None = None,
    ) -> list[Message]:
        """Return the ``limit`` newest sent messages before a cursor, oldest first.

        Queued and cancelled messages (``Message.status``) are not part of the history.

        The cursor is ``(before, before_id)``: messages created before ``before``, and with
        ``before_id`` also those created at ``before`` whose id sorts below it, so messages
        sharing a timestamp are never skipped between pages.
        """

    async def list_queued_messages(
        self,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        created_before: datetime | None = None,
        limit: int = 100,
    ) -> list[Message]:
        """Return queued messages (a session's, or any user's for the reaper), oldest first."""

    async def update_message(
        self, user_id: str, message_id: str, set_fields: Fields, *, expect: Fields | None = None
    ) -> Message | None:
        """Set fields if the message is the user's and matches ``expect``; return it updated.

        With no fields, nothing is written: the message is returned as it is (a read).
        """

    async def delete_message(self, user_id: str, session_id: str, message_id: str) -> bool:
        """Delete one message of the user's session (undoing a half-made start); False if absent."""

    async def list_message_links(self, user_id: str, session_id: str) -> list[MessageLink]:
        """Return every sent message (not queued or cancelled) of the session without its
        content, oldest first.

        The branch tree is built from these (server/sessions/branches.py).
        """

    async def get_messages(
        self, user_id: str, session_id: str, message_ids: list[str]
    ) -> list[Message]:
        """Return the session's messages with these ids, in the order of ``message_ids``."""

    # runs
    async def insert_run(self, run: Run) -> None:
        """Insert a run."""

    async def get_run(self, run_id: str, user_id: str | None = None) -> Run | None:
        """Return the run; with ``user_id``, only if it is that user's."""

    async def update_run(
        self, run_id: str, set_fields: Fields, *, expect: Fields | None = None
    ) -> Run | None:
        """Set fields if the run matches ``expect``; return it updated, else None."""

    async def list_runs(
        self,
        *,
        session_id: str | None = None,
        statuses: tuple[str, ...] | None = None,
        updated_before: datetime | None = None,
        limit: int = 100,
    ) -> list[Run]:
        """Return runs by session and/or status (oldest updated first), for reapers and views."""

    # llm calls
    async def insert_llm_call(self, call: LlmCall) -> None:
        """Record one LLM call attempt."""

    async def list_llm_calls(self, run_id: str) -> list[LlmCall]:
        """Return a run's LLM calls in the order they were made."""

    async def usage_summary(self, user_id: str) -> UsageSummary:
        """Sum the user's tokens and cost, in total and per UTC day (newest day first)."""

    async def usage_of_day(self, day: str, user_id: str | None = None) -> DayUsage:
        """Sum the LLM calls of one UTC day (``YYYY-MM-DD``): the user's, or everyone's."""

    # api keys
    async def insert_api_key(self, key: ApiKey) -> None:
        """Insert an API key; raise DuplicateError if its hash exists."""

    async def list_api_keys(self, user_id: str) -> list[ApiKey]:
        """Return the user's API keys, revoked ones too, oldest first."""

    async def get_api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        """Return the API key with this hash (any user's: the hash is the credential)."""

    async def update_api_key(self, user_id: str, key_id: str, set_fields: Fields) -> ApiKey | None:
        """Set fields on the user's API key; return it updated, or None if absent."""

    # webhooks (one per user) and their deliveries
    async def put_webhook(self, webhook: Webhook) -> None:
        """Insert or replace the user's webhook."""

    async def get_webhook(self, user_id: str) -> Webhook | None:
        """Return the user's webhook, if any."""

    async def delete_webhook(self, user_id: str) -> bool:
        """Delete the user's webhook; False if there was none."""

    async def insert_webhook_delivery(self, delivery: WebhookDelivery) -> None:
        """Insert a delivery; raise DuplicateError if its id exists."""

    async def get_webhook_delivery(self, delivery_id: str) -> WebhookDelivery | None:
        """Return the delivery (any user's: for the worker delivering it)."""

    async def update_webhook_delivery(
        self, delivery_id: str, set_fields: Fields, *, expect: Fields | None = None
    ) -> WebhookDelivery | None:
        """Set fields if the delivery matches ``expect``; return it updated, else None."""

    async def list_webhook_deliveries(self, user_id: str, *, limit: int) -> list[WebhookDelivery]:
        """Return the user's ``limit`` newest deliveries, newest first."""

    async def prune_webhook_deliveries(self, user_id: str, *, keep: int) -> int:
        """Delete the user's deliveries but the ``keep`` newest; return how many went."""
