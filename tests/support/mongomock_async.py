"""An async face over mongomock, for tests: MongoStore runs on it without a server.

It exposes only what MongoStore uses (see the protocols in server/store/mongo.py) and
adds no behaviour beyond awaiting: mongomock supplies MongoDB's query semantics and
raises PyMongo's errors (DuplicateKeyError, ...). mongomock is a dev dependency.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Any

import mongomock
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.results import DeleteResult

from server.store.mongo import MongoDatabase

Doc = dict[str, Any]


class AsyncMockCursor:
    """AsyncCursor.to_list over a mongomock cursor."""

    def __init__(self, cursor: Iterable[Doc]) -> None:
        self._cursor = cursor

    async def to_list(self, length: int | None = None) -> list[Doc]:
        """Return the remaining documents (at most ``length``)."""
        return list(islice(self._cursor, length))


class AsyncMockCollection:
    """The AsyncCollection methods MongoStore uses, over a mongomock collection."""

    def __init__(self, collection: Collection[Doc]) -> None:
        self._collection = collection

    async def insert_one(self, document: Doc) -> object:
        """Insert one document."""
        return self._collection.insert_one(document)

    async def find_one(self, filter: Any | None = None, *args: Any, **kwargs: Any) -> Doc | None:
        """Return the first matching document."""
        return self._collection.find_one(filter, *args, **kwargs)

    def find(self, *args: Any, **kwargs: Any) -> AsyncMockCursor:
        """Return a cursor over the matching documents."""
        return AsyncMockCursor(self._collection.find(*args, **kwargs))

    async def find_one_and_update(
        self, filter: Mapping[str, Any], update: Mapping[str, Any], **kwargs: Any
    ) -> Doc | None:
        """Update the first matching document and return it."""
        return self._collection.find_one_and_update(filter, update, **kwargs)

    async def delete_one(self, filter: Mapping[str, Any]) -> DeleteResult:
        """Delete the first matching document."""
        return self._collection.delete_one(filter)

    async def delete_many(self, filter: Mapping[str, Any]) -> DeleteResult:
        """Delete every matching document."""
        return self._collection.delete_many(filter)

    async def count_documents(self, filter: Mapping[str, Any], **kwargs: Any) -> int:
        """Count the matching documents."""
        return self._collection.count_documents(filter, **kwargs)

    async def aggregate(self, pipeline: list[Doc], **kwargs: Any) -> AsyncMockCursor:
        """Run an aggregation pipeline."""
        return AsyncMockCursor(self._collection.aggregate(pipeline, **kwargs))

    async def create_index(self, keys: Any, **kwargs: Any) -> str:
        """Create an index (idempotently, as MongoDB does)."""
        return self._collection.create_index(keys, **kwargs)


class AsyncMockDatabase:
    """The AsyncDatabase methods MongoStore uses, over a mongomock database."""

    def __init__(self, db: Database[Doc]) -> None:
        self._db = db

    def __getitem__(self, name: str) -> AsyncMockCollection:
        return AsyncMockCollection(self._db[name])

    async def command(self, command: str, **kwargs: Any) -> Any:
        """Run a database command (e.g. ``ping``)."""
        return self._db.command(command, **kwargs)


def mock_database(name: str = "chorus") -> MongoDatabase:
    """Return a fresh, empty in-memory database for MongoStore."""
    client: mongomock.MongoClient[Doc] = mongomock.MongoClient(tz_aware=True)
    return AsyncMockDatabase(client[name])
