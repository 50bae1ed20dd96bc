// One WebSocket per tab: reconnects with backoff, resumes each session from its last seq.

const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30_000;
const REQUEST_TIMEOUT_MS = 15_000;
const READY_TIMEOUT_MS = 15_000;
const PING_EVERY_MS = 25_000;
const PING_TIMEOUT_MS = 10_000;
// 4403: an admin disabled the account (the sign-in check then fails and signs out).
const AUTH_CLOSE_CODES = new Set([4401, 4403, 1008]);

/** Delay before reconnect attempt n: exponential, capped, with jitter in [50%, 100%]. */
export function backoffDelay(attempt, random = Math.random) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** A failed request on the socket: an error frame, a timeout, or the socket closing. */
export class SocketError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "SocketError";
    this.code = code;
  }
}

/**
 * The tab's socket.
 * onState({state: "connecting"|"online"|"offline", retryInMs}) reports the connection;
 * onAuthCheck(reason) asks the app to verify the sign-in (after an auth close code or a
 * connection that never became ready).
 */
export class Socket {
  constructor(url, { onState = () => {}, onAuthCheck = () => {} } = {}) {
    this.url = url;
    this.onState = onState;
    this.onAuthCheck = onAuthCheck;
    this.state = "offline";
    this.ws = null;
    this.ready = false;
    this.stopped = true;
    this.attempts = 0;
    this.nextId = 0;
    this.pending = new Map();
    this.subs = new Map();
    this.timers = { retry: null, readyWait: null, ping: null };
  }

