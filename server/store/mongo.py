"""MongoStore: the production document store over PyMongo's native async API.

Every document's ``_id`` is its natural id (user_id, session_id, ...) and is stripped
on read. Every filter compares with ``$eq``, so a value is always data, never an
operator. The store talks to the database through the small protocols below, so the
tests can hand it an in-process substitute (tests/support/mongomock_async.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument
from pymongo.errors import DuplicateKeyError

from server.store.base import DuplicateError, Fields, SessionOrder
from server.store.codec import day_bounds, path_parts, summarize, to_bson
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

M = TypeVar("M", bound=BaseModel)
Doc = dict[str, Any]
_NO_ID = {"_id": 0}
_ID_FIELDS = {"users": "user_id", "sessions": "session_id", "messages": "message_id"}
_ID_FIELDS |= {"runs": "run_id", "llm_calls": "call_id", "api_keys": "key_id"}
_ID_FIELDS |= {"webhooks": "user_id", "webhook_deliveries": "delivery_id"}
# (collection, name, keys, unique); "_id" ends sort keys so pagination ties are stable.
_INDEXES: tuple[tuple[str, str, list[tuple[str, int]], bool], ...] = (
    ("users", "email_unique", [("email", ASCENDING)], True),
    ("sessions", "user_started", [("user_id", 1), ("started_at", -1), ("_id", -1)], False),
    (
        "sessions",
        "user_status_started",
        [("user_id", 1), ("status", 1), ("started_at", -1), ("_id", -1)],
        False,
    ),
    ("sessions", "claimed", [("active_run_id", 1), ("updated_at", 1)], False),
    (
        "sessions",
        "user_updated",
        [("user_id", 1), ("updated_at", -1), ("_id", -1)],
        False,
    ),
    ("messages", "user_created", [("user_id", 1), ("created_at", 1)], False),
    ("messages", "session_created", [("session_id", 1), ("created_at", 1), ("_id", 1)], False),
    ("messages", "queued", [("status", 1), ("created_at", 1), ("_id", 1)], False),
    ("runs", "session_created", [("session_id", 1), ("created_at", 1)], False),
    ("runs", "status_updated", [("status", 1), ("updated_at", 1)], False),
    ("llm_calls", "run", [("run_id", 1)], False),
    ("llm_calls", "user_created", [("user_id", 1), ("created_at", 1)], False),
    ("api_keys", "hash_unique", [("key_hash", 1)], True),
    ("api_keys", "user_created", [("user_id", 1), ("created_at", 1), ("_id", 1)], False),
    (
        "webhook_deliveries",
        "user_created",
        [("user_id", 1), ("created_at", -1), ("_id", -1)],
        False,
    ),
)
# What a usage aggregation sums over llm_calls.
_USAGE_SUMS: Doc = {
    "prompt_tokens": {"$sum": "$prompt_tokens"},
    "completion_tokens": {"$sum": "$completion_tokens"},
    "cost_usd": {"$sum": "$cost_usd"},
    "calls": {"$sum": 1},
}
# $dateToString works in UTC unless told otherwise.
_DAY = {"$dateToString": {"format": "%Y-%m-%d", "date": "$created_at"}}


class MongoCursor(Protocol):
    """The part of AsyncCursor / AsyncCommandCursor that MongoStore uses."""

    async def to_list(self, length: int | None = None) -> list[Doc]: ...


class DeleteOutcome(Protocol):
    """The part of DeleteResult that MongoStore uses."""

    @property
    def deleted_count(self) -> int: ...


class MongoCollection(Protocol):
    """The part of AsyncCollection that MongoStore uses."""

    async def insert_one(self, document: Doc) -> object: ...
    async def find_one(
        self, filter: Any | None = None, *args: Any, **kwargs: Any
    ) -> Doc | None: ...
    def find(self, *args: Any, **kwargs: Any) -> MongoCursor: ...
    async def find_one_and_update(
        self, filter: Mapping[str, Any], update: Mapping[str, Any], **kwargs: Any
    ) -> Doc | None: ...
    async def delete_one(self, filter: Mapping[str, Any]) -> DeleteOutcome: ...
    async def delete_many(self, filter: Mapping[str, Any]) -> DeleteOutcome: ...
    async def count_documents(self, filter: Mapping[str, Any], **kwargs: Any) -> int: ...
    async def aggregate(self, pipeline: list[Doc], **kwargs: Any) -> MongoCursor: ...
    async def create_index(self, keys: Any, **kwargs: Any) -> str: ...


class MongoDatabase(Protocol):
    """The part of AsyncDatabase that MongoStore uses."""

    def __getitem__(self, name: str) -> MongoCollection: ...
    async def command(self, command: str, **kwargs: Any) -> Any: ...


def _eq(**fields: Any) -> Doc:
    """Return a filter comparing each field with ``$eq`` (values are never operators)."""
    return {name: {"$eq": value} for name, value in fields.items()}


def _expect(base: Doc, expect: Fields | None) -> Doc:
    tests = [{".".join(path_parts(k)): {"$eq": to_bson(v)}} for k, v in (expect or {}).items()]
    return {"$and": [base, *tests]} if tests else base


def _dump(doc: BaseModel, id_field: str) -> Doc:
    data = doc.model_dump()
    return {"_id": data[id_field], **data}


class MongoStore:
    """The Store protocol over a MongoDB database."""

    backend = "mongo"

    def __init__(self, db: MongoDatabase, client: AsyncMongoClient[Doc] | None = None) -> None:
        self._db = db
        self._client = client

    @classmethod
    def connect(cls, url: str, db_name: str, timeout_ms: int | None = None) -> MongoStore:
        """Build a client for ``url`` (connecting lazily) and use database ``db_name``.

        ``timeout_ms`` bounds every operation (server selection and network waits
        included), so a silent server fails a request or a job instead of hanging it.
        """
        options: dict[str, Any] = {"tz_aware": True}
        if timeout_ms is not None:
            options["timeoutMS"] = timeout_ms
        client: AsyncMongoClient[Doc] = AsyncMongoClient(url, **options)
        return cls(client[db_name], client=client)

    async def _one(self, model: type[M], collection: str, query: Doc) -> M | None:
        doc = await self._db[collection].find_one(query, _NO_ID)
        return None if doc is None else model.model_validate(doc)

    async def _many(self, model: type[M], collection: str, query: Doc, **options: Any) -> list[M]:
        if options.get("limit", 1) <= 0:
            return []  # Mongo reads limit 0 as "no limit"
        cursor = self._db[collection].find(query, _NO_ID, **options)
        return [model.model_validate(doc) for doc in await cursor.to_list()]

    async def _insert(self, collection: str, doc: BaseModel) -> None:
        try:
            await self._db[collection].insert_one(_dump(doc, _ID_FIELDS[collection]))
        except DuplicateKeyError as exc:
            raise DuplicateError(str(exc)) from exc

    async def _update(
        self, model: type[M], collection: str, query: Doc, set_fields: Fields, expect: Fields | None
    ) -> M | None:
        query = _expect(query, expect)
        if not set_fields:
            return await self._one(model, collection, query)
        update = {".".join(path_parts(k)): to_bson(v) for k, v in set_fields.items()}
        # No projection here: mongomock re-reads the updated document through the _id of
        # the projected one. Models drop the _id key on load anyway.
        doc = await self._db[collection].find_one_and_update(
            query, {"$set": update}, return_document=ReturnDocument.AFTER
        )
        return None if doc is None else model.model_validate(doc)

    async def ensure_indexes(self) -> None:
        """Create every collection's indexes; safe to call on every start-up."""
        for collection, name, keys, unique in _INDEXES:
            options = {"unique": True} if unique else {}
            await self._db[collection].create_index(keys, name=name, **options)

    async def ping(self) -> None:
        """Raise if the server does not answer."""
        await self._db.command("ping")

    async def close(self) -> None:
        """Close the client if this store opened it."""
        if self._client is not None:
            await self._client.close()

    async def create_user(self, user: User) -> None:
        """Insert a user; raise DuplicateError if the email or id is taken."""
        await self._insert("users", user)

    async def get_user(self, user_id: str) -> User | None:
        """Return the user with this id."""
        return await self._one(User, "users", _eq(_id=user_id))

    async def get_user_by_email(self, email: str) -> User | None:
        """Return the user with this (already lower-cased) email."""
        return await self._one(User, "users", _eq(email=email))

    async def list_users(self, *, limit: int, skip: int = 0) -> tuple[list[User], int]:
        """Return one page of every user, oldest first (the admin's list), and the total."""
        total = await self._db["users"].count_documents({})
        order = [("created_at", ASCENDING), ("_id", ASCENDING)]
        return await self._many(
            User, "users", {}, sort=order, skip=max(skip, 0), limit=limit
        ), total

    async def update_user(
        self, user_id: str, set_fields: Fields, *, expect: Fields | None = None
    ) -> User | None:
        """Set fields on the user if it matches ``expect``; return it updated, else None."""
        return await self._update(User, "users", _eq(_id=user_id), set_fields, expect)

    async def create_session(self, session: ChatSession) -> None:
        """Insert a session."""
        await self._insert("sessions", session)

    async def get_session(self, user_id: str, session_id: str) -> ChatSession | None:
        """Return the user's session, or None if absent or another user's."""
        return await self._one(ChatSession, "sessions", _eq(_id=session_id, user_id=user_id))

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
        query = _eq(user_id=user_id) if status is None else _eq(user_id=user_id, status=status)
        if search:
            query = await self._search_query(query, user_id, search)
        total = await self._db["sessions"].count_documents(query)
        sort = [(f"{order}_at", DESCENDING), ("_id", DESCENDING)]
        page = await self._many(
            ChatSession, "sessions", query, sort=sort, skip=max(skip, 0), limit=limit
        )
        return page, total

    async def list_claimed_sessions(
        self, *, updated_before: datetime, limit: int = 100
    ) -> list[ChatSession]:
        """Return sessions holding an active-run claim, unchanged since ``updated_before``."""
        query = {"active_run_id": {"$ne": None}, "updated_at": {"$lt": to_bson(updated_before)}}
        return await self._many(ChatSession, "sessions", query, limit=limit)

    async def _search_query(self, query: Doc, user_id: str, search: str) -> Doc:
        # A literal, case-insensitive substring: the text is escaped, never a pattern.
        pattern = {"$regex": re.escape(search), "$options": "i"}
        cursor = self._db["messages"].find(
            {"user_id": {"$eq": user_id}, "content": pattern}, {"session_id": 1, "_id": 0}
        )
        in_messages = sorted({doc["session_id"] for doc in await cursor.to_list()})
        return {**query, "$or": [{"title": pattern}, {"_id": {"$in": in_messages}}]}

    async def update_session(
        self, user_id: str, session_id: str, set_fields: Fields, *, expect: Fields | None = None
    ) -> ChatSession | None:
        """Set fields if the session is the user's and matches ``expect``; return it updated."""
        query = _eq(_id=session_id, user_id=user_id)
        return await self._update(ChatSession, "sessions", query, set_fields, expect)

    async def delete_session(self, user_id: str, session_id: str) -> bool:
        """Delete the user's session with its messages and runs; False if absent."""
        deleted = await self._db["sessions"].delete_one(_eq(_id=session_id, user_id=user_id))
        if deleted.deleted_count == 0:
            return False
        await self._db["messages"].delete_many(_eq(session_id=session_id))
        await self._db["runs"].delete_many(_eq(session_id=session_id))
        return True

    async def insert_message(self, message: Message) -> bool:
        """Insert a message once: False (and no write) if its message_id exists."""
        try:
            await self._insert("messages", message)
        except DuplicateError:
            return False
        return True

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
        query = _eq(session_id=session_id, user_id=user_id)
        query["status"] = {"$nin": ["queued", "cancelled"]}  # none: written before statuses
        if before is not None and before_id is not None:
            when = to_bson(before)
            query["$or"] = [
                {"created_at": {"$lt": when}},
                {"created_at": {"$eq": when}, "_id": {"$lt": before_id}},
            ]
        elif before is not None:
            query["created_at"] = {"$lt": to_bson(before)}
        order = [("created_at", DESCENDING), ("_id", DESCENDING)]
        return (await self._many(Message, "messages", query, sort=order, limit=limit))[::-1]

    async def list_queued_messages(
        self,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        created_before: datetime | None = None,
        limit: int = 100,
    ) -> list[Message]:
        """Return queued messages (a session's, or any user's for the reaper), oldest first."""
        query = _eq(status="queued")
        if user_id is not None:
            query["user_id"] = {"$eq": user_id}
        if session_id is not None:
            query["session_id"] = {"$eq": session_id}
        if created_before is not None:
            query["created_at"] = {"$lt": to_bson(created_before)}
        order = [("created_at", ASCENDING), ("_id", ASCENDING)]
        return await self._many(Message, "messages", query, sort=order, limit=limit)

    async def update_message(
        self, user_id: str, message_id: str, set_fields: Fields, *, expect: Fields | None = None
    ) -> Message | None:
        """Set fields if the message is the user's and matches ``expect``; return it updated."""
        query = _eq(_id=message_id, user_id=user_id)
        return await self._update(Message, "messages", query, set_fields, expect)

    async def delete_message(self, user_id: str, session_id: str, message_id: str) -> bool:
        """Delete one message of the user's session; False if absent."""
        query = _eq(_id=message_id, session_id=session_id, user_id=user_id)
        return (await self._db["messages"].delete_one(query)).deleted_count == 1

    async def list_message_links(self, user_id: str, session_id: str) -> list[MessageLink]:
        """Return every sent message of the session without its content, oldest first."""
        fields = {name: 1 for name in MessageLink.model_fields}
        cursor = self._db["messages"].find(
            {**_eq(session_id=session_id, user_id=user_id),
             "status": {"$nin": ["queued", "cancelled"]}},
            {"_id": 0, **fields},
            sort=[("created_at", ASCENDING), ("_id", ASCENDING)],
        )  # fmt: skip
        return [MessageLink.model_validate(doc) for doc in await cursor.to_list()]

    async def get_messages(
        self, user_id: str, session_id: str, message_ids: list[str]
    ) -> list[Message]:
        """Return the session's messages with these ids, in the order of ``message_ids``."""
        if not message_ids:
            return []
        query = {**_eq(session_id=session_id, user_id=user_id), "_id": {"$in": message_ids}}
        found = {m.message_id: m for m in await self._many(Message, "messages", query)}
        return [found[i] for i in message_ids if i in found]

    async def insert_run(self, run: Run) -> None:
        """Insert a run."""
        await self._insert("runs", run)

    async def get_run(self, run_id: str, user_id: str | None = None) -> Run | None:
        """Return the run; with ``user_id``, only if it is that user's."""
        query = _eq(_id=run_id) if user_id is None else _eq(_id=run_id, user_id=user_id)
        return await self._one(Run, "runs", query)

    async def update_run(
        self, run_id: str, set_fields: Fields, *, expect: Fields | None = None
    ) -> Run | None:
        """Set fields if the run matches ``expect``; return it updated, else None."""
        return await self._update(Run, "runs", _eq(_id=run_id), set_fields, expect)

    async def list_runs(
        self,
        *,
        session_id: str | None = None,
        statuses: tuple[str, ...] | None = None,
        updated_before: datetime | None = None,
        limit: int = 100,
    ) -> list[Run]:
        """Return runs by session and/or status (oldest updated first), for reapers and views."""
        query: Doc = {} if session_id is None else _eq(session_id=session_id)
        if statuses is not None:
            query["status"] = {"$in": list(statuses)}
        if updated_before is not None:
            query["updated_at"] = {"$lt": to_bson(updated_before)}
        order = [("updated_at", ASCENDING), ("_id", ASCENDING)]
        return await self._many(Run, "runs", query, sort=order, limit=limit)

    async def insert_llm_call(self, call: LlmCall) -> None:
        """Record one LLM call attempt."""
        await self._insert("llm_calls", call)

    async def list_llm_calls(self, run_id: str) -> list[LlmCall]:
        """Return a run's LLM calls in the order they were made."""
        order = [("created_at", ASCENDING), ("_id", ASCENDING)]
        return await self._many(LlmCall, "llm_calls", _eq(run_id=run_id), sort=order)

    async def usage_summary(self, user_id: str) -> UsageSummary:
        """Sum the user's tokens and cost, in total and per UTC day (newest day first)."""
        group = {"_id": _DAY, **_USAGE_SUMS}
        pipeline = [{"$match": _eq(user_id=user_id)}, {"$group": group}, {"$sort": {"_id": -1}}]
        cursor = await self._db["llm_calls"].aggregate(pipeline)
        rows = await cursor.to_list()
        return summarize(DayUsage.model_validate({**row, "day": row["_id"]}) for row in rows)

    async def usage_of_day(self, day: str, user_id: str | None = None) -> DayUsage:
        """Sum the LLM calls of one UTC day (``YYYY-MM-DD``): the user's, or everyone's."""
        start, end = day_bounds(day)
        match: Doc = {"created_at": {"$gte": start, "$lt": end}}
        if user_id is not None:
            match = {**_eq(user_id=user_id), **match}
        group = {"_id": None, **_USAGE_SUMS}
        cursor = await self._db["llm_calls"].aggregate([{"$match": match}, {"$group": group}])
        rows = await cursor.to_list()
        if not rows:
            return DayUsage(day=day)
        row = rows[0]
        return DayUsage.model_validate(
            {**row, "day": day, "cost_usd": round(float(row["cost_usd"]), 10)}
        )

    async def insert_api_key(self, key: ApiKey) -> None:
        """Insert an API key; raise DuplicateError if its hash exists."""
        await self._insert("api_keys", key)

    async def list_api_keys(self, user_id: str) -> list[ApiKey]:
        """Return the user's API keys, revoked ones too, oldest first."""
        order = [("created_at", ASCENDING), ("_id", ASCENDING)]
        return await self._many(ApiKey, "api_keys", _eq(user_id=user_id), sort=order)

    async def get_api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        """Return the API key with this hash (any user's: the hash is the credential)."""
        return await self._one(ApiKey, "api_keys", _eq(key_hash=key_hash))

    async def update_api_key(self, user_id: str, key_id: str, set_fields: Fields) -> ApiKey | None:
        """Set fields on the user's API key; return it updated, or None if absent."""
        query = _eq(_id=key_id, user_id=user_id)
        return await self._update(ApiKey, "api_keys", query, set_fields, None)

    async def put_webhook(self, webhook: Webhook) -> None:
        """Insert or replace the user's webhook."""
        # A plain equality on _id (a str, never an operator): the upsert takes its _id from it.
        await self._db["webhooks"].find_one_and_update(
            {"_id": webhook.user_id}, {"$set": webhook.model_dump()}, upsert=True
        )

    async def get_webhook(self, user_id: str) -> Webhook | None:
        """Return the user's webhook, if any."""
        return await self._one(Webhook, "webhooks", _eq(_id=user_id))

    async def delete_webhook(self, user_id: str) -> bool:
        """Delete the user's webhook; False if there was none."""
        deleted = await self._db["webhooks"].delete_one(_eq(_id=user_id))
        return deleted.deleted_count == 1

    async def insert_webhook_delivery(self, delivery: WebhookDelivery) -> None:
        """Insert a delivery; raise DuplicateError if its id exists."""
        await self._insert("webhook_deliveries", delivery)

    async def get_webhook_delivery(self, delivery_id: str) -> WebhookDelivery | None:
        """Return the delivery (any user's: for the worker delivering it)."""
        return await self._one(WebhookDelivery, "webhook_deliveries", _eq(_id=delivery_id))

    async def update_webhook_delivery(
        self, delivery_id: str, set_fields: Fields, *, expect: Fields | None = None
    ) -> WebhookDelivery | None:
        """Set fields if the delivery matches ``expect``; return it updated, else None."""
        query = _eq(_id=delivery_id)
        return await self._update(WebhookDelivery, "webhook_deliveries", query, set_fields, expect)

    async def list_webhook_deliveries(self, user_id: str, *, limit: int) -> list[WebhookDelivery]:
        """Return the user's ``limit`` newest deliveries, newest first."""
        order = [("created_at", DESCENDING), ("_id", DESCENDING)]
        return await self._many(
            WebhookDelivery, "webhook_deliveries", _eq(user_id=user_id), sort=order, limit=limit
        )

    async def prune_webhook_deliveries(self, user_id: str, *, keep: int) -> int:
        """Delete the user's deliveries but the ``keep`` newest; return how many went."""
        newest: list[Doc] = []
        if keep > 0:  # Mongo reads limit 0 as "no limit"
            order = [("created_at", DESCENDING), ("_id", DESCENDING)]
            cursor = self._db["webhook_deliveries"].find(
                _eq(user_id=user_id), {"_id": 1}, sort=order, limit=keep
            )
            newest = await cursor.to_list()
        deleted = await self._db["webhook_deliveries"].delete_many(
            {"user_id": {"$eq": user_id}, "_id": {"$nin": [doc["_id"] for doc in newest]}}
        )
        return deleted.deleted_count
