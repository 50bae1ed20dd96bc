// Unit tests of the streaming markdown renderer (static/js/markdown/stream.js).

import assert from "node:assert/strict";
import { test } from "node:test";

import { StreamingMarkdown, createParser, freezePoint, renderMarkdown } from "../../static/js/markdown/stream.js";

const DOC = [
  "# Title", "", "Some **bold** and `code`.", "", "1. one", "2. two", "", "3. three (same list, loose)", "",
  "- a", "- b", "  continued", "", "| a | b | c |", "|:--|:-:|--:|", "| 1 | 2 | 3 |", "",
  "```python", "def f(x):", "", "    return x", "```", "", "> quote", "lazy", "", "Setext", "===", "",
  "Last paragraph without a newline",
].join("\n");

function feed(text, step) {
  const stream = new StreamingMarkdown(createParser());
  for (let end = step; end < text.length; end += step) stream.update(text.slice(0, end));
  stream.update(text);
  return stream;
}

test("fed in pieces of any size, the HTML equals rendering the whole text at once", () => {
  for (const step of [1, 2, 3, 7, 40, 1000]) {
    const stream = feed(DOC, step);
    assert.equal(stream.html(), renderMarkdown(DOC), `step ${step}`);
  }
});

test("final blocks are handed out once and never parsed again", () => {
  const stream = feed(DOC, 5);
  assert.ok(stream.frozen.length >= 6, `only ${stream.frozen.length} blocks frozen`);
  const whole = Array.from({ length: Math.ceil(DOC.length / 5) }, (_, i) => Math.min(DOC.length, (i + 1) * 5))
    .reduce((sum, n) => sum + n, 0);
  assert.ok(stream.parsedChars * 3 < whole, `parsed ${stream.parsedChars} of ${whole}`);
});

test("a line still being written never freezes the block before it", () => {
  // "2" could become "2. two", an item of the list above: the list stays in the tail.
  const md = createParser();
  const text = "1. one\n\n2";
  assert.equal(freezePoint(md.parse(text, {}), text), null);
  const stream = new StreamingMarkdown(md);
  stream.update(text);
  stream.update("1. one\n\n2. two\n");
  assert.equal(stream.html(), renderMarkdown("1. one\n\n2. two\n"));
  assert.match(stream.html(), /<ol>\n<li>\n<p>one<\/p>\n<\/li>\n<li>\n<p>two/);
});

test("a text that does not extend the last one (stage.reset, a retry) starts over", () => {
  const stream = new StreamingMarkdown();
  stream.update("# One\n\nfirst attempt\n\nmore");
  const { reset, tail } = stream.update("## Two");
  assert.equal(reset, true);
  assert.equal(stream.frozen.length, 0);
  assert.equal(tail, "<h2>Two</h2>\n");
});

test("table alignment is a class, never an inline style; raw HTML stays text", () => {
  const html = renderMarkdown("| a | b |\n|:-:|--:|\n| 1 | 2 |\n\n<script>alert(1)</script>");
  assert.match(html, /<th class="align-center">a<\/th>/);
  assert.match(html, /<td class="align-right">2<\/td>/);
  assert.doesNotMatch(html, /style=/);
  assert.match(html, /&lt;script&gt;/);
});
