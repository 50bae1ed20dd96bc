"""A follow-up written while the answer streams: queued (the default double-texting
policy), shown under the conversation, cancellable, started when the run ends.

The first run stalls mid-plan (the demo model's ``[[fail:stall]]``: a few tokens, then
nothing), so it stays busy for as long as the test needs, and ends when the test cancels it.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ContextFactory, UserFactory
from tests.e2e.support import (
    answers,
    sign_in_context,
    tid,
    ui_new_session,
    ui_send,
    user_messages,
    wait_streaming,
)
from tests.support.api import SyncApi

pytestmark = pytest.mark.e2e

DEMO_TOKEN_DELAY_MS = 5


def queue_send(page: Page, text: str) -> None:
    """Send from the composer while a run is active; return once the text is queued."""
    box = tid(page, "composer-input")
    expect(box).to_be_enabled()
    box.fill(text)
    box.press("Enter")
    expect(box).to_have_value("")  # sent: the draft goes
    expect(tid(page, "queued-message").filter(has_text=text)).to_have_count(1)


def test_a_follow_up_waits_queued_can_be_cancelled_and_starts_after_the_run(
    new_context: ContextFactory, api: SyncApi, make_user: UserFactory
) -> None:
    user = make_user("quinn")
    context = new_context()
    sign_in_context(context, user)
    page = context.new_page()
    page.goto("/")
    session_id = ui_new_session(page, title="Follow-ups")
    ui_send(page, "Plan a trip to Lyon [[fail:stall]]")
    first_card = tid(page, "run")
    first_run = str(first_card.get_attribute("data-run-id"))
    wait_streaming(page, "plan")  # a few tokens, then the model stalls: the run stays busy
    expect(tid(page, "composer-hint")).to_contain_text("waits its turn")

    queue_send(page, "On a budget, please")
    queue_send(page, "And vegetarian food")
    queued = tid(page, "queued-message")
    expect(tid(queued, "message-body")).to_have_text(["On a budget, please", "And vegetarian food"])
    expect(tid(queued.first, "queued-label")).to_have_text("Queued")
    expect(tid(page, "queued")).to_be_visible()
    expect(user_messages(page)).to_have_count(1)  # not in the conversation yet
    expect(tid(page, "composer-error")).to_be_hidden()  # no 409: queued is the answer

    # The queue is the server's: a reload shows it again.
    page.reload()
    expect(tid(page, "queued-message")).to_have_count(2)
    as_user = api.as_user(user)
    on_server = as_user.get(f"/api/v1/sessions/{session_id}")["queued"]
    assert [m["content"] for m in on_server] == ["On a budget, please", "And vegetarian food"]

    # Cancel the first follow-up: it leaves the queue, here and on the server.
    tid(page, "queued-message").filter(has_text="On a budget").get_by_test_id(
        "cancel-queued"
    ).click()
    expect(tid(page, "queued-message")).to_have_count(1)
    expect(tid(page, "queued-message")).to_contain_text("And vegetarian food")
    on_server = as_user.get(f"/api/v1/sessions/{session_id}")["queued"]
    assert [m["content"] for m in on_server] == ["And vegetarian food"]

    # The run ends (cancelled here): the other follow-up starts, as a message of the
    # conversation with its own run, and is answered.
    tid(page.locator(f'[data-testid="run"][data-run-id="{first_run}"]'), "cancel-run").click()
    expect(tid(page, "queued")).to_be_hidden()
    expect(user_messages(page)).to_have_count(2)
    expect(user_messages(page).nth(1)).to_contain_text("And vegetarian food")
    expect(answers(page)).to_have_count(1)
    session = as_user.get(f"/api/v1/sessions/{session_id}")
    contents = [m["content"] for m in session["messages"] if m["role"] == "user"]
    assert contents == ["Plan a trip to Lyon [[fail:stall]]", "And vegetarian food"]
    assert session["queued"] == [] and session["status"] == "completed"
    assert as_user.get(f"/api/v1/runs/{first_run}")["status"] == "cancelled"
