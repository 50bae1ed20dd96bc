"""A person's whole path through the UI: sign up, sign in, chat, cancel, retry."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ContextFactory, UserFactory
from tests.e2e.support import (
    STAGES,
    Recording,
    answers,
    shown_stage_outputs,
    sign_in_context,
    stage_el,
    tid,
    ui_login,
    ui_new_session,
    ui_register,
    ui_send,
    wait_streaming,
)
from tests.support.api import SyncApi, User

pytestmark = pytest.mark.e2e


def markdown_text(markdown: str) -> str:
    """The words of the demo model's Markdown, as the rendered HTML shows them."""
    text = re.sub(r"^\s*(#+|\d+\.|[-*])\s+", "", markdown, flags=re.MULTILINE)
    text = re.sub(r"(\*\*|\*|(?<!\w)_|_(?!\w))", "", text)
    return " ".join(text.split())


def assert_streamed(texts: list[str], output: str) -> None:
    """The streaming text grew in several steps, each a prefix of the stored output."""
    assert len(texts) >= 3, f"too few streaming updates to call it streaming: {texts!r}"
    assert [len(t) for t in texts] == sorted({len(t) for t in texts}), "the text did not only grow"
    for text in texts:
        assert output.startswith(text), f"{text!r} is not a prefix of {output!r}"


def assert_progressed(statuses: list[str], ends: tuple[str, ...]) -> None:
    """A stage went forward only: (pending →) running (→ completed), ending in one of ends."""
    order = ["pending", "running", "completed"]
    assert "running" in statuses, statuses
    assert all(s in order for s in statuses), statuses
    assert statuses == sorted(statuses, key=order.index), f"went backwards: {statuses}"
    assert statuses[-1] in ends, statuses


def test_register_login_chat_streams_three_stages(page: Page, api: SyncApi) -> None:
    """Register, sign out and in again, then one message streams plan → draft → review."""
    user = User.fresh("ann")
    page.goto("/")
    ui_register(page, user)
    tid(page, "logout").click()
    expect(tid(page, "auth-view")).to_be_visible()
    expect(tid(page, "app-view")).to_be_hidden()
    ui_login(page, user)
    expect(tid(page, "conn-status")).to_have_attribute("data-state", "online")
    expect(tid(page, "demo-banner")).to_be_visible()
    expect(tid(page, "sessions-empty")).to_be_visible()

    session_id = ui_new_session(page)
    question = "How do I bake sourdough bread at home"
    ui_send(page, question)

    run_card = tid(page, "run")
    expect(run_card).to_have_count(1)
    run_id = run_card.get_attribute("data-run-id")
    assert run_id
    # Watch it live: text streams in, rendered as markdown while it arrives; each stage
    # completes before the next one streams (every frame is also recorded, checked below).
    assert wait_streaming(page) in STAGES
    expect(tid(page, "composer")).to_have_attribute("data-state", "busy")
    expect(tid(page, "composer-input")).to_be_enabled()
    for done, streaming in (("plan", "draft"), ("draft", "review")):
        wait_streaming(page, streaming)
        expect(stage_el(run_card, done)).to_have_attribute("data-status", "completed")
    answer = answers(page)
    expect(answer).to_have_count(1)
    expect(run_card).to_have_count(0)  # the card gives way to the answer
    expect(tid(page, "composer")).to_have_attribute("data-state", "ready")
    expect(tid(page, "composer-input")).to_be_enabled()
    expect(tid(page, "conversation-status")).to_have_attribute("data-status", "completed")

    # The answer is rendered Markdown: a heading and a numbered list, not raw text.
    body = tid(answer, "message-body")
    expect(body.locator("h2")).to_have_text("Answer")
    expect(body.locator("ol > li")).to_have_count(3)
    expect(body.locator("strong").first).to_be_visible()
    assert "**" not in (body.text_content() or "")

    # ... and it is what the run stored as its last stage's output.
    api.log_in(user)
    rest = api.as_user(user)
    run = rest.get(f"/api/v1/runs/{run_id}")
    assert run["status"] == "completed"
    assert [s["name"] for s in run["stages"]] == list(STAGES)
    assert all(s["status"] == "completed" for s in run["stages"])
    final = run["stages"][-1]["output"]
    session = rest.get(f"/api/v1/sessions/{session_id}")
    stored_answer = [m for m in session["messages"] if m["role"] == "assistant"]
    assert len(stored_answer) == 1
    assert stored_answer[0]["content"] == final
    assert stored_answer[0]["run_id"] == run_id
    assert " ".join((body.text_content() or "").split()) == markdown_text(final)
    # The server's HTML is what the page shows (sanitized again, links hardened).
    stored_html = stored_answer[0]["content_html"]
    same = page.evaluate(
        """([el, html]) => {
            const doc = new DOMParser().parseFromString(html, "text/html").body;
            const tags = (root) => [...root.querySelectorAll("*")].map((e) => e.tagName).join();
            return tags(el) === tags(doc) && el.textContent === doc.textContent;
        }""",
        [body.element_handle(), stored_html],
    )
    assert same, (body.inner_html(), stored_html)

    # What was on screen along the way: every stage went running → completed, and its
    # text grew in steps that were always a prefix of what the stage finally wrote.
    rec = Recording.of(page)
    for stage in run["stages"]:
        statuses = rec.stage_statuses(run_id, stage["name"])
        # The review's last frame may be the answer replacing the card: running is enough.
        ends = ("completed",) if stage["name"] != "review" else ("running", "completed")
        assert_progressed(statuses, ends)
        assert_streamed(rec.stream_texts(run_id, stage["name"]), stage["output"])

    # The answer's details list every stage's output, and the sidebar has the session,
    # named after the first message.
    assert shown_stage_outputs(answer) == {s["name"]: s["output"] for s in run["stages"]}
    item = page.locator(f'[data-testid="session-item"][data-session-id="{session_id}"]')
    expect(tid(item, "session-title")).to_have_text(question)
    expect(tid(item, "session-status")).to_have_attribute("data-status", "completed")
    expect(tid(item, "session-open")).to_have_attribute("aria-current", "page")


