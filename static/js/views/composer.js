// The message box: Enter sends, Shift+Enter breaks the line, a counter against the limit.
// Never locked: while a run is active the box stays editable, and a send follows the
// session's double-texting policy — by default the message is queued (shown under the
// conversation, cancellable) and starts after the answer; a send the server refuses
// (409 session_busy, a session set to "reject") keeps the draft and says why.

import { byTestId, setText, show } from "../util/dom.js";

export const MAX_CHARS = 20_000;
const DRAFTS = "chorus.drafts"; // sessionStorage: {session_id: text}, this tab only

function readDrafts() {
  try {
    const drafts = JSON.parse(sessionStorage.getItem(DRAFTS) || "{}");
    return drafts && typeof drafts === "object" ? drafts : {};
  } catch {
    return {};
  }
}

function writeDrafts(drafts) {
  try {
    sessionStorage.setItem(DRAFTS, JSON.stringify(drafts));
  } catch {
    // storage full or refused: the draft lives as long as the page
  }
}

/** Forget every draft (sign-out). */
export function clearDrafts() {
  try {
    sessionStorage.removeItem(DRAFTS);
  } catch {
    // nothing kept
  }
}

/** Length as the server counts it (code points, not UTF-16 units). */
export function charCount(text) {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

export class Composer {
  /** onSend(text) returns a promise; it rejects to keep the text in the box. */
  constructor(form, { onSend }) {
    this.form = form;
    this.onSend = onSend;
    this.input = byTestId(form, "composer-input");
    this.counter = byTestId(form, "char-count");
    this.button = byTestId(form, "send");
    this.error = byTestId(form, "composer-error");
    this.hint = byTestId(form, "composer-hint");
    this.busy = false; // a run is active
    this.sending = false;
    this.sessionId = null;
    this.input.addEventListener("input", () => {
      this.keepDraft();
      this.refresh();
    });
    this.input.addEventListener("keydown", (e) => {
      // isComposing: Enter also confirms IME input; that must not send.
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing && !e.altKey && !e.ctrlKey && !e.metaKey) {
        e.preventDefault();
        this.submit();
      }
    });
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    this.refresh();
  }

  async submit() {
    const text = this.input.value;
    if (!this.canSend()) return;
    this.sending = true;
    this.setError("");
    this.refresh();
    try {
      await this.onSend(text);
      if (this.input.value === text) this.input.value = "";
      this.keepDraft();
    } catch (err) {
      this.errorCode = err?.cause?.code ?? err?.code ?? null;
      this.setError(err?.userMessage || err?.message || String(err));
    } finally {
      this.sending = false;
      this.refresh();
    }
  }

  canSend() {
    const text = this.input.value;
    const count = charCount(text);
    return !this.sending && text.trim().length > 0 && count <= MAX_CHARS;
  }

  /**
   * Note whether a run is active (the hint says so; sending is still allowed to try):
   * false, true, or "awaiting" (paused until the user approves a stage).
   */
  setBusy(busy) {
    if (this.busy === busy) return;
    this.busy = busy;
    // The "still answering" note has lost its cause: the draft can go now.
    if (!busy && this.errorCode === "session_busy") this.setError("");
    this.refresh();
  }

  setError(message) {
    if (!message) this.errorCode = null;
    setText(this.error, message);
    show(this.error, Boolean(message));
  }

  refresh() {
    const count = charCount(this.input.value);
    const over = count > MAX_CHARS;
    setText(this.counter, `${count} / ${MAX_CHARS}`);
    this.counter.classList.toggle("over", over);
    this.input.setAttribute("aria-invalid", String(over));
    this.button.disabled = !this.canSend();
    let hint = "";
    if (this.sending) hint = "Sending…";
    else if (this.busy === "awaiting") hint = "Waiting for your approval above… a message sent now waits its turn.";
    else if (this.busy) hint = "Answering… a message sent now waits its turn.";
    else if (over) hint = `Too long by ${count - MAX_CHARS} characters.`;
    setText(this.hint, hint);
    this.form.dataset.state = this.sending ? "sending" : this.busy ? "busy" : "ready";
  }

  /** Switch to another session's box: each session keeps its draft (also over a reload). */
  setSession(sessionId) {
    this.sessionId = sessionId;
    this.input.value = (sessionId && readDrafts()[sessionId]) || "";
    this.setError("");
    this.sending = false;
    this.refresh();
  }

  keepDraft() {
    if (!this.sessionId) return;
    const drafts = readDrafts();
    if (this.input.value.trim()) drafts[this.sessionId] = this.input.value;
    else delete drafts[this.sessionId];
    writeDrafts(drafts);
  }

  focus() {
    this.input.focus();
  }

  /** Put a text in the box (a suggested prompt) and focus it. */
  fill(text) {
    this.input.value = text;
    this.keepDraft();
    this.refresh();
    this.input.focus();
  }
}
