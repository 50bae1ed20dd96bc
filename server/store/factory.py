"""Open the configured Store: MongoDB when MONGODB_URL is set, else embedded SQLite."""

from __future__ import annotations

from server.config import Settings
from server.store.base import Store
from server.store.mongo import MongoStore
from server.store.sqlite import SqliteStore

SQLITE_FILE = "chorus.sqlite3"


async def open_store(settings: Settings) -> Store:
    """Open the store the settings name and create its indexes; the caller closes it."""
    store: Store
    if settings.mongodb_url:
        store = MongoStore.connect(
            settings.mongodb_url.get_secret_value(),
            settings.mongodb_db,
            settings.mongodb_timeout_ms,
        )
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = await SqliteStore.open(settings.data_dir / SQLITE_FILE)
    try:
        await store.ensure_indexes()
    except BaseException:
        await store.close()
        raise
    return store
