// Unit tests of branches (static/js/branches.js) and the session model showing one branch.

import assert from "node:assert/strict";
import { test } from "node:test";

import { branchPath, headAfter, siblingIds, siblingPosition } from "../../static/js/branches.js";
import { SessionModel } from "../../static/js/state.js";

const T = "2026-01-01T00:00:0";
const msg = (id, sec, fields = {}) => ({ message_id: id, role: "user", content: id, created_at: `${T}${sec}`, ...fields });
const map = (...messages) => new Map(messages.map((m) => [m.message_id, m]));

// u1 → a1 ; a1b (regenerated) ; u1b (edit of u1)
const u1 = msg("u1", 1, { parent_id: null, sibling_ids: ["u1", "u1b"] });
const a1 = msg("a1", 2, { role: "assistant", parent_id: "u1", run_id: "r1", sibling_ids: ["a1"] });
const a1b = msg("a1b", 3, { role: "assistant", parent_id: "u1", run_id: "r2" });
const u1b = msg("u1b", 4, { parent_id: null, edit_of: "u1" });

test("a branch follows parents from its tip, oldest first", () => {
  const all = map(u1, a1, a1b, u1b);
  assert.deepEqual(branchPath(all, "a1b").map((m) => m.message_id), ["u1", "a1b"]);
  assert.deepEqual(branchPath(all, "u1b").map((m) => m.message_id), ["u1b"]);
  assert.deepEqual(branchPath(all, "missing"), []);
  const loop = map(msg("x", 1, { parent_id: "y" }), msg("y", 2, { parent_id: "x" }));
  assert.equal(branchPath(loop, "x").length, 2); // a bad parent chain cannot hang the tab
});

test("a new message moves the head only when it extends the branch", () => {
  assert.equal(headAfter("u1", a1), "a1");
  assert.equal(headAfter("a1", u1b), "a1"); // an edit: another branch, selected by its event
  assert.equal(headAfter(null, u1), "u1");
  assert.equal(headAfter("a1", null), "a1");
});

test("siblings: the server's list, then newer ones only this tab has seen", () => {
  const all = map(u1, a1, a1b, u1b);
  assert.deepEqual(siblingIds(all, a1), ["a1", "a1b"]);
  assert.deepEqual(siblingIds(all, a1b), ["a1", "a1b"]); // it came by event, with no list
  assert.deepEqual(siblingIds(all, u1b), ["u1", "u1b"]);
  assert.deepEqual(siblingPosition(all, a1b), { ids: ["a1", "a1b"], index: 1, label: "2/2" });
  assert.equal(siblingPosition(map(u1, a1), a1), null);
});

function regenerating() {
  const model = new SessionModel("s1");
  model.loadSession({ session_id: "s1", status: "completed", head_message_id: "a1", messages: [u1, a1] });
  model.upsertRun({ run_id: "r1", status: "completed", input_message_id: "u1", created_at: `${T}1`, stages: [] });
  // Regenerate: the head moves to the input message, a new run answers it.
  model.apply({ name: "branch.selected", data: { head_message_id: "u1" }, run_id: "r2" });
  model.apply({ name: "run.queued", data: { run: { run_id: "r2", status: "queued", input_message_id: "u1", created_at: `${T}3`, stages: [] } }, run_id: "r2" });
  return model;
}

test("a regenerated answer streams in place of the old one, then both are alternatives", () => {
  const model = regenerating();
  assert.deepEqual(model.timeline().map((i) => i.key), ["u:u1", "r:r2"]);
  assert.equal(model.lastAnswer(), null);
  model.apply({ name: "run.completed", run_id: "r2", data: { message: { ...a1b } } });
  const items = model.timeline();
  assert.deepEqual(items.map((i) => i.key), ["u:u1", "a:a1b"]);
  assert.equal(items[1].siblings.label, "2/2");
  assert.equal(model.lastAnswer().message_id, "a1b");
  // The switcher's "previous" selects the old answer's branch.
  model.selectBranch("a1");
  assert.deepEqual(model.timeline().map((i) => i.key), ["u:u1", "a:a1"]);
});

test("a branch this tab has not loaded asks for a reload", () => {
  const model = regenerating();
  assert.deepEqual(model.apply({ name: "branch.selected", data: { head_message_id: "zz" } }), { changed: true, reload: true });
  assert.deepEqual(model.apply({ name: "branch.selected", data: { head_message_id: "a1" } }), { changed: true, reload: false });
});

test("a re-run stage makes its older run the active one", () => {
  const model = regenerating();
  model.apply({ name: "run.completed", run_id: "r2", data: { message: { ...a1b } } });
  model.upsertRun({ run_id: "r2", status: "completed", input_message_id: "u1", created_at: `${T}3`, stages: [] });
  model.upsertRun({ run_id: "r1", status: "queued", generation: 1, input_message_id: "u1", created_at: `${T}1`, stages: [] });
  assert.equal(model.latestRun().run_id, "r1");
  assert.equal(model.busy(), true);
});

test("a stage's earlier versions come with the run snapshot and are never dropped by a thinner one", () => {
  const model = new SessionModel("s1");
  const stage = (versions) => ({ name: "draft", agent: "drafter", status: "completed", output: "new", model: "demo-backup", versions });
  model.upsertRun({ run_id: "r1", status: "completed", generation: 1, input_message_id: "u1", created_at: `${T}1`, stages: [stage([{ status: "completed", model: "demo", output: "old" }])] });
  model.upsertRun({ run_id: "r1", status: "completed", generation: 1, input_message_id: "u1", created_at: `${T}1`, stages: [stage(undefined)] });
  assert.deepEqual(model.runs.get("r1").stages[0].versions, [{ status: "completed", model: "demo", output: "old" }]);
});
