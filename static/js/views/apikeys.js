// The API keys page (#/api-keys): list the user's keys, create one (the key is shown
// once, with a Copy button), revoke one after a confirmation. REST: /api/v1/api-keys.

import { byTestId, h, setText, show } from "../util/dom.js";
import { describeError, fullTime, relativeTime } from "../util/format.js";
import { copyButton } from "../markdown/view.js";

/** One human sentence for a failed key action. */
export function describeKeyError(err, action) {
  if (err?.code === "too_many_api_keys") {
    return "You have as many active API keys as allowed: revoke one you no longer use, then create a new one.";
  }
  if (err?.status === 404) return "That key does not exist any more. The list is up to date now.";
  return `Could not ${action}: ${describeError(err)}`;
}

function when(iso, never = "never") {
  if (!iso) return h("span", { class: "muted", text: never });
  return h("time", { datetime: iso, title: fullTime(iso), text: relativeTime(iso) });
}

export class ApiKeysView {
  /** confirm(message, label) resolves true when the user confirms; announce(text). */
  constructor(root, { api, confirm, announce }) {
    this.root = root;
    this.api = api;
    this.confirm = confirm;
    this.announce = announce;
    this.form = byTestId(root, "api-key-form");
    this.name = byTestId(root, "api-key-name");
    this.submit = byTestId(root, "api-key-create");
    this.error = byTestId(root, "api-keys-error");
    this.created = byTestId(root, "api-key-created");
    this.secret = byTestId(root, "api-key-secret");
    this.table = byTestId(root, "api-keys-table");
    this.empty = byTestId(root, "api-keys-empty");
    this.status = byTestId(root, "api-keys-status");
    this.created.querySelector(".key-reveal").append(
      copyButton(() => this.secret.textContent, { label: "Copy key", testid: "api-key-copy", describedBy: "api-key-secret" }));
    byTestId(root, "api-key-done").addEventListener("click", () => this.hideCreated(true));
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.create();
    });
  }

  async open() {
    show(this.root, true);
    this.hideCreated(false);
    this.showError(null);
    await this.reload();
  }

  close() {
    this.hideCreated(false);
    show(this.root, false);
  }

  showError(message) {
    setText(this.error, message || "");
    show(this.error, Boolean(message));
  }

  hideCreated(focus) {
    setText(this.secret, "");
    show(this.created, false);
    if (focus) this.name.focus();
  }

  async reload() {
    setText(this.status, "Loading…");
    try {
      const body = await this.api.listApiKeys();
      this.render(Array.isArray(body?.items) ? body.items : []);
      setText(this.status, "");
    } catch (err) {
      setText(this.status, "");
      this.showError(describeKeyError(err, "load your API keys"));
    }
  }

  async create() {
    this.submit.disabled = true;
    this.showError(null);
    try {
      const key = await this.api.createApiKey(this.name.value.trim());
      this.name.value = "";
      this.secret.textContent = key.key;
      show(this.created, true);
      byTestId(this.created, "api-key-copy").focus();
      this.announce(`API key ${key.name || key.prefix} created. Copy it now: you won't see it again.`);
      await this.reload();
    } catch (err) {
      this.showError(describeKeyError(err, "create the key"));
      // Keys made elsewhere (the CLI, another tab) are why the limit is reached: list them.
      if (err?.code === "too_many_api_keys") await this.reload();
    } finally {
      this.submit.disabled = false;
    }
  }

  async revoke(key) {
    const label = key.name || key.prefix;
    const question = `Revoke the API key "${label}"? Programs that use it stop working at once.`;
    if (!(await this.confirm(question, "Revoke"))) return;
    this.showError(null);
    try {
      await this.api.revokeApiKey(key.key_id);
      this.announce(`API key ${label} revoked.`);
    } catch (err) {
      this.showError(describeKeyError(err, "revoke the key"));
    }
    await this.reload();
    this.name.focus();
  }

  render(items) {
    show(this.empty, items.length === 0);
    show(this.table, items.length > 0);
    const rows = [...items].reverse().map((key) => this.row(key));
    this.table.querySelector("tbody").replaceChildren(...rows);
  }

  row(key) {
    const label = key.name || "(no name)";
    const revoked = Boolean(key.revoked_at);
    const action = revoked
      ? h("span", { class: "muted", testid: "api-key-revoked" }, "Revoked ", when(key.revoked_at))
      : h("button", {
        type: "button", class: "secondary", testid: "api-key-revoke", "aria-label": `Revoke ${label}`,
        on: { click: () => this.revoke(key) },
      }, "Revoke");
    return h("tr", { testid: "api-key-row", class: revoked ? "revoked" : null, dataset: { keyId: key.key_id } },
      h("th", { scope: "row", testid: "api-key-label", text: label }),
      h("td", {}, h("code", { testid: "api-key-prefix", text: `${key.prefix}…` })),
      h("td", {}, when(key.created_at)),
      h("td", { testid: "api-key-last-used" }, when(key.last_used_at)),
      h("td", { class: "align-right" }, action));
  }
}
