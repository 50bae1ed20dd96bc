"""Store contract: the admin's user list and updates, and one day's usage (budgets rebuild
their Redis counters from it). Runs on SQLite and MongoDB (real or mongomock)."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

from server.store.base import Store


async def test_list_users_pages_oldest_first_with_the_total(
    store: Store, make: SimpleNamespace
) -> None:
    users = [make.user(f"u{i}@example.test", created_at=make.at(10 - i)) for i in range(3)]
    for user in users:
        await store.create_user(user)
    page, total = await store.list_users(limit=2)
    assert total == 3 and page == [users[2], users[1]]
    page, total = await store.list_users(limit=2, skip=2)
    assert total == 3 and page == [users[0]]
    assert await store.list_users(limit=0) == ([], 3)


async def test_update_user_sets_fields_when_it_matches(store: Store, make: SimpleNamespace) -> None:
    ann = make.user()
    await store.create_user(ann)
    assert ann.role == "user" and ann.budget_tokens_per_day is None
    updated = await store.update_user(
        ann.user_id, {"role": "admin", "budget_tokens_per_day": 500, "budget_cost_per_day": 1.5}
    )
    assert updated is not None
    assert (updated.role, updated.budget_tokens_per_day, updated.budget_cost_per_day) == (
        "admin", 500, 1.5,
    )  # fmt: skip
    assert await store.get_user(ann.user_id) == updated
    # Back to the default, and a conditional update that does not match writes nothing.
    cleared = await store.update_user(ann.user_id, {"budget_tokens_per_day": None})
    assert cleared is not None and cleared.budget_tokens_per_day is None
    assert await store.update_user(ann.user_id, {"disabled": True}, expect={"role": "user"}) is None
    assert await store.update_user(ann.user_id, {"disabled": True}, expect={"role": "admin"})
    assert (await store.get_user(ann.user_id)).disabled  # type: ignore[union-attr]
    assert await store.update_user("missing", {"disabled": True}) is None


async def test_usage_of_day_sums_one_utc_day_per_user_or_everyone(
    store: Store, make: SimpleNamespace
) -> None:
    ann, bob = make.run(make.session("ann")), make.run(make.session("bob"))
    midnight = make.at(0).replace(hour=0, minute=0, second=0, microsecond=0)
    calls = [
        make.call(ann, midnight, prompt_tokens=10, completion_tokens=5, cost_usd=0.25),
        make.call(ann, midnight + timedelta(hours=23, minutes=59, seconds=59.999),
                  completion_tokens=1, cost_usd=0.5),
        make.call(ann, midnight - timedelta(milliseconds=1), prompt_tokens=1000, cost_usd=9.0),
        make.call(ann, midnight + timedelta(days=1), prompt_tokens=1000, cost_usd=9.0),
        make.call(bob, midnight + timedelta(hours=1), prompt_tokens=7, cost_usd=0.125),
    ]  # fmt: skip
    for call in calls:
        await store.insert_llm_call(call)
    day = midnight.strftime("%Y-%m-%d")
    mine = await store.usage_of_day(day, "ann")
    assert (mine.day, mine.prompt_tokens, mine.completion_tokens, mine.calls) == (day, 10, 6, 2)
    assert mine.cost_usd == 0.75
    everyone = await store.usage_of_day(day)
    assert (everyone.prompt_tokens, everyone.completion_tokens, everyone.calls) == (17, 6, 3)
    assert everyone.cost_usd == 0.875
    none = await store.usage_of_day(day, "nobody")
    assert none.model_dump() == {
        "day": day, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0, "calls": 0
    }  # fmt: skip
