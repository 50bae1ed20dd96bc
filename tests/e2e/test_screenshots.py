"""Screenshots of the main screens, desktop and phone, light and dark.

Saved under artifacts/screenshots/ as <screen>-<device>-<scheme>.png for people to look
at; each also checks the layout holds (nothing wider than the screen, the composer and
the top bar on screen). The run-control states too: a regenerated answer's branch
switcher, a run paused at an approval gate, follow-ups queued behind a busy run, and the
usage page's line on today's budget (the server has a daily token budget).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import DESKTOP, ContextFactory, UserFactory
from tests.e2e.support import (
    ARTIFACTS,
    answers,
    sign_in_context,
    tid,
    ui_login,
    user_messages,
    wait_streaming,
)
from tests.support.api import SyncApi

pytestmark = pytest.mark.e2e

# Slow enough that four pages can each be photographed while the same run's draft streams
# (about 12 s at 80 ms a token; at 30 ms, about 4 s, the draft sometimes ended first on a
# loaded 2-core machine).
DEMO_TOKEN_DELAY_MS = 80
SERVER_ENV = {"BUDGET_TOKENS_PER_DAY": "1000000"}  # the usage page shows what is left
SHOTS = ARTIFACTS / "screenshots"
PHONE = {"width": 390, "height": 844}


@dataclass(frozen=True)
class Variant:
    """A screen size and colour scheme."""

    device: str
    scheme: str

    @property
    def options(self) -> dict[str, Any]:
        """The browser context options."""
        if self.device == "phone":
            return {
                "viewport": PHONE,
                "device_scale_factor": 2,
                "is_mobile": True,
                "has_touch": True,
                "color_scheme": self.scheme,
            }
        return {"viewport": DESKTOP, "color_scheme": self.scheme}

    def name(self, screen: str) -> str:
        """The file name of a screenshot of this variant."""
        return f"{screen}-{self.device}-{self.scheme}.png"


VARIANTS = [Variant(d, s) for d in ("desktop", "phone") for s in ("light", "dark")]


def check_layout(page: Page, *, app: bool = True) -> None:
    """Nothing sticks out sideways; in the app, the top bar and the composer are on screen."""
    overflow = page.evaluate(
        """() => [...document.querySelectorAll("body *")]
            .filter((el) => el.getClientRects().length && !el.closest(".scroll, pre, table"))
            .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1)
            .map((el) => el.dataset.testid || el.className || el.tagName)"""
    )
    assert not overflow, f"wider than the screen: {overflow}"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    if app:
        for testid in ("sidebar-toggle" if page.viewport_size == PHONE else "sidebar", "send"):
            expect(tid(page, testid)).to_be_in_viewport()
        expect(tid(page, "composer-input")).to_be_in_viewport()
        expect(tid(page, "logout")).to_be_in_viewport()


def shoot(page: Page, variant: Variant, screen: str) -> None:
    """Save a screenshot of the page."""
    path = SHOTS / variant.name(screen)
    page.screenshot(path=path, animations="disabled")
    assert path.stat().st_size > 5_000


def test_screenshots_of_the_main_screens(
    new_context: ContextFactory, api: SyncApi, make_user: UserFactory
) -> None:
    """Sign-in, a conversation, a live run, a cancelled run, usage, the phone's session list."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    user = make_user("casey")
    rest = api.as_user(user)
    for title in ("Weekend hiking checklist", "Notes on async Python"):
        rest.post("/api/v1/sessions", {"title": title}, expect=201)
    session = rest.post("/api/v1/sessions", {"title": "Sourdough at home"}, expect=201)
    session_id = session["session_id"]
    first = rest.post(
        f"/api/v1/sessions/{session_id}/messages",
        {"content": "How do I bake a good sourdough loaf at home?"},
        expect=202,
    )
    rest.wait_run(first["run"]["run_id"], {"completed"})

    pages: dict[Variant, Page] = {}
    for variant in VARIANTS:
        page = new_context(**variant.options).new_page()
        pages[variant] = page
        page.goto("/")
        expect(tid(page, "login-form")).to_be_visible()
        check_layout(page, app=False)
        shoot(page, variant, "signin")
        ui_login(page, user)
        page.goto(f"/#/s/{session_id}")
        expect(answers(page)).to_have_count(1)
        expect(tid(page, "conversation-title")).to_have_text("Sourdough at home")
        expect(tid(page, "conn-status")).to_have_attribute("data-state", "online")
        expect(tid(page, "composer")).to_have_attribute("data-state", "ready")
        check_layout(page)
        shoot(page, variant, "conversation")

    # A second message: every page watches the same run stream live.
    second = rest.post(
        f"/api/v1/sessions/{session_id}/messages",
        {"content": "And how do I keep the starter alive while travelling?"},
        expect=202,
    )
    for variant, page in pages.items():
        card = tid(page, "run")
        # Past the first stage, so the picture shows done, running and pending stages.
        expect(card.locator('[data-testid="stage"][data-status="completed"]')).not_to_have_count(0)
        expect(tid(card, "stream-text")).not_to_be_empty()
        expect(card.locator('[data-testid="stage"][data-status="running"]')).to_have_count(1)
        check_layout(page)
        shoot(page, variant, "live-run")
    run_path = f"/api/v1/runs/{second['run']['run_id']}"
    rest.post(f"{run_path}/cancel", expect=202)

    # Cancelled: the stopped stage's text stays, marked; the composer holds a draft. (If the
    # cancel landed between two stages, no stage was streaming: the run ends with no text
    # to keep, and the picture shows that instead.)
    for variant, page in pages.items():
        card = tid(page, "run")
        expect(card).to_have_attribute("data-status", "cancelled")
        if any(stage.get("partial") for stage in rest.get(run_path)["stages"]):
            expect(tid(card, "stopped-output")).to_be_visible()
        tid(page, "composer-input").fill("Thanks! One more question about flour…")
        check_layout(page)
        shoot(page, variant, "cancelled")

    # The usage page.
    for variant, page in pages.items():
        page.goto("/#/usage")
        expect(tid(page, "usage-row").first).to_be_visible()
        expect(tid(page, "usage-budget")).to_contain_text("Left today:")
        check_layout(page, app=False)  # no composer here
        expect(tid(page, "logout")).to_be_in_viewport()
        shoot(page, variant, "usage")
        page.goto(f"/#/s/{session_id}")
        expect(tid(page, "run")).to_have_attribute("data-status", "cancelled")

    # Phones: the session list slides in over the conversation.
    for variant, page in pages.items():
        if variant.device != "phone":
            continue
        expect(tid(page, "run")).to_have_attribute("data-status", "cancelled")
        tid(page, "sidebar-toggle").click()
        expect(tid(page, "sidebar")).to_be_in_viewport()
        expect(tid(page, "session-item")).to_have_count(3)
        expect(tid(page, "sidebar-backdrop")).to_be_visible()
        page.wait_for_function(
            "() => getComputedStyle(document.querySelector('.sidebar')).transform === 'none'"
        )
        shoot(page, variant, "sessions")


