"""Approval gates in the browser: a session on the `reviewed` pipeline pauses after its
plan, showing the plan in an editable box; the user edits it and approves (keyboard
only), and the answer follows from the edited plan; another run is rejected."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ContextFactory, UserFactory
from tests.e2e.support import (
    answers,
    signed_in_page,
    stage_el,
    tid,
    ui_new_session,
    ui_send,
)
from tests.e2e.test_accessibility import assert_accessible
from tests.support.api import SyncApi

pytestmark = pytest.mark.e2e

EDITED_LINE = "4. Mention the approved-plan marker"


def test_edit_and_approve_a_plan_then_reject_another(
    new_context: ContextFactory, api: SyncApi, make_user: UserFactory
) -> None:
    user = make_user("gita")
    page = signed_in_page(new_context, user)
    session_id = ui_new_session(page, title="Reviewed", pipeline="reviewed")
    ui_send(page, "How do I brew green tea?")
    card = tid(page, "run")

    # The run pauses after plan: the plan in an editable box, Approve and Reject.
    approval = tid(card, "approval")
    expect(approval).to_be_visible()
    expect(card).to_have_attribute("data-status", "awaiting_approval")
    expect(tid(card, "run-status")).to_have_text("awaiting approval")
    expect(tid(page, "conversation-status")).to_have_text("awaiting_approval")
    expect(tid(page, "composer-hint")).to_contain_text("Waiting for your approval")
    expect(stage_el(card, "plan")).to_have_attribute("data-status", "completed")
    expect(stage_el(card, "draft")).to_have_attribute("data-status", "pending")
    box = tid(approval, "approval-output")
    expect(box).to_be_editable()
    expect(page.get_by_role("textbox", name="plan output")).to_have_count(1)  # labelled
    plan = box.input_value()
    assert plan.strip()
    assert_accessible(page, "approval gate")
    # The server agrees, and nothing runs meanwhile.
    run = api.as_user(user).get(f"/api/v1/runs/{card.get_attribute('data-run-id')}")
    assert (run["status"], run["awaiting_stage"]) == ("awaiting_approval", 0)

    # Edit with the keyboard, then reach Approve with Tab and press it.
    box.focus()
    page.keyboard.press("Control+End")
    page.keyboard.type(f"\n{EDITED_LINE}")
    page.keyboard.press("Tab")
    expect(tid(approval, "approve-run")).to_be_focused()
    page.keyboard.press("Enter")

    expect(approval).to_be_hidden()
    expect(answers(page)).to_have_count(1)
    runs = api.as_user(user).session_runs(session_id)
    assert runs[0]["status"] == "completed"
    gate = runs[0]["stages"][0]
    assert gate["output"].endswith(EDITED_LINE) and gate["output_original"] == plan
    assert gate["approved_at"] is not None

    # A second message pauses again; this time it is rejected.
    ui_send(page, "And black tea?")
    second = tid(page, "run").last
    expect(tid(second, "approval")).to_be_visible()
    tid(second, "reject-run").click()
    expect(second).to_have_attribute("data-status", "cancelled")
    expect(tid(second, "approval")).to_be_hidden()
    expect(tid(second, "run-error")).to_have_text("Rejected.")
    expect(tid(second, "retry-run")).to_be_visible()
    expect(tid(page, "composer")).to_have_attribute("data-state", "ready")
    runs = api.as_user(user).session_runs(session_id)
    assert (runs[1]["status"], runs[1]["error"]) == ("cancelled", "rejected")


def test_a_gate_shown_after_a_reload_and_approved_from_another_tab(
    new_context: ContextFactory, api: SyncApi, make_user: UserFactory
) -> None:
    """The gate is part of the session's REST snapshot; an approval made elsewhere moves
    this tab on live."""
    user = make_user("omar")
    page = signed_in_page(new_context, user, color_scheme="dark")
    ui_new_session(page, pipeline="reviewed")
    ui_send(page, "Plan a picnic")
    card = tid(page, "run")
    expect(tid(card, "approval")).to_be_visible()
    run_id = str(card.get_attribute("data-run-id"))
    page.reload()
    card = tid(page, "run")
    expect(tid(card, "approval")).to_be_visible()
    expect(tid(card, "approval-output")).not_to_have_value("")
    assert_accessible(page, "approval gate, dark, after a reload")
    api.as_user(user).post(f"/api/v1/runs/{run_id}/approve", {}, expect=202)
    expect(tid(card, "approval")).to_be_hidden()
    expect(answers(page)).to_have_count(1)