def test_cancel_while_streaming(
    new_context: ContextFactory, api: SyncApi, make_user: UserFactory
) -> None:
    """Cancel mid-stream: the run shows cancelled, the composer is back, REST agrees."""
    user = make_user("cid")
    context = new_context()
    sign_in_context(context, user)
    page = context.new_page()
    page.goto("/")
    session_id = ui_new_session(page, title="To be cancelled")
    ui_send(page, "Write a long essay about the history of tea")

    run_card = tid(page, "run")
    streaming = wait_streaming(page)
    expect(tid(page, "composer-input")).to_be_enabled()
    run_id = run_card.get_attribute("data-run-id")
    tid(run_card, "cancel-run").click()

    expect(run_card).to_have_attribute("data-status", "cancelled")
    expect(tid(run_card, "run-status")).to_have_text("cancelled")
    expect(tid(run_card, "run-error")).to_have_text("Cancelled.")
    expect(tid(run_card, "cancel-run")).to_be_hidden()
    expect(tid(run_card, "retry-run")).to_be_visible()
    expect(tid(run_card, "stream")).to_be_hidden()
    expect(tid(page, "conversation-status")).to_have_attribute("data-status", "cancelled")
    expect(tid(page, "composer")).to_have_attribute("data-state", "ready")
    expect(tid(page, "composer-input")).to_be_enabled()
    tid(page, "composer-input").fill("Never mind, something else")
    expect(tid(page, "send")).to_be_enabled()

    rest = api.as_user(user)
    run = rest.wait_run(str(run_id), {"cancelled", "completed", "failed"})
    assert run["status"] == "cancelled"
    assert all(s["status"] in ("completed", "cancelled") for s in run["stages"]), run["stages"]
    stored = {s["name"]: s["status"] for s in run["stages"]}
    assert stored[streaming] == "cancelled", stored  # the stage that was streaming stopped
    for name, status in stored.items():  # and the stepper shows what was stored
        expect(stage_el(run_card, name)).to_have_attribute("data-status", status)
    session = rest.get(f"/api/v1/sessions/{session_id}")
    assert session["status"] == "cancelled"
    assert [m["role"] for m in session["messages"]] == ["user"]
    expect(answers(page)).to_have_count(0)


