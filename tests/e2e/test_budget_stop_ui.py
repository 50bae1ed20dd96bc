"""A daily budget spent while a stage streams, in the browser: the stage stops, its text
stays on the run card marked stopped, the stage's sentence says the budget is spent, and
the usage page says so too. Every user here has a 1-token budget; ``[[fail:stall]]`` makes
the demo model stream half its answer and then hang (attempts may wait 60 s), so only the
budget can end the stage."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ContextFactory, UserFactory
from tests.e2e.support import (
    markdown_source,
    sign_in_context,
    stage_el,
    tid,
    ui_new_session,
    ui_send,
)
from tests.support.api import SyncApi

pytestmark = pytest.mark.e2e

SERVER_ENV = {"BUDGET_TOKENS_PER_DAY": "1", "ATTEMPT_TIMEOUT_S": "60", "STAGE_TIMEOUT_S": "120"}


def test_a_budget_spent_mid_stream_keeps_the_stopped_text_and_says_why(
    new_context: ContextFactory, api: SyncApi, make_user: UserFactory
) -> None:
    user = make_user("tess")
    context = new_context()
    sign_in_context(context, user)
    page = context.new_page()
    page.goto("/")
    ui_new_session(page, title="Budget", pipeline="chat")
    ui_send(page, "Explain photosynthesis in two sentences [[fail:stall]]")

    run_card = tid(page, "run")
    expect(run_card).to_have_attribute("data-status", "failed")
    stage = stage_el(run_card, "answer")
    expect(stage).to_have_attribute("data-status", "failed")
    expect(tid(stage, "stage-error")).to_have_text(
        "The answer stage failed: the daily budget is spent."
    )
    stopped = run_card.locator('[data-testid="stopped-output"][data-stage="answer"]')
    expect(tid(stopped, "stopped-label")).to_contain_text("stopped when it failed")
    run = api.as_user(user).get(f"/api/v1/runs/{run_card.get_attribute('data-run-id')}")
    assert run["error_code"] == "budget_exceeded"
    kept = run["stages"][0]["partial"]
    assert kept and markdown_source(tid(stopped, "stopped-text")) == kept

    tid(page, "usage-link").click()
    expect(tid(page, "usage-budget")).to_contain_text("Your daily budget is spent")
