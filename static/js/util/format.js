// Formatting: relative times, durations, token counts, costs and error messages.

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const UNITS = [
  ["year", 365 * 24 * 3600],
  ["month", 30 * 24 * 3600],
  ["week", 7 * 24 * 3600],
  ["day", 24 * 3600],
  ["hour", 3600],
  ["minute", 60],
];

/** "just now", "5 minutes ago", "yesterday", ... for an ISO timestamp. */
export function relativeTime(iso, now = Date.now()) {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "";
  const seconds = Math.round((then - now) / 1000);
  if (Math.abs(seconds) < 45) return "just now";
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size) return relative.format(Math.round(seconds / size), unit);
  }
  return relative.format(Math.round(seconds / 60), "minute");
}

/** A full local date and time, for title attributes. */
export function fullTime(iso) {
  const then = Date.parse(iso);
  return Number.isNaN(then) ? "" : new Date(then).toLocaleString();
}

/** "0:07", "1:02:03" for a number of milliseconds. */
export function clock(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/** "3 s", "2 min", "1 h 5 min" for a number of seconds. */
export function duration(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.ceil(s / 60)} min`;
  const h = Math.floor(s / 3600);
  const m = Math.ceil((s % 3600) / 60);
  return m ? `${h} h ${m} min` : `${h} h`;
}

const integer = new Intl.NumberFormat();

/** "1,234 tokens (1,000 in · 234 out) · $0.0012" for a usage object. */
export function usageText(usage) {
  if (!usage) return "";
  const prompt = Number(usage.prompt_tokens) || 0;
  const completion = Number(usage.completion_tokens) || 0;
  if (!prompt && !completion && !usage.cost_usd) return "";
  const tokens = `${integer.format(prompt + completion)} tokens (${integer.format(prompt)} in · ${integer.format(completion)} out)`;
  return `${tokens} · ${cost(usage.cost_usd)}`;
}

/** A dollar amount with enough digits for fractions of a cent. */
export function cost(value) {
  const n = Number(value) || 0;
  if (n === 0) return "$0";
  if (n < 0.01) return `$${n.toPrecision(2)}`;
  return `$${n.toFixed(n < 1 ? 4 : 2)}`;
}

/** A human sentence for an ApiError (or any error). */
export function describeError(err) {
  if (!err) return "Something went wrong.";
  if (err.code === "unreachable") return "Cannot reach the server. Check your connection and try again.";
  if (err.code === "budget_exceeded") {
    const whose = /server's/.test(err.message || "") ? "The server's daily budget" : "Your daily budget";
    const wait = err.retryAfter ? ` in ${duration(err.retryAfter)}` : "";
    return `${whose} is spent. It resets at midnight UTC${wait}.`;
  }
  if (err.status === 429 || err.code === "rate_limited") {
    const wait = err.retryAfter ? ` Try again in ${duration(err.retryAfter)}.` : "";
    return `Rate limited: ${err.message || "too many requests"}.${wait}`.replace("..", ".");
  }
  if (err.code === "session_busy") {
    return "This session is still answering. Your message is kept here: send it once the answer is in, or cancel the run.";
  }
  if (err.code === "unauthorized") return "Your sign-in has expired. Please sign in again.";
  if (err.status >= 500) return `The server had a problem (${err.message || err.status}). Try again.`;
  return err.message || String(err);
}

/** The title shown for a session. */
export function sessionTitle(session) {
  const title = (session?.title || "").trim();
  return title || "Untitled";
}
