"""Budgets and admin in the browser: the usage page shows what is left of today's budget,
then that it is spent (an admin lowered it); a send is refused with a sentence saying when
it resets; a user disabled by an admin is signed out at once (their socket closed 4403)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ContextFactory, UserFactory
from tests.e2e.support import sign_in_context, tid, ui_new_session
from tests.support.api import SyncApi

pytestmark = pytest.mark.e2e

SERVER_ENV = {"BUDGET_TOKENS_PER_DAY": "1000000"}
DEMO_TOKEN_DELAY_MS = 1.0


def test_usage_shows_the_budget_left_then_spent_and_a_disabled_user_is_signed_out(
    new_context: ContextFactory, api: SyncApi, make_user: UserFactory
) -> None:
    admin = make_user("root")  # the server's first account: an admin
    user = make_user("ann")
    rest, root = api.as_user(user), api.as_user(admin)
    sid = rest.post("/api/v1/sessions", {"title": "Tea"}, expect=201)["session_id"]
    sent = rest.post(f"/api/v1/sessions/{sid}/messages", {"content": "Green tea?"}, expect=202)
    rest.wait_run(sent["run"]["run_id"], {"completed"})

    context = new_context()
    sign_in_context(context, user)
    page = context.new_page()
    page.goto("/#/usage")
    left = rest.get("/api/v1/usage")["budget"]["tokens"]
    assert 0 < left["remaining"] < 1_000_000
    line = tid(page, "usage-budget")
    expect(line).to_contain_text(f"Left today: {left['remaining']:,} of 1,000,000 tokens")
    expect(line).to_contain_text("resets at midnight UTC")

    # An admin lowers ann's budget below what she spent today.
    root.call("PATCH", f"/api/v1/admin/users/{user.user_id}", {"budget_tokens_per_day": 10})
    page.reload()
    expect(line).to_contain_text("Your daily budget is spent; it resets at midnight UTC")
    expect(line).to_have_class("usage-budget usage-budget-spent")

    # Sending is refused, the draft kept, with a sentence saying when it resets.
    page.goto("/")
    expect(tid(page, "conn-status")).to_have_attribute("data-state", "online")
    ui_new_session(page, title="Over budget")
    box = tid(page, "composer-input")
    box.fill("One more question")
    tid(page, "send").click()
    expect(tid(page, "composer-error")).to_contain_text(
        "Your daily budget is spent. It resets at midnight UTC"
    )
    expect(box).to_have_value("One more question")

    # Disabled by the admin: the socket closes and the page goes back to sign-in.
    root.call("PATCH", f"/api/v1/admin/users/{user.user_id}", {"disabled": True})
    expect(tid(page, "login-form")).to_be_visible()
