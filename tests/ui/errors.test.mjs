// Unit tests of the human error sentences (static/js/errors.js).

import assert from "node:assert/strict";
import { test } from "node:test";

import { failureDetails, reason, retryingSentence, runFailedSentence, stageFailedSentence } from "../../static/js/errors.js";

const RAW500 = "HTTP 500: Error code: 500 - {'error': 'demo model: injected failure'}";
const STAGE = `agent 'draft': every model failed (demo, demo-backup) after 2 attempt(s); last error: demo-backup attempt 2: ${RAW500}`;

test("a raw provider error becomes one short clause", () => {
  assert.equal(reason(RAW500), "the model provider kept failing (HTTP 500)");
  assert.equal(reason("HTTP 400: bad request"), "the model provider refused the request (HTTP 400)");
  assert.equal(reason("HTTP 429: slow down"), "the model provider is limiting requests (HTTP 429)");
  assert.equal(reason("timed out waiting for the model"), "the model took too long to answer");
  assert.equal(reason("stream broken: reset"), "the model's answer was cut off");
  assert.equal(reason("connection failed: refused"), "the model provider could not be reached");
  assert.equal(reason("agent 'x': the stage deadline of 60s passed after 3 attempt(s); last error: none"), "it ran out of time");
  assert.equal(reason(""), "something went wrong");
  assert.equal(reason("Your daily budget is spent; it resets at 2026-12-02T00:00:00.000Z"), "the daily budget is spent");
});

test("sentences start with a capital letter and name the next model", () => {
  assert.equal(retryingSentence({ error: RAW500, nextModel: "demo-backup" }),
    "The model provider kept failing (HTTP 500). Retrying with demo-backup…");
  assert.equal(stageFailedSentence({ name: "draft", error: STAGE }),
    "The draft stage failed: the model provider kept failing (HTTP 500).");
});

test("the details list each raw text once; the run's line never repeats the stage's", () => {
  const run = {
    error: `stage draft failed: ${STAGE}`,
    stages: [
      { name: "plan", status: "completed", retries: [], error: null },
      { name: "draft", status: "failed", error: STAGE, retries: [
        { attempt: 1, error: RAW500, nextModel: null },
        { attempt: 2, error: RAW500, nextModel: "demo-backup" },
        { attempt: 3, error: "timed out waiting for the model", nextModel: null },
      ] },
    ],
  };
  const lines = failureDetails(run);
  assert.deepEqual(lines.map((l) => l.label), ["draft, attempts 1, 2", "draft, attempt 3", "draft stage"]);
  assert.equal(new Set(lines.map((l) => l.text)).size, lines.length);
  assert.equal(runFailedSentence(run), "The run stopped at the draft stage. Retry picks up from there.");
  assert.doesNotMatch(runFailedSentence(run), /HTTP/);
});
