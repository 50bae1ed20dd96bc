// The state of one open session: messages and runs, built from REST snapshots and
// WebSocket events. Pure (no DOM): every update is idempotent and never moves a stage
// or run backwards within one generation, so a replay that overlaps a newer REST
// snapshot converges on the same state.

import { branchPath, headAfter, siblingPosition } from "./branches.js";
import { ACTIVE_RUN, applyRunEvent, normRun, mergeRun, str } from "./run-state.js";

export { ACTIVE_RUN };
// Events carrying {message}: stored, queued, cancelled while queued, amended into a run.
const MESSAGE_EVENTS = new Set(["message.created", "message.queued", "message.cancelled", "run.amended"]);
/** Messages in the session snapshot (the server's RECENT_MESSAGES). */
export const RECENT_PAGE = 50;

function byTime(a, b) {
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? -1 : 1;
  if (a.role !== b.role) return a.role === "user" ? -1 : 1;
  return a.message_id < b.message_id ? -1 : 1;
}

export class SessionModel {
  constructor(sessionId) {
    this.sessionId = sessionId;
    this.session = null;
    this.messages = new Map(); // every message seen, of any branch
    this.head = null; // the tip of the branch shown (the session's head_message_id)
    // Messages sent while a run was active, waiting their turn (double texting): not in
    // the history until they start (message.created), gone when cancelled.
    this.queued = new Map();
    this.runs = new Map();
    // {before, beforeId}: the (created_at, message_id) to page back from; null = nothing older
    this.olderCursor = null;
    this.loaded = false;
    this.version = 0;
  }

  /** Install a GET /sessions/{id} body (REST is the source of truth). */
  loadSession(body) {
    const { messages = [], active_run: activeRun = null, queued = [], ...session } = body || {};
    this.session = { ...this.session, ...session };
    const list = Array.isArray(messages) ? messages : [];
    // The snapshot's queue is the queue: one that started or was cancelled meanwhile goes.
    this.queued = new Map();
    if (!this.loaded) {
      const oldest = list[0];
      this.olderCursor =
        list.length >= RECENT_PAGE ? { before: oldest.created_at, beforeId: oldest.message_id } : null;
    }
    for (const message of list) this.upsertMessage(message);
    for (const message of Array.isArray(queued) ? queued : []) this.upsertMessage(message);
    this.head = str(session.head_message_id) ?? list.at(-1)?.message_id ?? this.head;
    if (activeRun && activeRun.run_id) this.upsertRun(activeRun, "rest");
    this.loaded = true;
    this.version++;
  }

  /** Add an older page of GET /sessions/{id}/messages. */
  addOlder(page) {
    for (const message of page?.items || []) this.upsertMessage(message);
    const before = str(page?.next_before);
    this.olderCursor = before ? { before, beforeId: str(page?.next_before_id) } : null;
    this.version++;
  }

  /**
   * Add or merge a message by its status: "queued" waits in the queue, "cancelled" leaves
   * it, anything else (sent) is history. A message in the history never goes back to
   * the queue (a late or replayed message.queued).
   */
  upsertMessage(message) {
    if (!message || typeof message.message_id !== "string") return false;
    const id = message.message_id;
    if (message.status === "queued" || message.status === "cancelled") {
      if (this.messages.has(id)) return false;
      if (message.status === "queued") this.queued.set(id, { ...this.queued.get(id), ...message });
      else if (!this.queued.delete(id)) return false;
      this.version++;
      return true;
    }
    this.queued.delete(id);
    const known = this.messages.get(id);
    this.messages.set(id, { ...known, ...message });
    this.version++;
    return true;
  }

  /** The queue in the order it starts: interrupting messages first, then the oldest. */
  queuedMessages() {
    const rank = (m) => (m.double_texting === "interrupt" ? 0 : 1);
    return [...this.queued.values()].sort(
      (a, b) => rank(a) - rank(b) || (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : 0)
    );
  }

  /** Add or merge a run; source "rest" (a snapshot) or "event" (run.queued). */
  upsertRun(raw, source = "rest") {
    if (!raw || typeof raw.run_id !== "string") return false;
    const incoming = normRun(raw);
    const known = this.runs.get(incoming.run_id);
    if (!known) {
      this.runs.set(incoming.run_id, incoming);
    } else {
      // run.queued opens a generation: what follows belongs to it.
      if (source === "event") known.eventGen = incoming.generation;
      if (incoming.generation < known.generation) return false; // an older generation's replay
      if (incoming.generation > known.generation) {
        this.runs.set(incoming.run_id, incoming); // a retry: stages restart from the snapshot
        const kept = known.stages.filter((s) => s.status === "completed");
        for (const stage of kept) {
          const fresh = incoming.stages[stage.index];
          if (fresh && fresh.status === "completed") fresh.retries = stage.retries;
        }
      } else mergeRun(known, incoming);
    }
    this.version++;
    return true;
  }

  /** Forget partial text that may miss pieces (events were lost); mark it as such. */
  markGaps() {
    for (const run of this.runs.values()) {
      for (const stage of run.stages) {
        if (stage.status === "running") {
          stage.partial = "";
          stage.gap = true;
          stage.partialSeq = null;
        }
      }
    }
    this.version++;
  }

