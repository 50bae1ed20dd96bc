// The open conversation: header, history (keyed, updated in place), load-older.

import { copyButton, setHtml } from "../markdown/view.js";
import { byTestId, h, nearBottom, setText, show } from "../util/dom.js";
import { fullTime, relativeTime, sessionTitle, usageText } from "../util/format.js";
import { RunView, StageOutputs } from "./run.js";

// A user message longer than this is collapsed behind "Show more".
const LONG_CHARS = 700;
const LONG_LINES = 12;

export function isLong(text) {
  return text.length > LONG_CHARS || text.split("\n").length > LONG_LINES;
}

/** "< 2/3 >": move between a message's alternatives (its siblings on other branches). */
class BranchSwitcher {
  constructor({ onBranch }) {
    this.onBranch = onBranch;
    this.prev = h("button", { type: "button", class: "icon-button branch-step", testid: "branch-prev", "aria-label": "Previous version",
      on: { click: () => this.go(-1) } }, "‹");
    this.label = h("span", { class: "muted branch-position", testid: "branch-position" });
    this.next = h("button", { type: "button", class: "icon-button branch-step", testid: "branch-next", "aria-label": "Next version",
      on: { click: () => this.go(1) } }, "›");
    this.el = h("span", { class: "branch-switcher", testid: "branch-switcher", role: "group", "aria-label": "Versions" },
      this.prev, this.label, this.next);
    this.position = null;
  }

  update(position, busy) {
    this.position = position;
    show(this.el, Boolean(position));
    if (!position) return;
    setText(this.label, position.label);
    this.prev.disabled = busy || position.index === 0;
    this.next.disabled = busy || position.index === position.ids.length - 1;
  }

  go(step) {
    const target = this.position?.ids[this.position.index + step];
    if (target) this.onBranch(target);
  }
}

/** Edit a sent message in place and resend it as a new branch. */
class MessageEditor {
  constructor({ onSubmit, onClose }) {
    this.onSubmit = onSubmit;
    this.onClose = onClose;
    this.input = h("textarea", { class: "edit-input", testid: "edit-input", rows: "3", "aria-label": "Edit your message" });
    this.error = h("p", { class: "form-error", role: "alert", testid: "edit-error" });
    this.send = h("button", { type: "submit", class: "primary", testid: "edit-send" }, "Send");
    this.cancel = h("button", { type: "button", class: "secondary", testid: "edit-cancel", on: { click: () => this.onClose() } }, "Cancel");
    this.el = h("form", { class: "msg-editor", testid: "message-editor", on: { submit: (e) => this.submit(e) } },
      this.input, this.error, h("div", { class: "msg-actions" }, this.cancel, this.send));
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Escape") this.onClose();
      else if (e.key === "Enter" && !e.shiftKey && !e.isComposing) this.submit(e);
    });
    show(this.error, false);
  }

  open(text) {
    this.input.value = text;
    show(this.error, false);
    this.input.focus();
  }

  async submit(e) {
    e.preventDefault();
    const text = this.input.value;
    if (!text.trim() || this.send.disabled) return;
    this.send.disabled = true;
    try {
      await this.onSubmit(text);
    } catch (err) {
      setText(this.error, err?.userMessage ?? String(err?.message ?? err));
      show(this.error, true);
    } finally {
      this.send.disabled = false;
    }
  }
}

class UserMessageView {
  constructor(message, { onEdit, onBranch } = {}) {
    this.onEdit = onEdit;
    this.body = h("div", { class: "msg-body", testid: "message-body", id: `msg-${message.message_id}` });
    this.time = h("time", { class: "msg-time muted" });
    this.more = h("button", {
      type: "button", class: "link-button show-more", testid: "show-more", "aria-controls": this.body.id,
      on: { click: () => this.toggle() },
    });
    this.copy = copyButton(() => this.message.content, { label: "Copy", testid: "copy-message" });
    this.editButton = h("button", { type: "button", class: "link-button", testid: "edit-message",
      on: { click: () => this.startEdit() } }, "Edit");
    this.switcher = new BranchSwitcher({ onBranch });
    this.editor = new MessageEditor({ onSubmit: (text) => this.resend(text), onClose: () => this.stopEdit() });
    show(this.editor.el, false);
    this.actionsRow = h("div", { class: "msg-actions" }, this.switcher.el, this.more, this.editButton, this.copy, this.time);
    this.el = h("li", { class: "msg msg-user", testid: "message", dataset: { role: "user", messageId: message.message_id } },
      this.body, this.editor.el, this.actionsRow);
    this.expanded = false;
    this.editing = false;
  }

