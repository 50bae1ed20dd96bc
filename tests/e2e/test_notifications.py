"""Browser notifications: asked for only from the switch, shown when a run of the open
session ends while the tab is hidden, and a click brings the session back.

The page's ``document.hidden`` and ``Notification`` are stubbed (a headless browser has no
background tabs and no notification centre to look at): what is tested is the UI's own
wiring — the switch, the decision on real run events, the click.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ContextFactory, UserFactory
from tests.e2e.support import answers, sign_in_context, tid, ui_new_session, ui_send

pytestmark = pytest.mark.e2e

STUBS = """
(() => {
  let hidden = false;
  window.__setHidden = (value) => { hidden = value; };
  Object.defineProperty(Document.prototype, "hidden", { configurable: true, get: () => hidden });
  window.__asked = 0;
  window.__notifications = [];
  class StubNotification extends EventTarget {
    static permission = "default";
    static async requestPermission() {
      window.__asked += 1;
      StubNotification.permission = "granted";
      return "granted";
    }
    constructor(title, options) {
      super();
      this.title = title;
      this.options = options;
      window.__notifications.push(this);
    }
    close() {}
  }
  window.Notification = StubNotification;
})();
"""


def shown(page: Page) -> list[dict[str, Any]]:
    """The notifications the page created: title, body, tag."""
    result: list[dict[str, Any]] = page.evaluate(
        "() => window.__notifications.map((n) => ({title: n.title, ...n.options}))"
    )
    return result


def stubbed_page(new_context: ContextFactory, make_user: UserFactory) -> Page:
    """A signed-in page with the stubs in place, before any script of the UI runs."""
    context = new_context()
    context.add_init_script(STUBS)
    sign_in_context(context, make_user("notify"))
    page = context.new_page()
    page.goto("/")
    return page


def test_a_run_ending_in_a_hidden_tab_notifies(
    new_context: ContextFactory, make_user: UserFactory
) -> None:
    page = stubbed_page(new_context, make_user)
    switch = tid(page, "notify-switch")
    expect(switch).not_to_be_checked()
    assert page.evaluate("() => window.__asked") == 0  # never asked on load
    switch.click()
    expect(switch).to_be_checked()
    assert page.evaluate("() => window.__asked") == 1
    session_id = ui_new_session(page, "Tea time")

    ui_send(page, "visible tab")
    expect(answers(page)).to_have_count(1)
    assert shown(page) == []  # the tab is in front: nothing to tell

    page.evaluate("() => window.__setHidden(true)")
    ui_send(page, "hidden tab")
    page.wait_for_function("() => window.__notifications.length === 1")
    [note] = shown(page)
    assert note["title"] == "Chorus: Answer ready"
    assert note["body"] == "Tea time has an answer."
    expect(answers(page)).to_have_count(2)

    tid(page, "usage-link").click()
    expect(tid(page, "usage-view")).to_be_visible()
    page.evaluate("() => window.__notifications[0].dispatchEvent(new Event('click'))")
    expect(page).to_have_url(f"{page.url.split('#')[0]}#/s/{session_id}")
    expect(tid(page, "chat")).to_be_visible()
    assert len(shown(page)) == 1


def test_the_switch_remembers_and_turns_off(
    new_context: ContextFactory, make_user: UserFactory
) -> None:
    page = stubbed_page(new_context, make_user)
    tid(page, "notify-switch").click()
    expect(tid(page, "notify-switch")).to_be_checked()
    tid(page, "notify-switch").click()
    expect(tid(page, "notify-switch")).not_to_be_checked()
    assert page.evaluate("() => localStorage.getItem('chorus.notify')") == "off"
    ui_new_session(page)
    page.evaluate("() => window.__setHidden(true)")
    ui_send(page, "switched off")
    expect(answers(page)).to_have_count(1)
    assert shown(page) == []