  /**
   * Apply one event. Returns {changed, missingRun}: missingRun names a run the event
   * refers to that this model does not know (the caller may load it over REST).
   */
  apply(ev) {
    const data = ev && ev.data && typeof ev.data === "object" ? ev.data : {};
    const name = ev?.name;
    // A message stored (or a queued one started) or amended into a run extends the branch
    // shown when its parent is the tip; one queued or cancelled only changes the queue.
    if (name === "message.created" || name === "run.amended") return { changed: this.addMessage(data.message) };
    if (MESSAGE_EVENTS.has(name)) return { changed: this.upsertMessage(data.message) };
    if (name === "branch.selected") {
      const head = str(data.head_message_id);
      if (!head) return { changed: false };
      this.selectBranch(head);
      // A branch this tab has not loaded: the caller reloads the session (REST).
      return { changed: true, reload: !this.messages.has(head) };
    }
    if (name === "run.queued") {
      const changed = this.upsertRun(data.run, "event");
      if (changed) this.syncSession(this.runs.get(data.run.run_id), ev.ts);
      return { changed };
    }
    const runId = str(ev.run_id) ?? str(data.run_id);
    if (name === "run.completed") this._addAnswer(data.message, runId);
    const run = runId ? this.runs.get(runId) : null;
    if (!run) return { changed: name === "run.completed", missingRun: runId };
    if (run.eventGen < run.generation) return { changed: false }; // replay of a retried generation
    const changed = applyRunEvent(run, name, data, ev.ts ?? null, { seq: Number(ev.seq), epoch: str(ev.epoch) });
    if (changed) {
      this.syncSession(run, ev.ts);
      this.version++;
    }
    return { changed };
  }

  _addAnswer(message, runId) {
    if (!message || typeof message !== "object") return;
    this.addMessage({ role: "assistant", run_id: runId, ...message });
  }

  /** A message just stored: it extends the branch shown if its parent is the tip. */
  addMessage(message) {
    if (!this.upsertMessage(message)) return false;
    this.head = headAfter(this.head, message);
    return true;
  }

  /** Show the branch ending at this message. */
  selectBranch(head) {
    this.head = head;
    this.version++;
  }

  /** The branch shown, oldest first (every known message, by time, if its tip is not known). */
  branchMessages() {
    if (!this.head || !this.messages.has(this.head)) return this.sortedMessages();
    return branchPath(this.messages, this.head);
  }

  /** {ids, index, label} for the message's "< 2/3 >" switcher, or null without alternatives. */
  siblings(message) {
    return siblingPosition(this.messages, message);
  }

  /** The last message of the branch shown when it is an answer: the one to regenerate. */
  lastAnswer() {
    const last = this.branchMessages().at(-1);
    return last?.role === "assistant" ? last : null;
  }

  /** Mirror a run's status on the session when it is the latest run. */
  syncSession(run, ts = null) {
    if (!run || !this.session) return;
    const latest = this.latestRun();
    if (latest && latest.run_id !== run.run_id) return;
    this.session.status = run.status;
    this.session.active_run_id = ACTIVE_RUN.has(run.status) ? run.run_id : null;
    if (ts) this.session.updated_at = ts;
  }

  /** The run in progress (a stage re-run can make an older run active), else the most
   * recently created run known. */
  latestRun() {
    let latest = null;
    for (const run of this.runs.values()) {
      const active = ACTIVE_RUN.has(run.status);
      if (!latest || (active !== ACTIVE_RUN.has(latest.status) ? active : run.created_at > latest.created_at)) {
        latest = run;
      }
    }
    return latest;
  }

  /** The run in progress, if any. */
  activeRun() {
    const latest = this.latestRun();
    return latest && ACTIVE_RUN.has(latest.status) ? latest : null;
  }

  /** Whether a new message would be refused (a run is queued or running). */
  busy() {
    return Boolean(this.activeRun()) || ACTIVE_RUN.has(this.session?.status);
  }

  /** Messages oldest first. */
  sortedMessages() {
    return [...this.messages.values()].sort(byTime);
  }

  /**
   * What the conversation shows, in order: the selected branch's user messages, the
   * progress of each run that has no answer on the branch yet (right after its message),
   * and answers (with their run, if known).
   */
  timeline() {
    const items = [];
    const placed = new Set();
    const newestByInput = new Map(); // a regenerated message has several runs: the newest shows
    for (const run of this.runs.values()) {
      const known = newestByInput.get(run.input_message_id);
      if (!known || run.created_at > known.created_at) newestByInput.set(run.input_message_id, run);
    }
    const answered = new Set();
    for (const message of this.messages.values()) {
      if (message.role === "assistant" && message.run_id) answered.add(message.run_id);
    }
    const branch = this.branchMessages();
    const branchAnswers = new Set(
      branch.filter((m) => m.role === "assistant" && m.run_id).map((m) => m.run_id)
    );
    branch.forEach((message, i) => {
      if (message.role !== "assistant") {
        items.push({ kind: "user", key: `u:${message.message_id}`, message, siblings: this.siblings(message) });
        // An amendment names the run it joined, which its input message has placed already.
        const run = newestByInput.get(message.message_id) ?? this.runs.get(message.run_id);
        if (!run || placed.has(run.run_id)) return;
        placed.add(run.run_id);
        // Its progress shows until its answer is on the branch (after any amendments).
        if (branch[i + 1]?.role !== "assistant" && !branchAnswers.has(run.run_id)) {
          items.push({ kind: "run", key: `r:${run.run_id}`, run });
        }
      } else {
        const run = message.run_id ? this.runs.get(message.run_id) ?? null : null;
        if (run) placed.add(run.run_id);
        items.push({ kind: "assistant", key: `a:${message.message_id}`, message, run, siblings: this.siblings(message) });
      }
    });
    for (const run of this.runs.values()) {
      if (!placed.has(run.run_id) && ACTIVE_RUN.has(run.status) && !answered.has(run.run_id)) {
        items.push({ kind: "run", key: `r:${run.run_id}`, run });
      }
    }
    return items;
  }
}