def test_failed_stage_shows_retry_and_retry_completes(
    new_context: ContextFactory, api: SyncApi, make_user: UserFactory
) -> None:
    """A stage whose every model fails shows the error and Retry; Retry then completes.

    ``[[fail:400*2]]`` makes the demo model answer 400 to the first two calls of this
    conversation. A 400 goes straight to the chain's next model, and the agent has two
    (demo, demo-backup): both refuse, the stage fails. The retry's call is the third,
    so it passes. (The chat pipeline has one stage; in plan → draft → review every stage
    is a new conversation for the demo model and would fail once in turn.)
    """
    user = make_user("rita")
    context = new_context()
    sign_in_context(context, user)
    page = context.new_page()
    page.goto("/")
    session_id = ui_new_session(page, title="Flaky model", pipeline="chat")
    ui_send(page, "Explain photosynthesis in two sentences [[fail:400*2]]")

    run_card = tid(page, "run")
    expect(run_card).to_have_attribute("data-status", "failed")
    run_id = str(run_card.get_attribute("data-run-id"))
    stage = stage_el(run_card, "answer")
    expect(stage).to_have_attribute("data-status", "failed")
    # One human sentence for the stage, another for the run; the raw texts are behind
    # a disclosure, each once.
    expect(tid(stage, "stage-error")).to_have_text(
        "The answer stage failed: the model provider refused the request (HTTP 400)."
    )
    expect(tid(run_card, "run-error")).to_have_text(
        "The run stopped at the answer stage. Retry picks up from there."
    )
    details = tid(run_card, "failure-details")
    expect(details).to_be_visible()
    expect(tid(details, "failure-detail").first).to_be_hidden()  # closed until asked
    details.locator("summary").click()
    lines = tid(details, "failure-detail")
    expect(lines).to_have_count(2)
    expect(lines.nth(0)).to_contain_text("answer, attempt 1: HTTP 400")
    expect(lines.nth(1)).to_contain_text("answer stage: agent")
    texts = lines.all_text_contents()
    assert len({t.split(": ", 1)[1] for t in texts}) == 2, texts
    expect(tid(run_card, "run-status")).to_have_text("failed")
    expect(tid(page, "composer")).to_have_attribute("data-state", "ready")
    expect(answers(page)).to_have_count(0)

    rest = api.as_user(user)
    failed = rest.get(f"/api/v1/runs/{run_id}")
    assert failed["status"] == "failed"
    assert failed["stages"][0]["status"] == "failed"
    assert "400" in failed["stages"][0]["error"]

    tid(run_card, "retry-run").click()
    answer = answers(page)
    expect(answer).to_have_count(1)
    expect(run_card).to_have_count(0)
    expect(tid(page, "conversation-status")).to_have_attribute("data-status", "completed")
    expect(tid(answer, "message-body").locator("em")).to_have_count(1)  # "You asked about *…*"

    run = rest.wait_run(run_id, {"completed", "failed", "cancelled"})
    assert run["status"] == "completed"
    assert run["stages"][0]["status"] == "completed"
    assert run["stages"][0]["model"] == "demo"  # the first model of the chain
    assert run["generation"] == failed["generation"] + 1  # the same run, resumed once
    stored = rest.session_runs(session_id)
    assert [r["run_id"] for r in stored] == [run_id]  # the same run, resumed
    session = rest.get(f"/api/v1/sessions/{session_id}")
    assistant = [m for m in session["messages"] if m["role"] == "assistant"]
    assert len(assistant) == 1
    assert assistant[0]["content"] == run["stages"][0]["output"]
    expect(tid(answer, "message-body")).to_contain_text("photosynthesis")
