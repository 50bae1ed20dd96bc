// The open conversation: header, history (keyed, updated in place), load-older.

import { byTestId, h, nearBottom, setText, show } from "../util/dom.js";
import { fullTime, relativeTime, sessionTitle, usageText } from "../util/format.js";
import { RunView, StageOutputs } from "./run.js";

class UserMessageView {
  constructor(message) {
    this.body = h("div", { class: "msg-body", testid: "message-body" });
    this.time = h("time", { class: "msg-time muted" });
    this.el = h("li", { class: "msg msg-user", testid: "message", dataset: { role: "user", messageId: message.message_id } },
      this.body, this.time);
  }

  update({ message }) {
    setText(this.body, message.content); // user text is always text, never HTML
    this.time.dateTime = message.created_at || "";
    this.time.title = fullTime(message.created_at);
    setText(this.time, relativeTime(message.created_at));
  }
}

/** Make links in rendered answers open safely in a new tab. */
function hardenLinks(root) {
  for (const a of root.querySelectorAll("a[href]")) {
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow";
  }
}

class AnswerView {
  constructor(message, { onLoadRun }) {
    this.onLoadRun = onLoadRun;
    this.body = h("div", { class: "msg-body markdown", testid: "message-body" });
    this.usage = h("span", { class: "muted run-usage", testid: "run-usage" });
    this.outputs = new StageOutputs();
    this.detailsNote = h("p", { class: "muted", testid: "run-details-note" });
    this.summary = h("summary", { text: "Pipeline stages", testid: "run-details-summary" });
    this.details = h("details", { class: "run-details", testid: "run-details" }, this.summary, this.detailsNote, this.outputs.el);
    this.details.addEventListener("toggle", () => this.maybeLoad());
    this.el = h("li", { class: "msg msg-assistant", testid: "message", dataset: { role: "assistant", messageId: message.message_id } },
      this.body, h("div", { class: "run-meta" }, this.usage), this.details);
    this.renderedHtml = null;
    this.requested = false;
  }

  update({ message, run }) {
    this.message = message;
    this.run = run;
    if (typeof message.content_html === "string") {
      // Rendered and sanitized by the server (markdown-it + nh3): the only HTML we insert.
      if (this.renderedHtml !== message.content_html) {
        this.body.innerHTML = message.content_html;
        hardenLinks(this.body);
        this.renderedHtml = message.content_html;
      }
    } else {
      this.body.classList.add("plain");
      setText(this.body, message.content);
    }
    show(this.details, Boolean(message.run_id));
    setText(this.usage, run ? usageText(run.usage) : "");
    if (run) {
      const done = run.stages.filter((s) => s.status === "completed").length;
      setText(this.summary, `Pipeline stages (${done})`);
      setText(this.detailsNote, "");
      show(this.detailsNote, false);
      this.outputs.update(run.stages);
    } else {
      show(this.detailsNote, this.requested);
    }
  }

  async maybeLoad() {
    if (!this.details.open || this.run || this.requested || !this.message?.run_id) return;
    this.requested = true;
    setText(this.detailsNote, "Loading…");
    show(this.detailsNote, true);
    try {
      await this.onLoadRun(this.message.run_id);
    } catch {
      this.requested = false;
      setText(this.detailsNote, "Could not load the stages. Close and open again to retry.");
    }
  }
}

export class ConversationView {
  /** actions: onCancel(run), onRetry(run), onLoadRun(runId), onLoadOlder(), skewMs() */
  constructor(root, actions) {
    this.root = root;
    this.actions = actions;
    this.empty = byTestId(root, "no-session");
    this.chat = byTestId(root, "chat");
    this.title = byTestId(root, "conversation-title");
    this.status = byTestId(root, "conversation-status");
    this.pipeline = byTestId(root, "conversation-pipeline");
    this.scroll = byTestId(root, "messages-scroll");
    this.timeline = byTestId(root, "timeline");
    this.older = byTestId(root, "load-older");
    this.loading = byTestId(root, "conversation-loading");
    this.views = new Map();
    this.anchor = null;
    this.older.addEventListener("click", () => this.loadOlder());
    this.ticker = setInterval(() => this.tick(), 1000);
  }

  /** Show the empty state (no session open). */
  clear() {
    this.views.clear();
    this.timeline.replaceChildren();
    show(this.chat, false);
    show(this.empty, true);
  }

  /** Show a session that is loading. */
  showLoading(sessionId) {
    this.clear();
    this.sessionId = sessionId;
    show(this.empty, false);
    show(this.chat, true);
    setText(this.title, "…");
    setText(this.status, "");
    setText(this.pipeline, "");
    show(this.older, false);
    show(this.loading, true);
  }

  /** Bring the DOM in line with the model (called at most once per frame). */
  render(model) {
    const stick = nearBottom(this.scroll);
    const session = model.session || {};
    setText(this.title, sessionTitle(session));
    setText(this.status, session.status || "idle");
    this.status.dataset.status = session.status || "idle";
    setText(this.pipeline, session.pipeline ? `pipeline: ${session.pipeline}` : "");
    show(this.loading, !model.loaded);
    show(this.older, Boolean(model.olderCursor));
    const latest = model.latestRun();
    const items = model.timeline();
    this.reconcile(items, latest);
    this.root.dataset.busy = String(model.busy());
    if (this.anchor !== null) {
      // Older messages were added above: keep the one the reader was looking at in place.
      this.scroll.scrollTop = this.scroll.scrollHeight - this.anchor;
      this.anchor = null;
    } else if (stick) this.scrollToBottom();
  }

  reconcile(items, latest) {
    const keep = new Set(items.map((i) => i.key));
    for (const [key, view] of this.views) {
      if (!keep.has(key)) {
        view.el.remove();
        this.views.delete(key);
      }
    }
    let cursor = this.timeline.firstElementChild;
    for (const item of items) {
      let view = this.views.get(item.key);
      if (!view) {
        view = this.createView(item);
        this.views.set(item.key, view);
      }
      if (item.kind === "run") view.update(item.run, { latest: item.run === latest });
      else view.update(item);
      if (view.el !== cursor) this.timeline.insertBefore(view.el, cursor);
      else cursor = cursor.nextElementSibling;
    }
  }

  createView(item) {
    if (item.kind === "user") return new UserMessageView(item.message);
    if (item.kind === "run") return new RunView(item.run, this.actions);
    return new AnswerView(item.message, this.actions);
  }

  async loadOlder() {
    this.older.disabled = true;
    this.anchor = this.scroll.scrollHeight - this.scroll.scrollTop;
    try {
      await this.actions.onLoadOlder();
    } catch {
      this.anchor = null;
    } finally {
      this.older.disabled = false;
    }
  }

  scrollToBottom() {
    this.scroll.scrollTop = this.scroll.scrollHeight;
  }

  tick() {
    for (const view of this.views.values()) {
      if (view instanceof RunView) view.tick();
    }
  }
}