  update({ message, siblings = null }, { busy = false } = {}) {
    this.message = message;
    this.switcher.update(siblings, busy);
    show(this.editButton, Boolean(this.onEdit) && !busy && !this.editing);
    setText(this.body, message.content); // user text is always text, never HTML
    this.time.dateTime = message.created_at || "";
    this.time.title = fullTime(message.created_at);
    setText(this.time, relativeTime(message.created_at));
    const long = isLong(message.content || "");
    show(this.more, long);
    this.body.classList.toggle("collapsed", long && !this.expanded);
    setText(this.more, this.expanded ? "Show less" : "Show more");
    this.more.setAttribute("aria-expanded", String(this.expanded));
  }

  toggle() {
    this.expanded = !this.expanded;
    this.body.classList.toggle("collapsed", isLong(this.message.content || "") && !this.expanded);
    setText(this.more, this.expanded ? "Show less" : "Show more");
    this.more.setAttribute("aria-expanded", String(this.expanded));
  }

  startEdit() {
    this.editing = true;
    show(this.body, false);
    show(this.actionsRow, false);
    show(this.editor.el, true);
    this.editor.open(this.message.content || "");
  }

  stopEdit() {
    this.editing = false;
    show(this.editor.el, false);
    show(this.body, true);
    show(this.actionsRow, true);
    show(this.editButton, true);
    this.editButton.focus();
  }

  async resend(text) {
    await this.onEdit(this.message, text); // rejects (the editor stays open, saying why)
    this.stopEdit();
  }
}

class AnswerView {
  constructor(message, { onLoadRun, onRegenerate, onBranch, onRerunStage, models }) {
    this.onLoadRun = onLoadRun;
    this.models = models ?? (() => []);
    this.onRegenerate = onRegenerate;
    this.switcher = new BranchSwitcher({ onBranch });
    this.regenerate = h("button", { type: "button", class: "link-button", testid: "regenerate",
      on: { click: () => this.onRegenerate?.(this.message) } }, "Regenerate");
    this.body = h("div", { class: "msg-body markdown", testid: "message-body" });
    this.usage = h("span", { class: "muted run-usage", testid: "run-usage" });
    this.outputs = new StageOutputs({
      onRerun: onRerunStage ? (index, model) => this.run && onRerunStage(this.run, index, model) : null,
    });
    this.detailsNote = h("p", { class: "muted", testid: "run-details-note" });
    this.summary = h("summary", { text: "Pipeline stages", testid: "run-details-summary" });
    this.details = h("details", { class: "run-details", testid: "run-details" }, this.summary, this.detailsNote, this.outputs.el);
    this.details.addEventListener("toggle", () => this.maybeLoad());
    this.el = h("li", { class: "msg msg-assistant", testid: "message", dataset: { role: "assistant", messageId: message.message_id } },
      this.body,
      h("div", { class: "run-meta msg-actions" }, this.switcher.el,
        copyButton(() => this.message?.content ?? "", { label: "Copy", testid: "copy-message" }), this.regenerate, this.usage),
      this.details);
    this.renderedHtml = null;
    this.requested = false;
  }

