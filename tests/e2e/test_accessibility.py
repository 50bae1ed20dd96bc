"""axe-core on the main screens (no serious or critical violation), keyboard shortcuts,
theme, banners that clear themselves, the true reason of a sign-out, and the client's
markdown (code highlighting, copy, aligned tables) under the page's strict CSP.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ContextFactory, UserFactory
from tests.e2e.support import answers, sign_in_context, tid, ui_new_session, ui_send
from tests.support.api import SyncApi

pytestmark = pytest.mark.e2e

AXE = "/static/vendor/axe-core/axe.min.js"
# Installed before the page's scripts: every CSP violation is noted.
CSP_WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample}`));
"""


def axe_problems(page: Page) -> list[dict[str, Any]]:
    """Run axe-core on the page; return its serious and critical violations."""
    if not page.evaluate("() => Boolean(window.axe)"):
        page.add_script_tag(url=AXE)
    result = page.evaluate("() => axe.run(document, { resultTypes: ['violations'] })")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def assert_accessible(page: Page, screen: str) -> None:
    """No serious or critical axe violation on this screen."""
    problems = axe_problems(page)
    assert not problems, f"{screen}: {problems}"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_main_screens_pass_axe(
    new_context: ContextFactory, api: SyncApi, make_user: UserFactory, scheme: str
) -> None:
    """Sign-in, empty state, a conversation, a failed run, usage, API keys, dialogs."""
    context = new_context(color_scheme=scheme)
    page = context.new_page()
    page.goto("/")
    expect(tid(page, "login-form")).to_be_visible()
    assert_accessible(page, "sign-in")

    user = make_user(f"axe-{scheme}")
    sign_in_context(context, user)
    page.goto("/")
    expect(tid(page, "first-run-hint")).to_be_visible()
    assert_accessible(page, "first run")

    ui_new_session(page, title="Accessible", pipeline="chat")
    expect(tid(page, "suggestions")).to_be_visible()
    assert_accessible(page, "new session")
    ui_send(page, "Explain photosynthesis briefly")
    expect(answers(page)).to_have_count(1)
    tid(answers(page), "run-details-summary").click()
    assert_accessible(page, "conversation")
    ui_send(page, f"Now fail please, {scheme} [[fail:400*2]]")
    expect(tid(page, "run")).to_have_attribute("data-status", "failed")
    tid(page, "failure-details").locator("summary").click()
    assert_accessible(page, "failed run")

    tid(page, "shortcuts-button").click()
    expect(tid(page, "shortcuts-dialog")).to_be_visible()
    assert_accessible(page, "shortcuts")
    page.keyboard.press("Escape")
    tid(page, "usage-link").click()
    expect(tid(page, "usage-row").first).to_be_visible()
    assert_accessible(page, "usage")
    tid(page, "api-keys-link").click()
    expect(tid(page, "api-keys-empty")).to_be_visible()
    assert_accessible(page, "API keys, none yet")
    tid(page, "api-key-name").fill("axe")
    tid(page, "api-key-create").click()
    expect(tid(page, "api-key-created")).to_be_visible()
    expect(tid(page, "api-key-row")).to_have_count(1)
    assert_accessible(page, "API keys, a new key shown")
    tid(page, "api-key-revoke").click()
    expect(tid(page, "confirm-dialog")).to_be_visible()
    assert_accessible(page, "API keys, revoke confirmation")
    tid(page, "confirm-ok").click()
    expect(tid(page, "api-key-revoked")).to_be_visible()
    assert_accessible(page, "API keys, a revoked key")


