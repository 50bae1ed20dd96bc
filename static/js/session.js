// One open session: REST snapshot + live events into a SessionModel, and its actions.
//
// Opening: subscribe (after_seq 0) and GET the session at the same time; events are
// held until the snapshot is in, then applied on top (the model is idempotent), so a
// page reloaded mid-run rebuilds the running stage's text from the server's history.
// recovered:false or a gap: reload the snapshot (REST is the source of truth).

import { SessionModel, ACTIVE_RUN } from "./state.js";
import { charCount } from "./views/composer.js";
import { describeError } from "./util/format.js";

const AUTO_TITLE_CHARS = 60;

function autoTitle(text) {
  const line = text.trim().split("\n")[0].trim();
  if (charCount(line) <= AUTO_TITLE_CHARS) return line;
  return `${[...line].slice(0, AUTO_TITLE_CHARS - 1).join("").trimEnd()}…`;
}

/** What a failure's banner is about: "offline" ones go when the connection is back. */
const causeOf = (err) => (err?.code === "unreachable" ? "offline" : "general");

/** An error the composer can show as is. */
function userError(err) {
  const error = new Error(describeError(err));
  error.userMessage = error.message;
  error.cause = err;
  return error;
}

export class SessionController {
  /**
   * hooks: onChange(model) after any change; onGone(id) when the session does not exist;
   * onError(message, retry?, key?) for failures outside the composer (key "session-load"
   * for a snapshot that could not load); onLoaded() once a snapshot is in; onTitle(session);
   * onEvent(ev) for each event received (live or replayed), before it is applied.
   */
  constructor(sessionId, { api, socket, hooks }) {
    this.sessionId = sessionId;
    this.api = api;
    this.socket = socket;
    this.hooks = hooks;
    this.model = new SessionModel(sessionId);
    this.closed = false;
    this.loading = null; // the snapshot load in flight
    this.loadAgain = false;
    this.held = []; // events received while a snapshot loads
    this.runLoads = new Map();
  }

  open() {
    this.socket.watch(this.sessionId, this);
    this.reload();
  }

  close() {
    this.closed = true;
    this.socket.unwatch(this.sessionId);
  }

  /** Load the REST snapshot (again); concurrent calls coalesce into one more load. */
  reload() {
    if (this.loading) {
      this.loadAgain = true;
      return this.loading;
    }
    this.loading = (async () => {
      do {
        this.loadAgain = false;
        await this.loadSnapshot();
      } while (this.loadAgain && !this.closed);
      if (!this.closed) this.hooks.onLoaded?.();
    })()
      .catch((err) => this.onLoadError(err))
      .finally(() => {
        this.loading = null;
        const held = this.held;
        this.held = [];
        for (const ev of held) this.applyEvent(ev);
        this.changed();
      });
    return this.loading;
  }

  async loadSnapshot() {
    const body = await this.api.getSession(this.sessionId);
    if (this.closed) return;
    this.model.loadSession(body);
    const activeId = body?.active_run?.run_id ?? null;
    const pending = [];
    // A run we think is active but the server does not: we missed how it ended.
    for (const run of this.model.runs.values()) {
      if (ACTIVE_RUN.has(run.status) && run.run_id !== activeId) pending.push(this.loadRun(run.run_id));
    }
    // The last message never got an answer (failed or cancelled): load its run for Retry.
    const last = this.model.sortedMessages().at(-1);
    if (!activeId && last?.role === "user" && last.run_id && !this.model.runs.has(last.run_id)) {
      pending.push(this.loadRun(last.run_id));
    }
    await Promise.allSettled(pending);
  }

  onLoadError(err) {
    if (this.closed) return;
    if (err?.status === 404) this.hooks.onGone(this.sessionId);
    else if (err?.status !== 401) {
      this.hooks.onError(`Could not load the session: ${describeError(err)}`, () => this.reload(), "session-load");
    }
  }

