"""Branches in the browser: regenerate the last answer, edit a sent message and resend it;
a "< 1/2 >" switcher moves between the versions, and the old branch stays readable."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ContextFactory, UserFactory
from tests.e2e.support import (
    answers,
    session_id_of,
    signed_in_page,
    tid,
    ui_new_session,
    ui_send,
    user_messages,
)
from tests.support.api import SyncApi

pytestmark = pytest.mark.e2e


def answered(page: Page, count: int) -> None:
    """Wait until the conversation shows ``count`` answers and no run is in progress."""
    expect(answers(page)).to_have_count(count)
    expect(tid(page, "run")).to_have_count(0)
    expect(page.locator("main.conversation")).to_have_attribute("data-busy", "false")


def test_regenerate_gives_a_second_answer_and_the_switcher_shows_both(
    new_context: ContextFactory, make_user: UserFactory, api: SyncApi
) -> None:
    user = make_user("reg")
    page = signed_in_page(new_context, user)
    ui_new_session(page, title="Regenerated")
    ui_send(page, "How do I brew green tea?")
    answered(page, 1)
    first = answers(page).get_attribute("data-message-id")
    expect(tid(answers(page), "branch-switcher")).to_be_hidden()

    tid(answers(page), "regenerate").click()
    expect(answers(page).and_(page.locator(f'[data-message-id="{first}"]'))).to_have_count(0)
    answered(page, 1)
    second = answers(page).get_attribute("data-message-id")
    assert second and second != first
    expect(tid(answers(page), "branch-position")).to_have_text("2/2")
    expect(tid(answers(page), "regenerate")).to_be_visible()

    tid(answers(page), "branch-prev").click()
    expect(answers(page)).to_have_attribute("data-message-id", first or "")
    expect(tid(answers(page), "branch-position")).to_have_text("1/2")
    expect(tid(answers(page), "branch-prev")).to_be_disabled()
    # The server keeps the selected branch: a reload shows the same one.
    sid = session_id_of(page)
    session = api.as_user(user).get(f"/api/v1/sessions/{sid}")
    assert session["head_message_id"] == first
    page.reload()
    expect(answers(page)).to_have_attribute("data-message-id", first or "")
    expect(tid(answers(page), "branch-position")).to_have_text("1/2")
    tid(answers(page), "branch-next").click()
    expect(answers(page)).to_have_attribute("data-message-id", second)


def test_edit_as_branch_forks_and_the_old_branch_stays_readable(
    new_context: ContextFactory, make_user: UserFactory
) -> None:
    user = make_user("edit")
    page = signed_in_page(new_context, user)
    ui_new_session(page, title="Edited")
    ui_send(page, "How do I brew green tea?")
    answered(page, 1)
    ui_send(page, "And oolong?")
    answered(page, 2)
    old_answer = answers(page).nth(1).get_attribute("data-message-id")

    second = user_messages(page).nth(1)
    tid(second, "edit-message").click()
    editor = tid(second, "edit-input")
    expect(editor).to_have_value("And oolong?")
    editor.fill("And black tea?")
    tid(second, "edit-send").click()
    expect(user_messages(page).nth(1)).to_contain_text("And black tea?")
    answered(page, 2)
    expect(user_messages(page)).to_have_count(2)
    edited = user_messages(page).nth(1)
    expect(tid(edited, "branch-position")).to_have_text("2/2")
    expect(tid(user_messages(page).first, "branch-switcher")).to_be_hidden()
    assert answers(page).nth(1).get_attribute("data-message-id") != old_answer

    tid(edited, "branch-prev").click()
    expect(user_messages(page).nth(1)).to_contain_text("And oolong?")
    expect(answers(page).nth(1)).to_have_attribute("data-message-id", old_answer or "")
    expect(tid(user_messages(page).nth(1), "branch-position")).to_have_text("1/2")
    # The regenerate button is on the last answer only.
    expect(tid(answers(page).first, "regenerate")).to_be_hidden()
    expect(tid(answers(page).nth(1), "regenerate")).to_be_visible()


def test_rerun_a_stage_with_another_model_from_the_answers_details(
    new_context: ContextFactory, make_user: UserFactory, api: SyncApi
) -> None:
    user = make_user("rerun")
    page = signed_in_page(new_context, user)
    ui_new_session(page, title="Re-run")
    ui_send(page, "How do I brew green tea?")
    answered(page, 1)
    first = answers(page).get_attribute("data-message-id")
    answer = answers(page)
    tid(answer, "run-details-summary").click()
    draft = answer.locator('[data-testid="stage-output"][data-stage="draft"]')
    draft.locator("summary").click()
    tid(draft, "rerun-model").select_option("demo-backup")
    tid(draft, "rerun-stage").click()

    answered(page, 1)
    expect(tid(answers(page), "branch-position")).to_have_text("2/2")
    assert answers(page).get_attribute("data-message-id") != first
    tid(answers(page), "run-details-summary").click()
    redone = answers(page).locator('[data-testid="stage-output"][data-stage="draft"] summary')
    expect(redone).to_contain_text("demo-backup")
    expect(redone).to_contain_text("re-run (1 earlier version: demo)")
    runs = api.as_user(user).get(f"/api/v1/sessions/{session_id_of(page)}")["messages"]
    run = api.as_user(user).get(f"/api/v1/runs/{runs[-1]['run_id']}")
    assert run["stages"][1]["model"] == "demo-backup"
    assert [v["model"] for v in run["stages"][1]["versions"]] == ["demo"]
