// Unit tests of approval gates in a run's state (static/js/run-state.js, state.js): the
// run pauses, is approved (edited) or rejected, from events and REST snapshots alike.

import assert from "node:assert/strict";
import { test } from "node:test";

import { applyRunEvent, awaitingGate, mergeRun, normRun, runProgress } from "../../static/js/run-state.js";
import { SessionModel } from "../../static/js/state.js";

const T = "2026-01-01T00:00:0";
const stages = (...statuses) =>
  ["plan", "draft", "review"].map((name, i) => ({ name, agent: name, status: statuses[i] ?? "pending", approve: i === 0 }));
const runDoc = (fields = {}) => ({
  run_id: "r1", session_id: "s1", status: "running", stages: stages(), generation: 0,
  input_message_id: "m1", created_at: `${T}1`, ...fields,
});

/** A run whose plan streamed and completed, then paused at its gate (all by events). */
function paused() {
  const run = normRun(runDoc());
  applyRunEvent(run, "stage.started", { stage: "plan", index: 0 }, `${T}1`);
  applyRunEvent(run, "stage.completed", { stage: "plan", index: 0, output: "1. tea" }, `${T}2`);
  assert.equal(applyRunEvent(run, "run.awaiting_approval", { stage: "plan", index: 0, output: "1. tea", since: `${T}3` }, `${T}3`), true);
  return run;
}

test("run.awaiting_approval pauses the run at its gate with the stage's output", () => {
  const run = paused();
  assert.equal(run.status, "awaiting_approval");
  assert.equal(run.awaiting_stage, 0);
  assert.equal(awaitingGate(run).name, "plan");
  assert.equal(awaitingGate(run).output, "1. tea");
  // A replayed run.started or stage.started of the gate does not move it back.
  assert.equal(applyRunEvent(run, "run.started", { run_id: "r1" }, `${T}1`), false);
  applyRunEvent(run, "stage.started", { stage: "plan", index: 0 }, `${T}1`);
  assert.equal(run.status, "awaiting_approval");
  assert.equal(run.stages[0].status, "completed");
});

test("the pause event alone (its stage.completed missed) completes the gate with the output", () => {
  const run = normRun(runDoc());
  applyRunEvent(run, "run.awaiting_approval", { stage: "plan", index: 0, output: "1. tea" }, `${T}3`);
  assert.equal(run.stages[0].status, "completed");
  assert.equal(awaitingGate(run).output, "1. tea");
});

test("run.approved with an edit keeps the original and the run goes on to the end", () => {
  const run = paused();
  assert.equal(applyRunEvent(run, "run.approved", { stage: "plan", index: 0, output: "1. green tea", edited: true }, `${T}4`), true);
  assert.equal(run.status, "queued");
  assert.equal(awaitingGate(run), null);
  assert.equal(run.stages[0].output, "1. green tea");
  assert.equal(run.stages[0].output_original, "1. tea");
  // Replays of the pause and the approval change nothing.
  assert.equal(applyRunEvent(run, "run.awaiting_approval", { stage: "plan", index: 0, output: "1. tea" }, `${T}3`), false);
  assert.equal(applyRunEvent(run, "run.approved", { stage: "plan", index: 0, output: "x" }, `${T}4`), false);
  assert.equal(run.status, "queued");
  applyRunEvent(run, "run.started", { run_id: "r1" }, `${T}5`);
  applyRunEvent(run, "stage.started", { stage: "draft", index: 1 }, `${T}5`);
  assert.equal(run.status, "running");
  applyRunEvent(run, "run.completed", {}, `${T}6`);
  assert.equal(run.status, "completed");
});

test("a REST snapshot of the approved run moves a paused one on; an older one does not move it back", () => {
  const run = paused();
  const approvedDoc = runDoc({ status: "queued", stages: stages("completed") });
  Object.assign(approvedDoc.stages[0], { output: "edited", output_original: "1. tea", approved_at: `${T}4` });
  mergeRun(run, normRun(approvedDoc));
  assert.equal(run.status, "queued");
  assert.equal(run.stages[0].output, "edited");
  assert.equal(run.stages[0].approved_at, `${T}4`);
  const pausedDoc = runDoc({ status: "awaiting_approval", awaiting_stage: 0, stages: stages("completed") });
  mergeRun(run, normRun(pausedDoc)); // an older snapshot, read before the approval
  assert.equal(run.status, "queued");
  assert.ok(runProgress(run) > runProgress(normRun(pausedDoc)));
});

test("a REST snapshot of a paused run shows the gate", () => {
  const doc = runDoc({ status: "awaiting_approval", awaiting_stage: 0, stages: stages("completed") });
  doc.stages[0].output = "1. tea";
  const run = normRun(doc);
  assert.equal(awaitingGate(run).output, "1. tea");
  assert.equal(run.stages[0].approve, true);
});

test("a rejection ends the run cancelled with its error", () => {
  const run = paused();
  assert.equal(applyRunEvent(run, "run.cancelled", { error: "rejected: off topic" }, `${T}4`), true);
  assert.equal(run.status, "cancelled");
  assert.equal(run.error, "rejected: off topic");
  assert.equal(awaitingGate(run), null);
  assert.deepEqual(run.stages.map((s) => s.status), ["completed", "cancelled", "cancelled"]);
});

test("a session whose run awaits approval is busy, and free again once it ends", () => {
  const model = new SessionModel("s1");
  model.loadSession({ session_id: "s1", status: "running", active_run: runDoc(), messages: [] });
  model.apply({ name: "run.awaiting_approval", run_id: "r1", data: { stage: "plan", index: 0, output: "1. tea" }, ts: `${T}3`, seq: 4 });
  assert.equal(model.session.status, "awaiting_approval");
  assert.equal(model.session.active_run_id, "r1");
  assert.equal(model.busy(), true);
  model.apply({ name: "run.cancelled", run_id: "r1", data: { error: "rejected" }, ts: `${T}4`, seq: 5 });
  assert.equal(model.busy(), false);
  assert.equal(model.session.status, "cancelled");
});
