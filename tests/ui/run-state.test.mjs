// Unit tests of a run's state (static/js/run-state.js) and the session model (state.js).

import assert from "node:assert/strict";
import { test } from "node:test";

import { applyRunEvent, mergeRun, normRun, stoppedStages } from "../../static/js/run-state.js";
import { SessionModel } from "../../static/js/state.js";

const T = "2026-01-01T00:00:0";
const stages = (...statuses) => ["plan", "draft", "review"].map((name, i) => ({ name, agent: name, status: statuses[i] ?? "pending" }));
const runDoc = (fields = {}) => ({ run_id: "r1", session_id: "s1", status: "running", stages: stages(), generation: 0, input_message_id: "m1", created_at: `${T}1`, ...fields });

function streamed() {
  const run = normRun(runDoc());
  applyRunEvent(run, "stage.started", { stage: "plan", index: 0 }, `${T}1`);
  applyRunEvent(run, "stage.delta", { stage: "plan", text: "**Plan**" }, `${T}2`);
  applyRunEvent(run, "stage.delta", { stage: "plan", text: " for tea" }, `${T}2`);
  return run;
}

test("deltas build the running stage's text; a reset discards it", () => {
  const run = streamed();
  assert.equal(run.stages[0].partial, "**Plan** for tea");
  applyRunEvent(run, "stage.reset", { stage: "plan" }, `${T}3`);
  assert.equal(run.stages[0].partial, "");
});

test("cancel keeps the stopped stage's text, and a REST snapshot without it does not erase it", () => {
  const run = streamed();
  assert.equal(applyRunEvent(run, "run.cancelled", {}, `${T}4`), true);
  assert.equal(run.status, "cancelled");
  assert.equal(run.stages[0].status, "cancelled");
  assert.equal(run.stages[0].partial, "**Plan** for tea");
  mergeRun(run, normRun(runDoc({ status: "cancelled", stages: stages("cancelled", "cancelled", "cancelled") })));
  assert.deepEqual(stoppedStages(run).map((s) => [s.name, s.partial]), [["plan", "**Plan** for tea"]]);
});

test("the cancel answer (a REST run with the stage cancelled) keeps the text streamed so far", () => {
  const run = streamed();
  mergeRun(run, normRun(runDoc({ status: "cancelled", stages: stages("cancelled", "cancelled", "cancelled") })));
  assert.equal(run.stages[0].status, "cancelled");
  assert.equal(run.stages[0].partial, "**Plan** for tea");
});

test("the server's partial text of a stopped stage is used (after a reload), a running one's is not", () => {
  const doc = runDoc({ status: "cancelled", stages: stages("completed", "cancelled", "cancelled") });
  doc.stages[1].partial = "### Draft\n\nhalf";
  doc.stages[0].output = "plan text";
  const run = normRun(doc);
  assert.equal(run.stages[1].partial, "### Draft\n\nhalf");
  assert.equal(run.stages[0].partial, "");
  const live = runDoc({ stages: stages("running") });
  live.stages[0].partial = "overlaps the replayed deltas";
  assert.equal(normRun(live).stages[0].partial, "");
  // Absent (an older server): nothing kept, nothing broken.
  assert.deepEqual(stoppedStages(normRun(runDoc({ status: "cancelled", stages: stages("cancelled") }))), []);
});

test("a failed run keeps the failing stage's text; run documents in events fill it in", () => {
  const run = streamed();
  const doc = runDoc({ status: "failed", stages: stages("failed") });
  doc.stages[0].partial = "**Plan** for tea, longer";
  applyRunEvent(run, "run.failed", { error: "stage plan failed: x", run: doc }, `${T}5`);
  assert.equal(run.stages[0].status, "failed");
  assert.equal(run.stages[0].partial, "**Plan** for tea, longer");
});

test("a completed stage drops its partial text for its output", () => {
  const run = streamed();
  applyRunEvent(run, "stage.completed", { stage: "plan", output: "**Plan** for tea." }, `${T}6`);
  assert.equal(run.stages[0].partial, "");
  assert.equal(run.stages[0].output, "**Plan** for tea.");
  assert.deepEqual(stoppedStages(run), []);
});

