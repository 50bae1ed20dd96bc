"""Store contract for API keys, on every backend."""

from __future__ import annotations

from typing import Any

import pytest

from server.store.base import DuplicateError, Store
from server.store.models import ApiKey


def _key(user_id: str, key_hash: str, **fields: object) -> ApiKey:
    return ApiKey(user_id=user_id, key_hash=key_hash, prefix="chk_abc", **fields)  # type: ignore[arg-type]


async def test_insert_find_by_hash_and_list_per_user(store: Store, make: Any) -> None:
    a1 = _key("ann", "h1", name="one", created_at=make.at(2))
    a2, b1 = _key("ann", "h2", created_at=make.at(3)), _key("bob", "h3", created_at=make.at(1))
    for key in (a2, b1, a1):
        await store.insert_api_key(key)
    found = await store.get_api_key_by_hash("h2")
    assert found == a2
    assert await store.get_api_key_by_hash("nope") is None
    assert [k.key_id for k in await store.list_api_keys("ann")] == [a1.key_id, a2.key_id]
    assert [k.key_id for k in await store.list_api_keys("bob")] == [b1.key_id]


async def test_hash_is_unique(store: Store) -> None:
    await store.insert_api_key(_key("ann", "same"))
    with pytest.raises(DuplicateError):
        await store.insert_api_key(_key("bob", "same"))


async def test_update_only_the_owners_key(store: Store, make: Any) -> None:
    key = _key("ann", "h1")
    await store.insert_api_key(key)
    when = make.at(5)
    assert await store.update_api_key("bob", key.key_id, {"revoked_at": when}) is None
    updated = await store.update_api_key("ann", key.key_id, {"revoked_at": when})
    assert updated is not None and updated.revoked_at == when
    assert (await store.get_api_key_by_hash("h1")) == updated