def test_shortcuts_theme_and_banners(new_context: ContextFactory, make_user: UserFactory) -> None:
    """Shortcuts work and are listed; the theme sticks; the demo banner can be dismissed."""
    user = make_user("kit")
    context = new_context()
    sign_in_context(context, user)
    page = context.new_page()
    page.goto("/")
    expect(tid(page, "conn-status")).to_have_attribute("data-state", "online")

    page.keyboard.press("Control+/")
    dialog = tid(page, "shortcuts-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("kbd").first).to_have_text("Ctrl+Shift+O")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    page.keyboard.press("Control+k")
    expect(tid(page, "session-search")).to_be_focused()
    page.keyboard.press("Control+Shift+O")
    expect(tid(page, "new-session-dialog")).to_be_visible()
    tid(page, "new-session-create").click()
    expect(tid(page, "chat")).to_be_visible()
    tid(page, "conversation-title").click()
    page.keyboard.press("Shift+Escape")
    expect(tid(page, "composer-input")).to_be_focused()

    tid(page, "theme-select").select_option("dark")
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    dark = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    tid(page, "demo-dismiss").click()
    expect(tid(page, "demo-banner")).to_be_hidden()
    page.reload()
    expect(tid(page, "theme-select")).to_have_value("dark")
    assert page.evaluate("() => getComputedStyle(document.body).backgroundColor") == dark
    expect(tid(page, "demo-banner")).to_be_hidden()  # stays dismissed
    tid(page, "theme-select").select_option("light")
    assert page.evaluate("() => getComputedStyle(document.body).backgroundColor") != dark


def test_signing_out_in_one_tab_tells_the_other_the_true_reason(
    new_context: ContextFactory, make_user: UserFactory
) -> None:
    """The other tab says "You signed out in another tab", not "your sign-in has expired"."""
    user = make_user("two")
    context = new_context()
    sign_in_context(context, user)
    first, second = context.new_page(), context.new_page()
    for page in (first, second):
        page.goto("/")
        expect(tid(page, "conn-status")).to_have_attribute("data-state", "online")
    tid(first, "logout").click()
    expect(tid(first, "auth-view")).to_be_visible()
    expect(tid(second, "auth-view")).to_be_visible()
    expect(tid(second, "login-error")).to_have_text("You signed out in another tab.")


def test_session_error_banner_clears_when_the_session_loads(
    new_context: ContextFactory, make_user: UserFactory
) -> None:
    """ "Could not load the session" goes away by itself once the session loads."""
    user = make_user("ban")
    context = new_context()
    sign_in_context(context, user)
    page = context.new_page()
    page.goto("/")
    session_id = ui_new_session(page, title="Flaky network")
    page.goto("/")
    failing = {"on": True}

    def route(r: Any) -> None:
        if failing["on"]:
            r.fulfill(status=500, json={"error": {"code": "internal_error", "message": "Boom"}})
        else:
            r.continue_()

    page.route(f"**/api/v1/sessions/{session_id}", route)
    page.goto(f"/#/s/{session_id}")
    expect(tid(page, "global-error-text")).to_contain_text("Could not load the session")
    failing["on"] = False
    tid(page, "conversation-title").click()  # the banner is not in the way of other clicks
    page.evaluate("() => chorus.session.reload()")
    expect(tid(page, "global-error")).to_be_hidden()


def test_client_markdown_under_the_strict_csp(
    new_context: ContextFactory, make_user: UserFactory
) -> None:
    """Streamed code gets a label, highlighting and a copy button; tables align by class."""
    user = make_user("md")
    context = new_context(permissions=["clipboard-read", "clipboard-write"])
    context.add_init_script(CSP_WATCH)
    sign_in_context(context, user)
    page = context.new_page()
    page.goto("/")
    expect(tid(page, "app-view")).to_be_visible()
    text = (
        "Intro with [a link](https://example.com) and "
        "<img src=x onerror=alert(1)> [bad](javascript:alert(1))\n\n"
        "| item | qty | price |\n|:-----|:---:|------:|\n| tea | 2 | 3.50 |\n\n"
        "```python\ndef double(x):\n    return x * 2  # twice\n```\n\nThe end."
    )
    page.evaluate(
        """async (text) => {
            const { MarkdownView } = await import("/static/js/markdown/view.js");
            const el = document.createElement("div");
            el.className = "markdown";
            el.dataset.testid = "md-probe";
            document.querySelector("main.conversation").append(el);
            const view = new MarkdownView(el);
            for (let end = 3; end < text.length; end += 3) view.set(text.slice(0, end));
            view.set(text);
        }""",
        text,
    )
    probe = tid(page, "md-probe")
    expect(probe.locator("td.align-right")).to_have_text("3.50")
    assert probe.locator("td.align-right").evaluate("(td) => getComputedStyle(td).textAlign") == (
        "right"
    )
    expect(tid(probe, "code-lang")).to_have_text("python")
    expect(probe.locator("code.hljs .hljs-keyword").first).to_have_text("def")
    expect(probe.locator("a")).to_have_count(1)  # javascript: is not a link
    expect(probe.locator("a")).to_have_attribute("rel", "noopener noreferrer nofollow")
    expect(probe.locator("img")).to_have_count(0)  # raw HTML is text
    tid(probe, "copy-code").click()
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied == "def double(x):\n    return x * 2  # twice\n"
    assert page.evaluate("() => window.__csp") == []
