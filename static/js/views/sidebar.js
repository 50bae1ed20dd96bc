// The session list: most recent activity first, server-side search, status badges, relative times, inline rename,
// delete with confirmation, and "load more" over the paginated API.

import { byTestId, h, icon, setText, show } from "../util/dom.js";
import { describeError, fullTime, relativeTime, sessionTitle } from "../util/format.js";

const PAGE = 20;

export class Sidebar {
  /**
   * api: the REST client; onOpen(id) opens a session; onDeleted(id) after a delete;
   * onRenamed(session) after a rename;
   * confirm(message) resolves true to go ahead.
   */
  constructor(root, { api, onOpen, onDeleted, onRenamed, confirm, onError, onListed = () => {} }) {
    this.onListed = onListed;
    this.query = ""; // the search shown ("" = all sessions)
    this.loaded = false; // a first page arrived
    this.listToken = 0; // answers to older requests (a search typed further) are ignored
    this.root = root;
    this.api = api;
    this.onOpen = onOpen;
    this.onDeleted = onDeleted;
    this.onRenamed = onRenamed;
    this.confirm = confirm;
    this.onError = onError;
    this.list = byTestId(root, "session-list");
    this.more = byTestId(root, "load-more-sessions");
    this.empty = byTestId(root, "sessions-empty");
    this.error = byTestId(root, "sessions-error");
    this.sessions = new Map(); // id -> session, in display order
    this.items = new Map(); // id -> <li>
    this.total = 0;
    this.activeId = null;
    this.loaded = false;
    this.more.addEventListener("click", () => this.loadMore());
    this.clock = setInterval(() => this.refreshTimes(), 60_000);
  }

  /** Load the first page again (sign-in, reconnect). */
  async reload() {
    this.listToken++;
    this.sessions.clear();
    this.items.clear();
    this.list.replaceChildren();
    this.total = 0;
    await this.loadMore();
  }

  /** Fetch the next page (skip = sessions shown, since new ones were added at the top). */
  async loadMore() {
    this.more.disabled = true;
    show(this.error, false);
    const token = this.listToken;
    try {
      const page = await this.api.listSessions(this.sessions.size, PAGE, this.query);
      if (token !== this.listToken) return;
      this.loaded = true;
      this.total = Number(page?.total) || 0;
      for (const session of page?.items || []) this.upsert(session, { atTop: false });
    } catch (err) {
      this.error.textContent = `Could not load sessions: ${describeError(err)}`;
      show(this.error, true);
    } finally {
      this.more.disabled = false;
      this.updateFooter();
    }
  }

  /** Search titles and message text (server-side); "" lists every session again. */
  search(text) {
    const query = text.trim();
    if (query === this.query) return Promise.resolve();
    this.query = query;
    this.root.dataset.searching = String(Boolean(query));
    return this.reload();
  }

  updateFooter() {
    show(this.more, this.sessions.size < this.total);
    setText(this.empty, this.query ? `No sessions match “${this.query}”.` : "No sessions yet.");
    show(this.empty, this.loaded && this.sessions.size === 0 && this.error.hidden);
    this.onListed();
  }

  /** Add or refresh one session (new ones go on top). */
  upsert(session, { atTop = true } = {}) {
    if (!session || typeof session.session_id !== "string") return;
    const id = session.session_id;
    const isNew = !this.sessions.has(id);
    const known = this.sessions.get(id);
    const merged = { ...known, ...session };
    // Ordered by last activity: a session that moved goes to the top.
    const active = known && session.updated_at && session.updated_at > (known.updated_at || "");
    this.sessions.set(id, merged);
    let item = this.items.get(id);
    if (!item) {
      item = this.renderItem(id);
      this.items.set(id, item);
    }
    this.fill(item, merged);
    if (isNew) {
      if (atTop) {
        this.list.prepend(item);
        this.total += 1;
      } else this.list.append(item);
    } else if (active && atTop && this.list.firstElementChild !== item) this.list.prepend(item);
    this.updateFooter();
  }

  /** Refresh a session already listed (status, title, time); others are ignored. */
  update(session) {
    const known = session && this.sessions.get(session.session_id);
    if (!known) return;
    const changed = ["title", "status", "updated_at"].some((k) => k in session && session[k] !== known[k]);
    if (changed) this.upsert(session);
  }

  /** Fetch the first page again and merge it (after a reconnect); keeps later pages. */
  async refresh() {
    try {
      const page = await this.api.listSessions(0, PAGE, this.query);
      const items = page?.items || [];
      for (const session of [...items].reverse()) {
        if (this.sessions.has(session.session_id)) this.upsert(session);
        else this.upsert(session, { atTop: true });
      }
      this.total = Math.max(Number(page?.total) || 0, this.sessions.size);
      this.loaded = true;
      show(this.error, false); // whatever failed before, the list loads now
      this.updateFooter();
    } catch {
      // the next reconnect or reload tries again
    }
  }