def test_screenshots_of_a_first_run(new_context: ContextFactory, make_user: UserFactory) -> None:
    """A new user's welcome, then a new session's suggested prompts."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for variant in VARIANTS:
        user = make_user(f"newbie-{variant.device}-{variant.scheme}")  # no sessions yet
        page = new_context(**variant.options).new_page()
        page.goto("/")
        ui_login(page, user)
        expect(tid(page, "first-run-hint")).to_be_visible()
        expect(tid(page, "no-session-title")).to_have_text("Welcome to Chorus")
        check_layout(page, app=False)
        shoot(page, variant, "welcome")
        tid(page, "new-session-empty").click()
        tid(page, "new-session-create").click()
        expect(tid(page, "suggestions")).to_be_visible()
        tid(page, "suggestion").first.click()
        expect(tid(page, "composer-input")).not_to_have_value("")
        check_layout(page)
        shoot(page, variant, "new-session")


def test_screenshots_of_run_control(
    new_context: ContextFactory, api: SyncApi, make_user: UserFactory
) -> None:
    """A regenerated answer (branch switcher), an approval gate, queued follow-ups."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    user = make_user("robin")
    rest = api.as_user(user)

    def new_session(title: str, pipeline: str = "default") -> str:
        body = {"title": title, "pipeline": pipeline}
        return str(rest.post("/api/v1/sessions", body, expect=201)["session_id"])

    def send(session_id: str, content: str) -> dict[str, Any]:
        path = f"/api/v1/sessions/{session_id}/messages"
        sent: dict[str, Any] = rest.post(path, {"content": content}, expect=202)
        return sent

    # Both runs stream at once: one to regenerate, one to pause at its gate.
    tea = new_session("Green tea")
    reviewed = new_session("Reviewed plan", pipeline="reviewed")
    first = send(tea, "How do I brew green tea?")["run"]["run_id"]
    gated = send(reviewed, "Plan a picnic in the park")["run"]["run_id"]
    rest.wait_run(first, {"completed"})
    again = rest.post(f"/api/v1/runs/{first}/regenerate", expect=202)["run"]["run_id"]
    rest.wait_run(gated, {"awaiting_approval"})
    rest.wait_run(again, {"completed"})

    pages: dict[Variant, Page] = {}
    for variant in VARIANTS:
        context = new_context(**variant.options)
        sign_in_context(context, user)
        page = pages[variant] = context.new_page()
        page.goto(f"/#/s/{tea}")
        expect(tid(page, "conn-status")).to_have_attribute("data-state", "online")
        expect(tid(answers(page), "branch-position")).to_have_text("2/2")
        expect(tid(answers(page), "regenerate")).to_be_visible()
        expect(tid(user_messages(page), "edit-message")).to_be_visible()
        expect(tid(page, "composer")).to_have_attribute("data-state", "ready")
        check_layout(page)
        shoot(page, variant, "branches")

        page.goto(f"/#/s/{reviewed}")
        card = tid(page, "run")
        expect(card).to_have_attribute("data-status", "awaiting_approval")
        expect(tid(card, "approval-output")).not_to_have_value("")
        expect(tid(card, "approve-run")).to_be_visible()
        tid(card, "approval").scroll_into_view_if_needed()
        check_layout(page)
        shoot(page, variant, "approval")

    # A run that stalls mid-plan stays busy: follow-ups sent meanwhile wait in the queue.
    # (Started only now, so it is stuck for the few seconds the pictures take.)
    lyon = new_session("Trip to Lyon")
    stalled = send(lyon, "Plan a weekend in Lyon [[fail:stall]]")["run"]["run_id"]
    queued = [send(lyon, text) for text in ("On a budget, please", "And vegetarian food")]
    assert [q["outcome"] for q in queued] == ["queued", "queued"]
    for variant, page in pages.items():
        page.goto(f"/#/s/{lyon}")
        wait_streaming(page, "plan")
        expect(tid(page, "queued-message")).to_have_count(2)
        expect(tid(page, "cancel-queued")).to_have_count(2)
        expect(tid(page, "composer-hint")).to_contain_text("waits its turn")
        tid(page, "composer-input").fill("And a good bakery?")
        check_layout(page)
        shoot(page, variant, "queued")

    # Leave nothing running: the queue emptied first, or the run's end would start it.
    for q in queued:
        rest.call("DELETE", f"/api/v1/sessions/{lyon}/messages/{q['message']['message_id']}")
    rest.post(f"/api/v1/runs/{stalled}/cancel", expect=202)
    rest.post(f"/api/v1/runs/{gated}/reject", expect=200)
    rest.wait_run(stalled, {"cancelled"})
