"""The BudgetMeter against real Redis: it charges and checks on its first poll and then at
most every CHECK_INTERVAL_S (a clock the test moves), in one script; a counter Redis lost
is rebuilt from the store under what the stream charged."""

from __future__ import annotations

from datetime import UTC, datetime

from server.budgets import BudgetBook, day_of
from server.store.models import LlmCall, User
from workers.budget_meter import CHECK_INTERVAL_S, BudgetMeter
from workers.context import WorkerDeps

PROMPT = [{"role": "user", "content": "x" * 40}]  # 10 tokens by the estimate


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _book(deps: WorkerDeps, tokens_per_day: int) -> BudgetBook:
    settings = deps.settings.replace(budget_tokens_per_day=tokens_per_day)
    return BudgetBook(deps.redis, deps.keys, deps.store, settings)


def _meter(deps: WorkerDeps, book: BudgetBook, user: User, clock: Clock) -> BudgetMeter:
    agent = deps.registry.agent("assistant")
    return BudgetMeter(book, user, deps.registry, agent, PROMPT, clock=clock)


async def _tokens(deps: WorkerDeps, user_id: str | None) -> int | None:
    key = deps.keys.usage_day(user_id, day_of(datetime.now(UTC)))
    raw = await deps.redis.hget(key, "tokens")
    return None if raw is None else int(raw)


async def test_the_meter_charges_on_its_first_poll_then_once_per_interval(
    worker: WorkerDeps,
) -> None:
    user = User(email="ann@example.com", password_hash="-")
    clock = Clock()
    meter = _meter(worker, _book(worker, 10**9), user, clock)
    meter.on_delta("y" * 400)  # 100 tokens
    assert await meter.spent() is False
    assert await _tokens(worker, user.user_id) == 110
    assert await _tokens(worker, None) == 110

    meter.on_delta("y" * 400)
    clock.now += CHECK_INTERVAL_S / 2  # polls within the interval go nowhere near Redis
    assert await meter.spent() is False
    assert await _tokens(worker, user.user_id) == 110

    clock.now += CHECK_INTERVAL_S / 2
    assert await meter.spent() is False
    assert await _tokens(worker, user.user_id) == 210
    assert await _tokens(worker, None) == 210


async def test_a_budget_already_spent_stops_the_stage_at_its_first_poll(
    worker: WorkerDeps,
) -> None:
    user = User(email="bob@example.com", password_hash="-")
    book = _book(worker, 50)
    await book.charge(user.user_id, 60, 0)
    meter = _meter(worker, book, user, Clock())
    assert await meter.spent() is True  # nothing streamed yet: the read alone decides
    assert meter.exceeded == "user"
    assert await _tokens(worker, user.user_id) == 60  # nothing charged


async def test_without_budgets_the_meter_charges_only_what_streamed(worker: WorkerDeps) -> None:
    user = User(email="cy@example.com", password_hash="-")
    clock = Clock()
    meter = _meter(worker, _book(worker, 0), user, clock)
    assert await meter.spent() is False
    assert await _tokens(worker, user.user_id) is None  # nothing streamed: no counter touched
    meter.on_delta("y" * 8)
    clock.now += CHECK_INTERVAL_S
    assert await meter.spent() is False
    assert await _tokens(worker, user.user_id) == 12


async def test_charge_and_spend_rebuilds_a_lost_counter_under_the_charge(
    worker: WorkerDeps,
) -> None:
    user = User(email="di@example.com", password_hash="-")
    call = LlmCall(run_id="r", stage="s", user_id=user.user_id, provider="demo", model="m",
                   attempt=1, outcome="ok", prompt_tokens=30, completion_tokens=7)  # fmt: skip
    await worker.store.insert_llm_call(call)
    book = _book(worker, 10**9)
    mine, everyone = await book.charge_and_spend(user.user_id, 5, 0)
    assert (mine.tokens, everyone.tokens) == (42, 42)  # the store's 37 plus the 5 charged
    mine, everyone = await book.charge_and_spend(user.user_id, 0, 0)
    assert (mine.tokens, everyone.tokens) == (42, 42)  # rebuilt once only
