// Streaming markdown render cost on a long answer (run by bench_stream_render.py).
//
// Feeds a ~20,000-character markdown answer in deltas the size a worker coalesces
// (DELTA characters, default 40: about 50 ms of tokens) and times, per answer:
//   baseline: markdown-it renders the whole text so far on every delta;
//   chorus:   StreamingMarkdown (static/js/markdown/stream.js) renders only the tail.
// Prints JSON: the times, characters parsed, and the ratio baseline / chorus.

import { renderMarkdown, StreamingMarkdown, createParser } from "../static/js/markdown/stream.js";
import { answer, prefixes as deltas } from "./stream_answer.mjs";

const CHARS = Number(process.env.CHARS || 20_000);
const DELTA = Number(process.env.DELTA || 40);
const ROUNDS = Number(process.env.ROUNDS || 5);

function time(fn) {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

const text = answer(CHARS);
const prefixes = deltas(text, DELTA);
const md = createParser();

// Warm-up (JIT), then alternate the two so drift on a shared machine hits both alike.
for (let i = 0; i < 2; i++) for (const p of prefixes.slice(0, 50)) renderMarkdown(p, md);
const base = [];
const mine = [];
let parsed = 0;
let same = true;
for (let round = 0; round < ROUNDS; round++) {
  base.push(time(() => { for (const p of prefixes) renderMarkdown(p, md); }));
  const stream = new StreamingMarkdown(md);
  mine.push(time(() => { for (const p of prefixes) stream.update(p); }));
  parsed = stream.parsedChars;
  same = same && stream.html() === renderMarkdown(text, md);
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const baseParsed = prefixes.reduce((sum, p) => sum + p.length, 0);
console.log(JSON.stringify({
  chars: text.length, deltas: prefixes.length, delta_chars: DELTA, rounds: ROUNDS,
  baseline_ms: median(base), chorus_ms: median(mine),
  baseline_per_delta_ms: median(base) / prefixes.length, chorus_per_delta_ms: median(mine) / prefixes.length,
  baseline_parsed_chars: baseParsed, chorus_parsed_chars: parsed,
  ratio: median(base) / median(mine), same_html: same,
}));