test("the session model: busy while a run is active, timeline puts the run after its message", () => {
  const model = new SessionModel("s1");
  model.loadSession({ session_id: "s1", status: "idle", messages: [
    { message_id: "m1", role: "user", content: "hi", created_at: `${T}0`, run_id: "r1" },
  ] });
  assert.equal(model.busy(), false);
  model.apply({ name: "run.queued", data: { run: runDoc({ status: "queued" }) }, ts: `${T}1` });
  assert.equal(model.busy(), true);
  assert.deepEqual(model.timeline().map((i) => i.key), ["u:m1", "r:r1"]);
  model.apply({ name: "run.cancelled", run_id: "r1", data: {}, ts: `${T}2` });
  assert.equal(model.busy(), false);
  assert.equal(model.session.status, "cancelled");
  // Replayed events of an older generation change nothing after a retry.
  model.upsertRun(runDoc({ status: "queued", generation: 1 }), "event");
  assert.equal(model.apply({ name: "stage.delta", run_id: "r1", data: { stage: "plan", text: "x" } }).changed, true);
  assert.equal(model.runs.get("r1").generation, 1);
});

test("replayed events rebuild a stopped stage's text when the run came without it", () => {
  const run = normRun(runDoc({ status: "cancelled", stages: stages("cancelled", "cancelled", "cancelled") }));
  applyRunEvent(run, "stage.started", { stage: "plan" }, `${T}1`);
  applyRunEvent(run, "stage.delta", { stage: "plan", text: "first try" }, `${T}1`);
  applyRunEvent(run, "stage.reset", { stage: "plan" }, `${T}2`);
  applyRunEvent(run, "stage.delta", { stage: "plan", text: "**Plan**" }, `${T}2`);
  applyRunEvent(run, "run.cancelled", {}, `${T}3`);
  assert.equal(run.stages[0].status, "cancelled");
  assert.equal(run.stages[0].partial, "**Plan**");
});

function snapshotRun(text, seq, epoch = "e1") {
  const doc = runDoc({ stages: stages("completed", "running") });
  Object.assign(doc.stages[1], { partial: text, partial_seq: seq, partial_epoch: epoch });
  return doc;
}

const ev = (seq, name, data, epoch = "e1") => ({ seq, epoch, name, run_id: "r1", data, ts: `${T}${seq % 10}` });

test("a page loaded mid-stage shows the server's text, and events never double it", () => {
  const model = new SessionModel("s1");
  model.loadSession({ session_id: "s1", status: "running", messages: [], active_run: snapshotRun("### Draft\n\nHalf", 12) });
  assert.equal(model.runs.get("r1").stages[1].partial, "### Draft\n\nHalf");
  // Events the snapshot already holds are skipped (here the replay starts at seq 12) ...
  model.apply(ev(12, "stage.delta", { stage: "draft", text: "Half" }));
  // ... and what came after it is appended.
  model.apply(ev(13, "stage.delta", { stage: "draft", text: " more" }));
  assert.equal(model.runs.get("r1").stages[1].partial, "### Draft\n\nHalf more");
});

test("after a gap the snapshot's text replaces the lost one; with text of our own it is not used", () => {
  const model = new SessionModel("s1");
  model.loadSession({ session_id: "s1", status: "running", messages: [], active_run: runDoc({ stages: stages("completed", "running") }) });
  model.apply(ev(20, "stage.delta", { stage: "draft", text: "abc" }));
  model.upsertRun(snapshotRun("abcXYZ", 25), "rest"); // we have text, no gap: ours stays
  assert.equal(model.runs.get("r1").stages[1].partial, "abc");
  model.markGaps();
  model.upsertRun(snapshotRun("abcdef", 30), "rest");
  const stage = model.runs.get("r1").stages[1];
  assert.equal(stage.partial, "abcdef");
  assert.equal(stage.gap, false);
  model.apply(ev(29, "stage.delta", { stage: "draft", text: "ef" }));
  model.apply(ev(31, "stage.delta", { stage: "draft", text: "g" }));
  assert.equal(stage.partial, "abcdefg");
  // An event of another epoch (Redis lost the counter) is never taken as covered.
  model.apply(ev(3, "stage.delta", { stage: "draft", text: "h" }, "e2"));
  assert.equal(stage.partial, "abcdefgh");
});

