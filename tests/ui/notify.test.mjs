// Unit tests of the browser notification decision (static/js/notify.js).

import assert from "node:assert/strict";
import { test } from "node:test";

import { notificationFor } from "../../static/js/notify.js";

const SINCE = Date.parse("2026-12-01T12:00:00.000Z");
const ev = (name, fields = {}) => ({
  type: "event", session_id: "s1", run_id: "r1", name, seq: 9, ts: "2026-12-01T12:00:05.000Z", ...fields,
});
const ctx = (fields = {}) => ({
  enabled: true, permission: "granted", hidden: true, sessionId: "s1", title: "Tea", since: SINCE, ...fields,
});

test("a run of the open session ending in a hidden tab is notified", () => {
  assert.deepEqual(notificationFor(ev("run.completed"), ctx()), {
    title: "Chorus: Answer ready", body: "Tea has an answer.", tag: "r1:run.completed", sessionId: "s1",
  });
  assert.equal(notificationFor(ev("run.failed"), ctx()).title, "Chorus: Run failed");
  assert.equal(notificationFor(ev("run.awaiting_approval"), ctx()).body, "Tea is waiting for your approval.");
  assert.equal(notificationFor(ev("run.completed"), ctx({ title: "  " })).body, "Your session has an answer.");
});

test("nothing while the tab is visible, switched off or not permitted", () => {
  assert.equal(notificationFor(ev("run.completed"), ctx({ hidden: false })), null);
  assert.equal(notificationFor(ev("run.completed"), ctx({ enabled: false })), null);
  assert.equal(notificationFor(ev("run.completed"), ctx({ permission: "default" })), null);
  assert.equal(notificationFor(ev("run.completed"), ctx({ permission: "denied" })), null);
});

test("only the ends of runs of the open session, and each once", () => {
  for (const name of ["run.cancelled", "run.started", "stage.completed", "stage.delta", "message.created"]) {
    assert.equal(notificationFor(ev(name), ctx()), null, name);
  }
  assert.equal(notificationFor(ev("run.completed", { session_id: "s2" }), ctx()), null);
  assert.equal(notificationFor(ev("run.completed", { run_id: null }), ctx()), null);
  assert.equal(notificationFor(null, ctx()), null);
  const shown = new Set(["r1:run.completed"]);
  assert.equal(notificationFor(ev("run.completed"), ctx({ shown })), null);
  assert.notEqual(notificationFor(ev("run.failed"), ctx({ shown })), null);
});

test("history replayed when the session opens is not notified", () => {
  assert.equal(notificationFor(ev("run.completed", { ts: "2026-12-01T11:59:59.999Z" }), ctx()), null);
  assert.equal(notificationFor(ev("run.completed", { ts: undefined }), ctx()), null);
  assert.notEqual(notificationFor(ev("run.completed", { ts: "2026-12-01T12:00:00.000Z" }), ctx()), null);
});