  /** Load one run over REST (deduplicated) and merge it. */
  loadRun(runId) {
    if (this.runLoads.has(runId)) return this.runLoads.get(runId);
    const promise = this.api.getRun(runId).then((body) => {
      if (this.closed) return;
      this.model.upsertRun(body?.run ?? body, "rest");
      this.changed();
    });
    this.runLoads.set(runId, promise);
    const forget = () => this.runLoads.delete(runId);
    promise.then(forget, forget);
    return promise;
  }

  // --- socket handler -------------------------------------------------------------

  onSubscribed({ recovered }) {
    if (this.closed) return;
    if (!recovered) {
      this.model.markGaps();
      this.reload();
    } else if (!this.model.loaded && !this.loading) {
      this.reload(); // the first snapshot load failed earlier: try again now we are online
    }
  }

  onGap() {
    if (this.closed) return;
    this.model.markGaps();
    this.reload();
  }

  onEvent(ev) {
    if (this.closed) return;
    this.hooks.onEvent?.(ev);
    if (this.loading) this.held.push(ev);
    else this.applyEvent(ev);
  }

  onSubscribeError(err) {
    if (this.closed) return;
    if (err.code === "not_found") this.hooks.onGone(this.sessionId);
  }

  applyEvent(ev) {
    const { changed, missingRun, reload } = this.model.apply(ev);
    if (reload) this.reload(); // another branch was selected, one this tab has not loaded
    if (missingRun) this.loadRun(missingRun).catch(() => {});
    // The event carries the run's error; the stored run also says which stage failed and why.
    else if (ev.name === "run.failed" && ev.run_id) this.loadRun(ev.run_id).catch(() => {});
    if (changed) this.changed();
  }

  changed() {
    if (!this.closed) this.hooks.onChange(this);
  }

  // --- actions ----------------------------------------------------------------------

  /**
   * Post a message; rejects with a user-facing message (kept in the composer). While a run
   * is active the server's double-texting policy applies: by default the message is
   * queued (it shows under the conversation until it starts).
   */
  async send(text) {
    const firstMessage = this.model.messages.size === 0;
    let body;
    try {
      body = await this.api.postMessage(this.sessionId, text);
    } catch (err) {
      if (err.code === "session_busy") this.reload();
      throw userError(err);
    }
    this.model.upsertMessage(body?.message);
    if (body?.run) {
      this.model.upsertRun(body.run, "rest");
      this.model.syncSession(this.model.runs.get(body.run.run_id));
    }
    this.changed();
    if (firstMessage && !(this.model.session?.title || "").trim()) this.nameAfter(text);
  }

  async nameAfter(text) {
    const title = autoTitle(text);
    if (!title) return;
    try {
      const updated = await this.api.renameSession(this.sessionId, title);
      if (this.closed) return;
      this.model.session = { ...this.model.session, title: updated?.title ?? title };
      this.hooks.onTitle?.(this.model.session);
      this.changed();
    } catch {
      // best effort: an untitled session is fine
    }
  }

  /** The session was renamed elsewhere in this tab. */
  renamed(session) {
    if (session.session_id !== this.sessionId || !this.model.session) return;
    this.model.session = { ...this.model.session, title: session.title };
    this.changed();
  }

  /** Take a queued message off the queue; one that started meanwhile stays (reloaded). */
  async cancelQueued(message) {
    try {
      const body = await this.api.cancelQueued(this.sessionId, message.message_id);
      this.model.upsertMessage(body?.message);
      this.changed();
    } catch (err) {
      if (err.code === "message_not_queued") this.reload();
      else this.hooks.onError(`Could not cancel the queued message: ${describeError(err)}`, null, causeOf(err));
    }
  }

  async cancel(run) {
    try {
      const body = await this.api.cancelRun(run.run_id);
      this.model.upsertRun(body?.run ?? body, "rest");
      this.model.syncSession(this.model.runs.get(run.run_id));
      this.changed();
    } catch (err) {
      this.hooks.onError(`Could not cancel: ${describeError(err)}`, null, causeOf(err));
    }
  }