  remove(id) {
    this.items.get(id)?.remove();
    this.items.delete(id);
    if (this.sessions.delete(id)) this.total = Math.max(0, this.total - 1);
    this.updateFooter();
  }

  setActive(id) {
    this.activeId = id;
    for (const [sid, item] of this.items) {
      const open = item.querySelector("[data-testid=session-open]");
      if (sid === id) open.setAttribute("aria-current", "page");
      else open.removeAttribute("aria-current");
    }
  }

  renderItem(id) {
    const open = h(
      "button",
      { type: "button", class: "session-open", testid: "session-open", on: { click: () => this.onOpen(id) } },
      h("span", { class: "session-title", testid: "session-title" }),
      h("span", { class: "session-meta" },
        h("span", { class: "badge", testid: "session-status" }),
        h("time", { class: "muted", testid: "session-time" })),
    );
    const rename = h("button", { type: "button", class: "icon-button", testid: "session-rename", on: { click: () => this.startRename(id) } }, icon("pencil"));
    const del = h("button", { type: "button", class: "icon-button", testid: "session-delete", on: { click: () => this.delete(id) } }, icon("trash"));
    const li = h("li", { class: "session-item", testid: "session-item", dataset: { sessionId: id } },
      open, h("span", { class: "session-actions" }, rename, del));
    if (id === this.activeId) open.setAttribute("aria-current", "page");
    return li;
  }

  fill(item, session) {
    const title = sessionTitle(session);
    const titleEl = item.querySelector("[data-testid=session-title]");
    setText(titleEl, title);
    titleEl.title = title; // the whole title, when one line cuts it
    const badge = item.querySelector("[data-testid=session-status]");
    setText(badge, session.status || "idle");
    badge.dataset.status = session.status || "idle";
    const when = session.updated_at || session.started_at;
    const time = item.querySelector("[data-testid=session-time]");
    time.dateTime = when || "";
    time.title = fullTime(when);
    setText(time, relativeTime(when));
    item.querySelector("[data-testid=session-rename]").setAttribute("aria-label", `Rename “${title}”`);
    item.querySelector("[data-testid=session-delete]").setAttribute("aria-label", `Delete “${title}”`);
  }

  refreshTimes() {
    for (const [id, item] of this.items) {
      const session = this.sessions.get(id);
      const when = session.updated_at || session.started_at;
      setText(item.querySelector("[data-testid=session-time]"), relativeTime(when));
    }
  }

  startRename(id) {
    const item = this.items.get(id);
    const session = this.sessions.get(id);
    if (!item || item.querySelector("[data-testid=session-rename-input]")) return;
    const open = item.querySelector("[data-testid=session-open]");
    const titleEl = item.querySelector("[data-testid=session-title]");
    const input = h("input", {
      type: "text", class: "rename-input", testid: "session-rename-input", maxlength: 200,
      value: session.title || "", "aria-label": "Session title",
    });
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      const title = input.value.trim();
      input.remove();
      open.prepend(titleEl);
      item.classList.remove("renaming");
      item.querySelector("[data-testid=session-rename]").focus();
      if (!save || title === (session.title || "")) return;
      try {
        const updated = await this.api.renameSession(id, title);
        const session = updated && updated.session_id ? updated : { session_id: id, title };
        this.upsert(session);
        this.onRenamed(session);
      } catch (err) {
        this.onError(`Could not rename: ${describeError(err)}`);
      }
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        finish(true);
      } else if (e.key === "Escape") {
        e.preventDefault();
        finish(false);
      }
    });
    input.addEventListener("blur", () => finish(true));
    // The input lives outside the open button so typing never opens the session.
    titleEl.remove();
    item.classList.add("renaming");
    item.prepend(input);
    input.focus();
    input.select();
  }

  async delete(id) {
    const title = sessionTitle(this.sessions.get(id));
    if (!(await this.confirm(`Delete “${title}” with all its messages? This cannot be undone.`))) return;
    try {
      await this.api.deleteSession(id);
    } catch (err) {
      if (err.status !== 404) {
        this.onError(`Could not delete: ${describeError(err)}`);
        return;
      }
    }
    this.remove(id);
    this.onDeleted(id);
  }

  /** Forget everything (sign-out). */
  clear() {
    this.sessions.clear();
    this.items.clear();
    this.list.replaceChildren();
    this.total = 0;
    this.activeId = null;
    this.loaded = false;
    show(this.more, false);
    show(this.empty, false);
  }
}
