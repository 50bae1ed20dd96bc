"""What a demanding user expects of the chat: live markdown, never locked, stopped text kept.

Also session search, last-activity order, the usage page, copy, long messages, and the
announcements a screen reader hears.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ContextFactory, UserFactory
from tests.e2e.support import (
    STAGES,
    Recording,
    answers,
    markdown_source,
    signed_in_page,
    stage_el,
    tid,
    ui_new_session,
    ui_send,
    user_messages,
    wait_streaming,
)
from tests.support.api import SyncApi

pytestmark = pytest.mark.e2e

# Slow enough that a stage streams for a while: there is time to type and to cancel.
DEMO_TOKEN_DELAY_MS = 40


def test_live_markdown_busy_send_and_cancel_keeping_text(
    new_context: ContextFactory, api: SyncApi, make_user: UserFactory
) -> None:
    """Markdown renders while it streams; a send while busy keeps the draft; cancel keeps text."""
    user = make_user("lena")
    page = signed_in_page(new_context, user)
    session_id = ui_new_session(page, title="Live markdown")
    ui_send(page, "Compare three ways to learn a new language as an adult")
    run_card = tid(page, "run")
    run_id = str(run_card.get_attribute("data-run-id"))

    # The plan streams as formatted text: "**Plan**" is bold, its steps a numbered list.
    wait_streaming(page, "plan")
    stream = tid(run_card, "stream-text")
    expect(stream.locator("strong").first).to_have_text("Plan")
    expect(stream.locator("ol > li").first).to_be_visible()
    # ... and so does the draft, mid-stream: "### Draft" is a heading, not raw text.
    wait_streaming(page, "draft")
    expect(stream.locator("h3")).to_have_text("Draft")
    assert "###" not in (stream.text_content() or "")
    expect(stage_el(run_card, "draft")).to_have_attribute("data-status", "running")

    # Never locked: the box takes a draft during the run. In a session set to refuse sends
    # while busy (double texting "reject"; the default queues them: test_queue_ui.py), a
    # send is refused by the server (409 session_busy) and the draft stays, with a note.
    api.as_user(user).call("PATCH", f"/api/v1/sessions/{session_id}", {"double_texting": "reject"})
    box = tid(page, "composer-input")
    expect(box).to_be_enabled()
    box.fill("And which one is fastest?")
    box.press("Enter")
    expect(tid(page, "composer-error")).to_contain_text("still answering")
    expect(box).to_have_value("And which one is fastest?")
    expect(user_messages(page)).to_have_count(1)

    shown = Recording.of(page).stream_texts(run_id, "draft")[-1]
    tid(run_card, "cancel-run").click()
    expect(run_card).to_have_attribute("data-status", "cancelled")

    # The draft's partial text stays, marked as stopped, rendered.
    stopped = run_card.locator('[data-testid="stopped-output"][data-stage="draft"]')
    expect(stopped).to_be_visible()
    expect(tid(stopped, "stopped-label")).to_contain_text("stopped when you cancelled")
    expect(tid(stopped, "stopped-text").locator("h3")).to_have_text("Draft")
    kept = markdown_source(tid(stopped, "stopped-text"))
    assert kept.startswith(shown), (kept, shown)
    run = api.as_user(user).wait_run(run_id, {"cancelled"})
    draft = next(s for s in run["stages"] if s["name"] == "draft")
    assert draft["status"] == "cancelled"
    assert draft["partial"] == kept  # the server kept the same text

    # The busy note's cause is gone: the note goes, the draft stays.
    expect(tid(page, "composer-error")).to_be_hidden()
    expect(box).to_have_value("And which one is fastest?")

    # After a reload the stopped text is still there (from the history or the run).
    page.reload()
    card = page.locator(f'[data-testid="run"][data-run-id="{run_id}"]')
    expect(card).to_have_attribute("data-status", "cancelled")
    again = card.locator('[data-testid="stopped-output"][data-stage="draft"]')
    expect(tid(again, "stopped-text").locator("h3")).to_have_text("Draft")
    assert markdown_source(tid(again, "stopped-text")) == draft["partial"]

    ui_send(page, "And which one is fastest?")
    expect(answers(page)).to_have_count(1)
    rest = api.as_user(user)
    roles = [m["role"] for m in rest.get(f"/api/v1/sessions/{session_id}")["messages"]]
    assert roles == ["user", "user", "assistant"]


def test_announcements_once_per_change_and_copy(
    new_context: ContextFactory, make_user: UserFactory
) -> None:
    """Stage changes and the answer are announced once each (not per delta); copy works."""
    user = make_user("ari")
    page = signed_in_page(new_context, user, permissions=["clipboard-read", "clipboard-write"])
    ui_new_session(page, title="Announced")
    ui_send(page, "Explain how HTTPS keeps a connection private")
    expect(answers(page)).to_have_count(1)
    said = " ".join(Recording.of(page).announcements())
    for stage in STAGES:
        assert said.count(f"{stage} stage started.") == 1, said
        assert said.count(f"{stage} stage finished.") <= 1, said
    assert said.count("The answer is ready.") == 1, said
    expect(tid(page, "announcer")).to_have_attribute("role", "status")
    expect(tid(page, "stream")).to_have_count(0)

    answer = answers(page)
    tid(answer, "copy-message").click()
    expect(tid(answer, "copy-message")).to_have_text("Copied")
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied.startswith("## Answer"), copied


def test_search_order_usage_long_messages(
    new_context: ContextFactory, api: SyncApi, make_user: UserFactory
) -> None:
    """Search over titles and messages; most recent activity first; usage page; show more."""
    user = make_user("sam")
    rest = api.as_user(user)
    made = {}
    for title in ("Sourdough at home", "Weekend hiking checklist", "Notes on async Python"):
        made[title] = rest.post("/api/v1/sessions", {"title": title}, expect=201)["session_id"]
    long_text = "Tell me about sourdough starters. " + "More detail, please. " * 60
    sent = rest.post(
        f"/api/v1/sessions/{made['Weekend hiking checklist']}/messages",
        {"content": long_text},
        expect=202,
    )
    rest.wait_run(sent["run"]["run_id"], {"completed"})

    page = signed_in_page(new_context, user)
    titles = tid(page, "session-title")
    # The session with the latest activity (a run) is on top, though created earlier.
    expect(titles).to_have_text(
        ["Weekend hiking checklist", "Notes on async Python", "Sourdough at home"]
    )
    search = tid(page, "session-search")
    search.fill("sourdough")  # a title, and the text of another session's message
    expect(titles).to_have_text(["Weekend hiking checklist", "Sourdough at home"])
    search.fill("no such thing anywhere")
    expect(titles).to_have_count(0)
    expect(tid(page, "sessions-empty")).to_have_text("No sessions match “no such thing anywhere”.")
    search.fill("")
    expect(titles).to_have_count(3)

    # A long message is collapsed behind "Show more".
    tid(page, "session-open").first.click()
    message = user_messages(page)
    expect(tid(message, "message-body")).to_have_class("msg-body collapsed")
    tid(message, "show-more").click()
    expect(tid(message, "show-more")).to_have_text("Show less")
    expect(tid(message, "show-more")).to_have_attribute("aria-expanded", "true")
    expect(tid(message, "message-body")).to_have_class("msg-body")

    # Each session keeps its own draft: switching away and back, or reloading, loses nothing.
    box = tid(page, "composer-input")
    box.fill("A half-written follow-up")
    tid(page, "session-open").nth(1).click()
    expect(tid(page, "conversation-title")).to_have_text("Notes on async Python")
    expect(box).to_have_value("")
    tid(page, "session-open").first.click()
    expect(box).to_have_value("A half-written follow-up")
    page.reload()
    expect(tid(page, "composer-input")).to_have_value("A half-written follow-up")

    # The usage page: totals, a bar per day, a row per day, as the API says.
    usage = rest.get("/api/v1/usage")
    tid(page, "usage-link").click()
    view = tid(page, "usage-view")
    expect(view).to_be_visible()
    tokens = usage["prompt_tokens"] + usage["completion_tokens"]
    expect(tid(view, "usage-totals")).to_contain_text(f"{tokens:,} tokens")
    expect(tid(view, "usage-row")).to_have_count(len(usage["days"]))
    expect(tid(view, "usage-chart").locator("rect")).to_have_count(len(usage["days"]))
    day = usage["days"][0]
    expect(tid(view, "usage-row").first.locator("th")).to_have_text(day["day"])
    expect(tid(page, "chat")).to_be_hidden()
