"""The API keys page: create a key (shown once, copied), use it with the openai SDK,
revoke it, and see it refused; the per-user limit is one human sentence.
"""

from __future__ import annotations

import openai
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ContextFactory, UserFactory
from tests.e2e.support import LiveServer, sign_in_context, tid
from tests.support.api import SyncApi, User

pytestmark = pytest.mark.e2e

KEYS_PER_USER = 20  # API_KEYS_PER_USER's default


def keys_page(new_context: ContextFactory, user: User) -> Page:
    """A signed-in page (clipboard allowed) on the API keys page, reached from the sidebar."""
    context = new_context(permissions=["clipboard-read", "clipboard-write"])
    sign_in_context(context, user)
    page = context.new_page()
    page.goto("/")
    tid(page, "api-keys-link").click()
    expect(tid(page, "api-keys-view")).to_be_visible()
    expect(tid(page, "api-keys-link")).to_have_attribute("aria-current", "page")
    expect(tid(page, "api-keys-empty")).to_be_visible()
    return page


def ui_create_key(page: Page, name: str) -> str:
    """Create a key from the form with the keyboard; return the key shown once."""
    tid(page, "api-key-name").fill(name)
    tid(page, "api-key-name").press("Enter")
    expect(tid(page, "api-key-created")).to_be_visible()
    expect(tid(page, "api-key-copy")).to_be_focused()
    return tid(page, "api-key-secret").inner_text()


def models(live_server: LiveServer, key: str) -> list[str]:
    """GET /v1/models with the real openai SDK and this key."""
    with openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=key, max_retries=0) as client:
        return [m.id for m in client.models.list()]


def test_create_use_revoke_a_key_in_the_ui(
    new_context: ContextFactory, make_user: UserFactory, api: SyncApi, live_server: LiveServer
) -> None:
    """The key is shown once and copied; it works with the SDK until revoked, then 401."""
    user = make_user("keys")
    page = keys_page(new_context, user)
    key = ui_create_key(page, "laptop")
    assert key.startswith("chk_")
    expect(tid(page, "api-key-created")).to_contain_text("you won't see it again")
    tid(page, "api-key-copy").click()
    assert page.evaluate("() => navigator.clipboard.readText()") == key
    row = tid(page, "api-key-row")
    expect(row).to_have_count(1)
    expect(tid(row, "api-key-label")).to_have_text("laptop")
    expect(tid(row, "api-key-prefix")).to_have_text(key[:12] + "…")
    expect(tid(row, "api-key-last-used")).to_have_text("never")
    tid(page, "api-key-done").click()
    expect(tid(page, "api-key-created")).to_be_hidden()
    expect(tid(page, "api-key-name")).to_be_focused()
    assert key not in page.content()  # gone from the page once dismissed

    pipelines = [p["name"] for p in api.as_user(user).get("/api/v1/pipelines")["pipelines"]]
    assert sorted(models(live_server, key)) == sorted(pipelines)
    page.reload()  # the page's route survives a reload; last use is listed
    expect(tid(tid(page, "api-key-row"), "api-key-last-used")).to_have_text("just now")

    tid(page, "api-key-revoke").click()
    dialog = tid(page, "confirm-dialog")
    expect(tid(dialog, "confirm-text")).to_contain_text('Revoke the API key "laptop"?')
    expect(tid(dialog, "confirm-cancel")).to_be_focused()
    tid(dialog, "confirm-ok").click()
    expect(tid(page, "api-key-revoked")).to_be_visible()
    expect(tid(page, "api-key-revoke")).to_have_count(0)
    with pytest.raises(openai.AuthenticationError) as refused:
        models(live_server, key)
    assert refused.value.status_code == 401


def test_cancelled_revoke_and_too_many_keys(
    new_context: ContextFactory, make_user: UserFactory, api: SyncApi
) -> None:
    """Cancelling the confirmation keeps the key; the limit is said in one sentence."""
    user = make_user("many")
    page = keys_page(new_context, user)
    ui_create_key(page, "kept")
    tid(page, "api-key-revoke").click()
    tid(tid(page, "confirm-dialog"), "confirm-cancel").click()
    expect(tid(page, "api-key-revoke")).to_have_count(1)

    rest = api.as_user(user)
    for i in range(KEYS_PER_USER - 1):
        rest.post("/api/v1/api-keys", {"name": f"script {i}"}, expect=201)
    tid(page, "api-key-done").click()
    tid(page, "api-key-name").fill("one too many")
    tid(page, "api-key-create").click()
    error = tid(page, "api-keys-error")
    expect(error).to_have_text(
        "You have as many active API keys as allowed: "
        "revoke one you no longer use, then create a new one."
    )
    expect(tid(page, "api-key-row")).to_have_count(KEYS_PER_USER)
    expect(tid(page, "api-key-created")).to_be_hidden()