// --- double texting: the session's queue -----------------------------------------------

const msg = (id, fields = {}) => ({ message_id: id, session_id: "s1", role: "user", content: id, status: "sent", created_at: `${T}1`, ...fields });
const queuedIds = (model) => model.queuedMessages().map((m) => m.message_id);
const historyIds = (model) => model.sortedMessages().map((m) => m.message_id);

test("a queued message waits outside the history, then joins it when it starts", () => {
  const model = new SessionModel("s1");
  model.loadSession({ session_id: "s1", messages: [msg("m1")], queued: [msg("q1", { status: "queued", created_at: `${T}2` })] });
  assert.deepEqual(queuedIds(model), ["q1"]);
  assert.deepEqual(historyIds(model), ["m1"]);
  const queued = model.apply({ name: "message.queued", data: { message: msg("q2", { status: "queued", created_at: `${T}3` }) } });
  assert.equal(queued.changed, true);
  assert.deepEqual(queuedIds(model), ["q1", "q2"]);
  model.apply({ name: "message.created", run_id: "r2", data: { message: msg("q1", { run_id: "r2", created_at: `${T}5`, parent_id: "m1" }) } });
  assert.deepEqual(queuedIds(model), ["q2"]);
  assert.deepEqual(historyIds(model), ["m1", "q1"]);
  assert.equal(model.timeline().filter((i) => i.kind === "user").length, 2);
});

test("a cancelled message leaves the queue; a late message.queued never moves history back", () => {
  const model = new SessionModel("s1");
  model.loadSession({ session_id: "s1", messages: [], queued: [msg("q1", { status: "queued" })] });
  assert.equal(model.apply({ name: "message.cancelled", data: { message: msg("q1", { status: "cancelled" }) } }).changed, true);
  assert.deepEqual(queuedIds(model), []);
  assert.equal(model.apply({ name: "message.cancelled", data: { message: msg("q1", { status: "cancelled" }) } }).changed, false);
  model.apply({ name: "message.created", data: { message: msg("q2") } });
  assert.equal(model.apply({ name: "message.queued", data: { message: msg("q2", { status: "queued" }) } }).changed, false);
  assert.deepEqual(queuedIds(model), []);
  assert.deepEqual(historyIds(model), ["q2"]);
});

test("the queue is in starting order (interrupting messages first) and a snapshot replaces it", () => {
  const model = new SessionModel("s1");
  model.upsertMessage(msg("old", { status: "queued", created_at: `${T}1` }));
  model.upsertMessage(msg("new", { status: "queued", created_at: `${T}2` }));
  model.upsertMessage(msg("urgent", { status: "queued", created_at: `${T}3`, double_texting: "interrupt" }));
  assert.deepEqual(queuedIds(model), ["urgent", "old", "new"]);
  model.loadSession({ session_id: "s1", messages: [], queued: [msg("new", { status: "queued", created_at: `${T}2` })] });
  assert.deepEqual(queuedIds(model), ["new"]);
});

test("an amendment shows in the history after its run's message, the run card placed once", () => {
  const model = new SessionModel("s1");
  model.loadSession({ session_id: "s1", messages: [msg("m1", { run_id: "r1" })], active_run: runDoc() });
  model.apply({ name: "run.amended", run_id: "r1", data: { message: msg("a1", { run_id: "r1", created_at: `${T}2`, double_texting: "amend", parent_id: "m1" }) } });
  assert.deepEqual(model.timeline().map((i) => i.key), ["u:m1", "r:r1", "u:a1"]);
});