  /** Connect (and keep reconnecting until stop()). */
  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempts = 0;
    this._connect();
  }

  /** Close for good (sign-out): forget subscriptions and pending requests. */
  stop() {
    this.stopped = true;
    this._clearTimers();
    this.subs.clear();
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    this._failPending("closed", "connection closed");
    if (ws) ws.close(1000, "bye");
    this._setState("offline");
  }

  /** Skip the backoff wait (network came back, tab became visible, user clicked). */
  reconnectNow() {
    if (this.stopped || this.ws) return;
    this.attempts = 0;
    this._connect();
  }

  /** Send a command and resolve with its result data (rejects with SocketError). */
  request(type, fields = {}, timeoutMs = REQUEST_TIMEOUT_MS) {
    if (!this.ready || !this.ws) {
      return Promise.reject(new SocketError("offline", "not connected"));
    }
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new SocketError("timeout", `${type} timed out`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ id, type, ...fields }));
    });
  }

  /**
   * Follow a session's events. handler: onEvent(ev), onSubscribed({recovered, ...}),
   * onGap(reason) when events may have been missed, onSubscribeError(err).
   * The first subscribe asks for everything after seq 0, so a page opened mid-run can
   * rebuild the running stage's text while the server still holds the history.
   */
  watch(sessionId, handler) {
    const sub = { sessionId, handler, lastSeq: null, epoch: null, pending: false, buffer: [] };
    this.subs.set(sessionId, sub);
    if (this.ready) this._subscribe(sub);
  }

  /** Stop following a session. */
  unwatch(sessionId) {
    if (!this.subs.delete(sessionId)) return;
    if (this.ready) this.request("unsubscribe", { session_id: sessionId }).catch(() => {});
  }

  /** The position (last seq and epoch) seen for a session, for tests and debugging. */
  position(sessionId) {
    const sub = this.subs.get(sessionId);
    return sub ? { lastSeq: sub.lastSeq, epoch: sub.epoch } : null;
  }

  _connect() {
    this._clearTimers();
    this._setState("connecting");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this._scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.ready = false;
    ws.addEventListener("open", () => {
      this.timers.readyWait = setTimeout(() => ws.close(4000, "no ready frame"), READY_TIMEOUT_MS);
    });
    ws.addEventListener("message", (e) => {
      if (ws === this.ws) this._onFrame(e.data);
    });
    ws.addEventListener("close", (e) => this._onClose(ws, e));
  }

  _onFrame(raw) {
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      return;
    }
    if (!frame || typeof frame !== "object") return;
    switch (frame.type) {
      case "ready":
        return this._onReady();
      case "result":
      case "error":
        return this._onReply(frame);
      case "event":
        return this._onEvent(frame);
      case "resync":
        return this._onResync(frame);
      default:
        return undefined;
    }
  }

  _onReady() {
    clearTimeout(this.timers.readyWait);
    this.ready = true;
    this.attempts = 0;
    this._setState("online");
    this.timers.ping = setInterval(() => this._ping(), PING_EVERY_MS);
    for (const sub of this.subs.values()) this._subscribe(sub);
  }

  _onReply(frame) {
    const entry = this.pending.get(frame.id);
    if (!entry) return;
    this.pending.delete(frame.id);
    clearTimeout(entry.timer);
    if (frame.type === "result" && frame.ok !== false) entry.resolve(frame.data ?? {});
    else {
      const error = frame.error || {};
      entry.reject(new SocketError(error.code || "error", error.message || "request failed"));
    }
  }

  _onResync(frame) {
    const ids = Array.isArray(frame.session_ids) ? frame.session_ids : [...this.subs.keys()];
    for (const id of ids) {
      const sub = this.subs.get(id);
      if (sub) this._subscribe(sub);
    }
  }

  _subscribe(sub) {
    const requested = sub.lastSeq ?? 0;
    const fields = { session_id: sub.sessionId, after_seq: requested };
    if (sub.epoch) fields.epoch = sub.epoch;
    const token = Symbol("subscribe");
    Object.assign(sub, { pending: true, buffer: [], token });
    this.request("subscribe", fields).then(
      (result) => {
        if (this.subs.get(sub.sessionId) !== sub || sub.token !== token) return;
        this._onSubscribed(sub, requested, result);
      },
      (err) => {
        if (this.subs.get(sub.sessionId) !== sub || sub.token !== token) return;
        sub.pending = false;
        // A closed socket resubscribes on the next ready frame; anything else is the app's.
        if (err.code !== "closed" && err.code !== "offline") sub.handler.onSubscribeError?.(err);
      },
    );
  }

  _onSubscribed(sub, requested, result) {
    const recovered = result.recovered === true;
    const lastSeq = Number(result.last_seq) || 0;
    sub.pending = false;
    sub.epoch = result.epoch || sub.epoch;
    // Recovered: the missed events follow, starting right after what we asked for.
    sub.lastSeq = recovered ? requested : lastSeq;
    sub.handler.onSubscribed?.({ recovered, requested, lastSeq, epoch: sub.epoch });
    const buffered = sub.buffer;
    sub.buffer = [];
    for (const ev of buffered) this._deliver(sub, ev);
  }

  _onEvent(ev) {
    const sub = this.subs.get(ev.session_id);
    if (!sub) return;
    if (sub.pending) sub.buffer.push(ev);
    else this._deliver(sub, ev);
  }

  _deliver(sub, ev) {
    const seq = Number(ev.seq);
    if (!Number.isInteger(seq)) return;
    if (ev.epoch && sub.epoch && ev.epoch !== sub.epoch) {
      // The server's counter restarted: our position means nothing any more.
      sub.epoch = ev.epoch;
      sub.lastSeq = seq;
      sub.handler.onGap?.("epoch");
      sub.handler.onEvent(ev);
      return;
    }
    if (sub.lastSeq !== null && seq <= sub.lastSeq) return; // seen already
    const gap = sub.lastSeq !== null && seq > sub.lastSeq + 1;
    sub.lastSeq = seq;
    if (gap) sub.handler.onGap?.("seq");
    sub.handler.onEvent(ev);
  }

  _ping() {
    const ws = this.ws;
    this.request("ping", {}, PING_TIMEOUT_MS).catch((err) => {
      if (err.code === "timeout" && ws === this.ws) ws.close(4000, "ping timeout");
    });
  }

  _onClose(ws, event) {
    if (ws !== this.ws) return;
    const wasReady = this.ready;
    this.ws = null;
    this.ready = false;
    this._clearTimers();
    this._failPending("closed", "connection closed");
    for (const sub of this.subs.values()) sub.pending = false;
    if (this.stopped) return;
    if (AUTH_CLOSE_CODES.has(event.code) || !wasReady) {
      this.onAuthCheck(AUTH_CLOSE_CODES.has(event.code) ? "closed" : "handshake");
    }
    if (!this.stopped) this._scheduleReconnect();
  }

  _scheduleReconnect() {
    const delay = backoffDelay(this.attempts);
    this.attempts += 1;
    this._setState("offline", delay);
    this.timers.retry = setTimeout(() => {
      this.timers.retry = null;
      if (!this.stopped && !this.ws) this._connect();
    }, delay);
  }

  _failPending(code, message) {
    for (const entry of this.pending.values()) {
      clearTimeout(entry.timer);
      entry.reject(new SocketError(code, message));
    }
    this.pending.clear();
  }

  _clearTimers() {
    clearTimeout(this.timers.retry);
    clearTimeout(this.timers.readyWait);
    clearInterval(this.timers.ping);
    this.timers = { retry: null, readyWait: null, ping: null };
  }

  _setState(state, retryInMs = null) {
    this.state = state;
    this.onState({ state, retryInMs });
  }
}