  update({ message, run, siblings = null }, { busy = false, last = false } = {}) {
    this.message = message;
    this.run = run;
    this.switcher.update(siblings, busy);
    show(this.regenerate, last && !busy && Boolean(message.run_id) && Boolean(this.onRegenerate));
    if (typeof message.content_html === "string") {
      // Rendered and sanitized by the server (markdown-it + nh3), the source of truth for
      // a finished answer; sanitized again here and given highlighting and copy buttons.
      if (this.renderedHtml !== message.content_html) {
        setHtml(this.body, message.content_html);
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
      // A stage of the branch's last answer can be re-run (with another model).
      this.outputs.update(run.stages, { rerun: last && !busy && run.assistant_message_id === message.message_id, models: this.models() });
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

/** A message waiting behind the active run, with its Cancel button. */
class QueuedMessageView {
  constructor(message, { onCancelQueued }) {
    this.body = h("div", { class: "msg-body", testid: "message-body" });
    this.label = h("span", { class: "badge", testid: "queued-label" });
    this.cancel = h("button", {
      type: "button", class: "link-button", testid: "cancel-queued", text: "Cancel",
      on: { click: () => {
        this.cancel.disabled = true;
        onCancelQueued(this.message);
      } },
    });
    this.el = h("li", { class: "msg msg-user msg-queued", testid: "queued-message", dataset: { messageId: message.message_id } },
      this.body, h("div", { class: "msg-actions" }, this.label, this.cancel));
  }

  update(message) {
    this.message = message;
    setText(this.body, message.content);
    setText(this.label, message.double_texting === "interrupt" ? "Next, once the answer stops" : "Queued");
    this.cancel.setAttribute("aria-label", `Cancel the queued message: ${message.content.slice(0, 60)}`);
  }
}

export class ConversationView {
  /**
   * actions: onCancel(run), onRetry(run), onApprove(run, output), onReject(run),
   * onLoadRun(runId), onLoadOlder(), skewMs(), announce(text), onSuggest(text),
   * onCancelQueued(message), onEdit(message, text), onRegenerate(message),
   * onBranch(messageId), onRerunStage(run, index, model), models()
   */
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
    this.suggestions = byTestId(root, "suggestions");
    for (const button of this.suggestions.querySelectorAll("button")) {
      button.addEventListener("click", () => actions.onSuggest(button.textContent.trim()));
    }
    this.queuedBox = byTestId(root, "queued");
    this.queuedList = byTestId(root, "queued-list");
    this.queuedViews = new Map();
    this.views = new Map();
    this.shown = false; // the open session has been rendered once (later answers are announced)
    this.anchor = null;
    this.older.addEventListener("click", () => this.loadOlder());
    this.ticker = setInterval(() => this.tick(), 1000);
  }

  /** Show the empty state (no session open). */
  clear() {
    this.views.clear();
    this.shown = false;
    this.timeline.replaceChildren();
    this.queuedViews.clear();
    this.queuedList.replaceChildren();
    show(this.queuedBox, false);
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
    this.reconcile(items, latest, { busy: model.busy(), lastAnswer: model.lastAnswer() });
    this.renderQueued(model.queuedMessages());
    show(this.suggestions, model.loaded && items.length === 0);
    this.shown = this.shown || model.loaded;
    this.root.dataset.busy = String(model.busy());
    if (this.anchor !== null) {
      // Older messages were added above: keep the one the reader was looking at in place.
      this.scroll.scrollTop = this.scroll.scrollHeight - this.anchor;
      this.anchor = null;
    } else if (stick) this.scrollToBottom();
  }

  reconcile(items, latest, { busy = false, lastAnswer = null } = {}) {
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
        if (item.kind === "assistant" && this.shown) this.actions.announce("The answer is ready.");
      }
      if (item.kind === "run") view.update(item.run, { latest: item.run === latest, live: this.shown });
      else view.update(item, { busy, last: item.message === lastAnswer });
      if (view.el !== cursor) this.timeline.insertBefore(view.el, cursor);
      else cursor = cursor.nextElementSibling;
    }
  }

  /** The queue under the conversation, in the order it starts. */
  renderQueued(messages) {
    const keep = new Set(messages.map((m) => m.message_id));
    for (const [id, view] of this.queuedViews) {
      if (!keep.has(id)) {
        view.el.remove();
        this.queuedViews.delete(id);
      }
    }
    for (const message of messages) {
      let view = this.queuedViews.get(message.message_id);
      if (!view) {
        view = new QueuedMessageView(message, this.actions);
        this.queuedViews.set(message.message_id, view);
      }
      view.update(message);
      this.queuedList.append(view.el); // appending in order moves each into place
    }
    show(this.queuedBox, messages.length > 0);
  }

  createView(item) {
    if (item.kind === "user") return new UserMessageView(item.message, this.actions);
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
