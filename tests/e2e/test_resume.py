"""A page reloaded mid-run picks the live run up again, with nothing lost or doubled."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ContextFactory, UserFactory
from tests.e2e.support import (
    STAGES,
    Recording,
    answers,
    shown_stage_outputs,
    sign_in_context,
    tid,
    ui_new_session,
    ui_send,
    user_messages,
    wait_streaming,
)
from tests.support.api import SyncApi

pytestmark = pytest.mark.e2e

# Slower tokens than the other modules: the run must outlast a page reload with room to spare.
DEMO_TOKEN_DELAY_MS = 25


def assert_prefixes(rec: Recording, run_id: str, outputs: dict[str, str]) -> None:
    """Every streaming text the page showed is a prefix of the stage's stored output."""
    for name, output in outputs.items():
        for text in rec.stream_texts(run_id, name):
            assert output.startswith(text), f"{name}: {text!r} is not a prefix of {output!r}"


def test_reload_mid_run_resumes_the_stream_without_duplicates(
    new_context: ContextFactory, api: SyncApi, make_user: UserFactory
) -> None:
    """Reload while the draft streams: the text comes back and goes on, never doubled."""
    user = make_user("rey")
    context = new_context()
    sign_in_context(context, user)
    page = context.new_page()
    page.goto("/")
    session_id = ui_new_session(page, title="Reload me")
    ui_send(page, "Compare three ways to learn a new language as an adult")

    run_card = tid(page, "run")
    run_id = str(run_card.get_attribute("data-run-id"))
    # Mid-run: the plan is done and the draft is streaming.
    wait_streaming(page, "draft")
    before = Recording.of(page)
    shown_before = before.stream_texts(run_id, "draft")[-1]

    page.reload()
    expect(tid(page, "app-view")).to_be_visible()
    assert page.url.endswith(f"/#/s/{session_id}")
    expect(answers(page)).to_have_count(1)
    expect(tid(page, "composer")).to_have_attribute("data-state", "ready")
    after = Recording.of(page)

    rest = api.as_user(user)
    run = rest.wait_run(run_id, {"completed", "failed", "cancelled"})
    assert run["status"] == "completed"
    outputs = {s["name"]: s["output"] for s in run["stages"]}
    assert list(outputs) == list(STAGES)

    # After the reload the page saw the run live again: the plan already completed, and
    # a stage streaming text that grew — starting from the draft's text before the reload
    # (rebuilt from the session's event history), not from scratch or twice over.
    assert after.run_statuses(run_id)[:1] == ["running"], after.run_statuses(run_id)
    assert after.stage_statuses(run_id, "plan") == ["completed"]
    draft_after = after.stream_texts(run_id, "draft")
    review_after = after.stream_texts(run_id, "review")
    assert draft_after or review_after, "no streaming text after the reload"
    if draft_after:
        assert len(draft_after[-1]) >= len(shown_before), (shown_before, draft_after)
    assert len(draft_after) + len(review_after) >= 2, "the stream did not go on after the reload"
    assert_prefixes(before, run_id, outputs)
    assert_prefixes(after, run_id, outputs)

    # Once complete, what the page shows is exactly what was stored.
    answer = answers(page)
    expect(user_messages(page)).to_have_count(1)
    shown = shown_stage_outputs(answer)
    assert list(shown) == list(STAGES)
    assert shown == outputs
    session = rest.get(f"/api/v1/sessions/{session_id}")
    assert [m["role"] for m in session["messages"]] == ["user", "assistant"]
    assert session["messages"][1]["content"] == outputs["review"]
