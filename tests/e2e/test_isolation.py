"""Two people in two browsers never see each other's sessions."""

from __future__ import annotations

import secrets

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import ContextFactory, UserFactory
from tests.e2e.support import answers, sign_in_context, tid, ui_new_session, ui_send
from tests.support.api import ApiError, SyncApi, User

pytestmark = pytest.mark.e2e


def open_app(new_context: ContextFactory, user: User) -> Page:
    """A signed-in page of its own browser context, its session list loaded."""
    context = new_context()
    sign_in_context(context, user)
    page = context.new_page()
    page.goto("/")
    expect(tid(page, "user-email")).to_have_text(user.email)
    return page


def sidebar_item(page: Page, session_id: str) -> Locator:
    """The sidebar entry of a session."""
    return page.locator(f'[data-testid="session-item"][data-session-id="{session_id}"]')


def test_users_never_see_each_others_sessions(
    new_context: ContextFactory, api: SyncApi, make_user: UserFactory
) -> None:
    """Sidebars list only their owner's sessions; another's #/s/<id> is not found."""
    alice, bob = make_user("alice"), make_user("bob")
    page_a, page_b = open_app(new_context, alice), open_app(new_context, bob)
    title_a = f"Alice private plans {secrets.token_hex(3)}"
    title_b = f"Bob private notes {secrets.token_hex(3)}"

    id_a = ui_new_session(page_a, title=title_a, pipeline="chat")
    ui_send(page_a, "A secret only Alice should see")
    expect(answers(page_a)).to_have_count(1)
    id_b = ui_new_session(page_b, title=title_b)
    run_a = api.as_user(alice).get(f"/api/v1/sessions/{id_a}")["messages"][0]["run_id"]

    # Each sidebar, loaded afresh, holds its owner's session and not the other's.
    for page, own, own_title, other, other_title in (
        (page_a, id_a, title_a, id_b, title_b),
        (page_b, id_b, title_b, id_a, title_a),
    ):
        page.reload()
        expect(tid(sidebar_item(page, own), "session-title")).to_have_text(own_title)
        expect(tid(page, "session-item")).to_have_count(1)
        expect(sidebar_item(page, other)).to_have_count(0)
        expect(page.get_by_text(other_title)).to_have_count(0)

    # Bob follows a link to Alice's session: not found, and nothing of hers shows.
    page_b.goto(f"/#/s/{id_a}")
    expect(tid(page_b, "global-error")).to_be_visible()
    expect(tid(page_b, "global-error-text")).to_contain_text("does not exist")
    expect(tid(page_b, "chat")).to_be_hidden()
    expect(tid(page_b, "no-session")).to_be_visible()
    expect(page_b.get_by_text(title_a)).to_have_count(0)
    expect(page_b.get_by_text("A secret only Alice should see")).to_have_count(0)
    expect(tid(page_b, "message")).to_have_count(0)
    expect(sidebar_item(page_b, id_a)).to_have_count(0)
    expect(sidebar_item(page_b, id_b)).to_have_count(1)
    # Alice, meanwhile, still has it.
    page_a.goto(f"/#/s/{id_a}")
    expect(tid(page_a, "conversation-title")).to_have_text(title_a)
    expect(answers(page_a)).to_have_count(1)

    # The API agrees: 404 (not 403, no existence oracle) for Bob, on the session and the run.
    as_bob = api.as_user(bob)
    for path in (f"/api/v1/sessions/{id_a}", f"/api/v1/runs/{run_a}"):
        with pytest.raises(ApiError) as err:
            as_bob.get(path)
        assert err.value.status == 404
        assert err.value.body["error"]["code"] == "not_found"
    assert [s["session_id"] for s in as_bob.get("/api/v1/sessions")["items"]] == [id_b]
