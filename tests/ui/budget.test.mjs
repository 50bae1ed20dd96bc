// Unit tests of the usage page's budget line (static/js/budget.js).

import assert from "node:assert/strict";
import { test } from "node:test";

import { budgetLines, resetsIn } from "../../static/js/budget.js";
import { describeError } from "../../static/js/util/format.js";

const NOW = Date.parse("2026-12-01T20:55:00.000Z");
const RESETS = "2026-12-02T00:00:00.000Z";
const meter = (limit, used) => ({ limit, used, remaining: limit == null ? null : Math.max(0, limit - used) });

test("the time left until the reset", () => {
  assert.equal(resetsIn(RESETS, NOW), "in 3 h 5 min");
  assert.equal(resetsIn(RESETS, Date.parse("2026-12-01T23:59:30.000Z")), "in 1 min");
  assert.equal(resetsIn("not a time", NOW), "");
});

test("what is left of the tokens and the cost", () => {
  const budget = { resets_at: RESETS, tokens: meter(10000, 1234), cost_usd: meter(2, 0.5), exceeded: false, global_exceeded: false };
  assert.deepEqual(budgetLines(budget, NOW),
    ["Left today: 8,766 of 10,000 tokens and $1.50 of $2.00; the budget resets at midnight UTC (in 3 h 5 min)."]);
});

test("unlimited, spent, and the server's budget spent", () => {
  const open = { resets_at: RESETS, tokens: meter(null, 5), cost_usd: meter(null, 0.1), exceeded: false, global_exceeded: false };
  assert.deepEqual(budgetLines(open, NOW), ["No daily budget: your use today is not limited."]);
  assert.deepEqual(budgetLines({ ...open, tokens: meter(10, 12), exceeded: true }, NOW),
    ["Your daily budget is spent; it resets at midnight UTC (in 3 h 5 min)."]);
  assert.deepEqual(budgetLines({ ...open, global_exceeded: true }, NOW),
    ["The server's daily budget is spent; it resets at midnight UTC (in 3 h 5 min)."]);
  assert.deepEqual(budgetLines(undefined, NOW), []);
});

test("a refused send says whose budget is spent and when it resets", () => {
  const mine = { status: 429, code: "budget_exceeded", message: "Your daily budget is spent; it resets at x", retryAfter: 11100 };
  assert.equal(describeError(mine), "Your daily budget is spent. It resets at midnight UTC in 3 h 5 min.");
  const server = { code: "budget_exceeded", message: "The server's daily budget is spent; it resets at x" };
  assert.equal(describeError(server), "The server's daily budget is spent. It resets at midnight UTC.");
});
