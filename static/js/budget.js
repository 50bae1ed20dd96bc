// Today's budget as the usage page says it, from GET /api/v1/usage's `budget`. Pure (no DOM).

import { cost } from "./util/format.js";

const integer = new Intl.NumberFormat("en-US");

/** "resets at 00:00 UTC" with the time left: "in 3 h 5 min". */
export function resetsIn(resetsAt, now = Date.now()) {
  const ms = Date.parse(resetsAt) - now;
  if (!Number.isFinite(ms)) return "";
  const minutes = Math.max(1, Math.ceil(ms / 60000));
  const hours = Math.floor(minutes / 60);
  return hours ? `in ${hours} h ${minutes % 60} min` : `in ${minutes} min`;
}

/** One line per budget: what is left of today's tokens and cost, or that it is spent. */
export function budgetLines(budget, now = Date.now()) {
  if (!budget || typeof budget !== "object") return [];
  const resets = `resets at midnight UTC (${resetsIn(budget.resets_at, now)})`;
  if (budget.global_exceeded) return [`The server's daily budget is spent; it ${resets}.`];
  if (budget.exceeded) return [`Your daily budget is spent; it ${resets}.`];
  const parts = [];
  const tokens = budget.tokens || {};
  const usd = budget.cost_usd || {};
  if (tokens.limit != null) parts.push(`${integer.format(tokens.remaining)} of ${integer.format(tokens.limit)} tokens`);
  if (usd.limit != null) parts.push(`${cost(usd.remaining)} of ${cost(usd.limit)}`);
  if (!parts.length) return ["No daily budget: your use today is not limited."];
  return [`Left today: ${parts.join(" and ")}; the budget ${resets}.`];
}
