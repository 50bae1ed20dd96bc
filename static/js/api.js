// The REST client: one fetch wrapper (cookie auth, X-Requested-With, error envelope).

const JSON_TYPE = "application/json";

/** An API failure: HTTP status (0 when unreachable), error code and message. */
export class ApiError extends Error {
  constructor(status, code, message, { retryAfter = null, requestId = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    this.requestId = requestId;
  }
}

function parseRetryAfter(value) {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, (date - Date.now()) / 1000);
}

/** Load /config.json from the page's own origin; defaults if it is missing. */
export async function loadConfig() {
  try {
    const resp = await fetch("/config.json", { cache: "no-store", credentials: "same-origin" });
    if (resp.ok) {
      const body = await resp.json();
      return {
        apiBase: typeof body.api_base === "string" ? body.api_base.replace(/\/+$/, "") : "",
        demoModel: body.demo_model === true,
      };
    }
  } catch {
    // fall through to the defaults: same origin, no banner
  }
  return { apiBase: "", demoModel: false };
}

/**
 * Build the API client for a base URL ("" = same origin).
 * onUnauthorized(err) is called when a request other than login/register/me gets 401.
 */
export function createApi(base, { onUnauthorized = () => {} } = {}) {
  let clockSkewMs = 0;

  async function request(method, path, body, { quiet401 = false } = {}) {
    const headers = { Accept: JSON_TYPE, "X-Requested-With": "fetch" };
    const init = { method, headers, credentials: "include", cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = JSON_TYPE;
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(`${base}${path}`, init);
    } catch {
      throw new ApiError(0, "unreachable", "Cannot reach the server.");
    }
    noteClock(resp);
    const data = await readJson(resp);
    if (resp.ok) return data;
    const error = data && typeof data.error === "object" && data.error ? data.error : {};
    const err = new ApiError(
      resp.status,
      typeof error.code === "string" ? error.code : `http_${resp.status}`,
      typeof error.message === "string" ? error.message : resp.statusText || "request failed",
      {
        retryAfter: parseRetryAfter(resp.headers.get("Retry-After")),
        requestId: resp.headers.get("X-Request-ID"),
      },
    );
    if (resp.status === 401 && !quiet401) onUnauthorized(err);
    throw err;
  }

  async function readJson(resp) {
    if (resp.status === 204) return null;
    const type = resp.headers.get("Content-Type") || "";
    if (!type.includes(JSON_TYPE)) return null;
    try {
      return await resp.json();
    } catch {
      return null;
    }
  }

  function noteClock(resp) {
    // The Date header lets elapsed-time counters ignore a wrong local clock.
    const date = Date.parse(resp.headers.get("Date") || "");
    if (!Number.isNaN(date)) clockSkewMs = Date.now() - date;
  }

  const enc = encodeURIComponent;
  return {
    /** Milliseconds the local clock is ahead of the server's (second resolution). */
    get clockSkewMs() {
      return Math.abs(clockSkewMs) > 2000 ? clockSkewMs : 0;
    },
    me: () => request("GET", "/api/v1/auth/me", undefined, { quiet401: true }),
    login: (email, password) =>
      request("POST", "/api/v1/auth/login", { email, password }, { quiet401: true }),
    register: (email, password, name) =>
      request("POST", "/api/v1/auth/register", name ? { email, password, name } : { email, password }, { quiet401: true }),
    logout: () => request("POST", "/api/v1/auth/logout", undefined, { quiet401: true }),
    pipelines: () => request("GET", "/api/v1/pipelines"),
    /** A page of sessions, most recent activity first; q searches titles and messages. */
    listSessions: (skip = 0, limit = 20, q = "") =>
      request("GET", `/api/v1/sessions?limit=${limit}&skip=${skip}&sort=updated${q ? `&q=${enc(q)}` : ""}`),
    createSession: (pipeline, title = "") =>
      request("POST", "/api/v1/sessions", pipeline ? { title, pipeline } : { title }),
    getSession: (id) => request("GET", `/api/v1/sessions/${enc(id)}`),
    renameSession: (id, title) => request("PATCH", `/api/v1/sessions/${enc(id)}`, { title }),
    deleteSession: (id) => request("DELETE", `/api/v1/sessions/${enc(id)}`),
    listMessages: (id, { before, beforeId }, limit = 50) => {
      const cursor = `before=${enc(before)}` + (beforeId ? `&before_id=${enc(beforeId)}` : "");
      return request("GET", `/api/v1/sessions/${enc(id)}/messages?limit=${limit}&${cursor}`);
    },
    postMessage: (id, content) =>
      request("POST", `/api/v1/sessions/${enc(id)}/messages`, { content }),
    /** Take a queued message off its session's queue (409 message_not_queued once started). */
    cancelQueued: (sessionId, messageId) =>
      request("DELETE", `/api/v1/sessions/${enc(sessionId)}/messages/${enc(messageId)}`),
    getRun: (id) => request("GET", `/api/v1/runs/${enc(id)}`),
    cancelRun: (id) => request("POST", `/api/v1/runs/${enc(id)}/cancel`),
    retryRun: (id) => request("POST", `/api/v1/runs/${enc(id)}/retry`),
    /** output: the stage's edited text, or null to approve it as it is. */
    approveRun: (id, output = null) =>
      request("POST", `/api/v1/runs/${enc(id)}/approve`, output === null ? {} : { output }),
    rejectRun: (id, reason = "") =>
      request("POST", `/api/v1/runs/${enc(id)}/reject`, reason ? { reason } : {}),
    /** Resend an edit of an earlier user message: a new branch from the same point. */
    editMessage: (id, content, editOf) =>
      request("POST", `/api/v1/sessions/${enc(id)}/messages`, { content, edit_of: editOf }),
    selectBranch: (id, messageId) =>
      request("PUT", `/api/v1/sessions/${enc(id)}/head`, { message_id: messageId }),
    regenerateRun: (id) => request("POST", `/api/v1/runs/${enc(id)}/regenerate`),
    rerunStage: (id, index, model) =>
      request("POST", `/api/v1/runs/${enc(id)}/stages/${index}/rerun`, model ? { model } : {}),
    usage: () => request("GET", "/api/v1/usage"),
    listApiKeys: () => request("GET", "/api/v1/api-keys"),
    /** The answer carries the key itself: the only time it is shown. */
    createApiKey: (name) => request("POST", "/api/v1/api-keys", { name }),
    revokeApiKey: (id) => request("DELETE", `/api/v1/api-keys/${enc(id)}`),
  };
}

/** The WebSocket URL for an API base ("" = this page's origin). */
export function socketUrl(base) {
  const url = new URL(`${base}/api/v1/ws`, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}