  /** Answer the approval a run awaits (output: the edited text, or null). */
  async approve(run, output) {
    await this.answer(run, () => this.api.approveRun(run.run_id, output), "approve");
  }

  async reject(run) {
    await this.answer(run, () => this.api.rejectRun(run.run_id), "reject");
  }

  async answer(run, call, verb) {
    try {
      const body = await call();
      this.model.upsertRun(body?.run ?? body, "rest");
      this.model.syncSession(this.model.runs.get(run.run_id));
      this.changed();
    } catch (err) {
      // Someone else answered first (another tab, a cancel, the timeout): show what happened.
      if (err.code === "not_awaiting_approval") this.loadRun(run.run_id).catch(() => {});
      this.hooks.onError(`Could not ${verb}: ${describeError(err)}`, null, causeOf(err));
    }
  }

  async retry(run) {
    try {
      const body = await this.api.retryRun(run.run_id);
      this.model.upsertRun(body?.run ?? body, "rest");
      this.model.syncSession(this.model.runs.get(run.run_id));
      this.changed();
    } catch (err) {
      if (err.code === "session_busy") this.reload();
      this.hooks.onError(`Could not retry: ${describeError(err)}`, null, causeOf(err));
    }
  }

  /** A run started by a branch action: the branch shown now ends at its input message. */
  startedRun(run, head) {
    if (!run) return;
    this.model.upsertRun(run, "rest");
    this.model.selectBranch(head ?? run.input_message_id);
    this.model.syncSession(this.model.runs.get(run.run_id));
    this.changed();
  }

  /** Answer the branch's last message again (a new branch beside the current answer). */
  async regenerate(message) {
    try {
      const body = await this.api.regenerateRun(message.run_id);
      this.startedRun(body?.run);
    } catch (err) {
      if (err.code === "session_busy" || err.code === "not_latest") this.reload();
      this.hooks.onError(`Could not regenerate: ${describeError(err)}`, null, causeOf(err));
    }
  }

  /** Resend an edit of a user message: the conversation forks there. Rejects to keep the editor open. */
  async edit(message, text) {
    let body;
    try {
      body = await this.api.editMessage(this.sessionId, text, message.message_id);
    } catch (err) {
      if (err.code === "session_busy") this.reload();
      throw userError(err);
    }
    this.model.upsertMessage(body?.message);
    this.startedRun(body?.run, body?.message?.message_id);
  }

  /** Re-run one stage of a finished run (with one model, if given). */
  async rerunStage(run, index, model = null) {
    try {
      const body = await this.api.rerunStage(run.run_id, index, model);
      this.startedRun(body?.run);
    } catch (err) {
      if (err.code === "session_busy") this.reload();
      this.hooks.onError(`Could not re-run the stage: ${describeError(err)}`, null, causeOf(err));
    }
  }

  /** Show another branch (a "< 2/3 >" switcher): the server picks its newest tip. */
  async showBranch(messageId) {
    try {
      const session = await this.api.selectBranch(this.sessionId, messageId);
      const head = session?.head_message_id;
      if (head && this.model.messages.has(head)) {
        this.model.selectBranch(head); // at once; the snapshot fills in what this tab lacks
        this.changed();
      }
      await this.reload();
    } catch (err) {
      if (err.code === "session_busy") this.reload();
      this.hooks.onError(`Could not show that branch: ${describeError(err)}`, null, causeOf(err));
    }
  }

  async loadOlder() {
    if (!this.model.olderCursor) return;
    try {
      const page = await this.api.listMessages(this.sessionId, this.model.olderCursor);
      this.model.addOlder(page);
      this.changed();
    } catch (err) {
      this.hooks.onError(`Could not load earlier messages: ${describeError(err)}`, null, causeOf(err));
      throw err;
    }
  }
}
