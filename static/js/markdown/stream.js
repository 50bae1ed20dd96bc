// Markdown for answers as they stream in. Pure (no DOM): markdown-it, configured like the
// server's renderer (server/markdown.py), and an incremental renderer.
//
// Re-parsing the whole text on every delta costs O(length) per delta, O(length²) per
// answer. StreamingMarkdown parses only the tail: every top-level block that is followed
// by another block which starts on a complete line is final (a later line can no longer
// change it), so its HTML is handed out once and never parsed again. Only the last
// block or two are parsed on each update. bench/bench_stream_render.py measures it.

import markdownit from "../../vendor/markdown-it/markdown-it.esm.min.mjs";

/** markdown-it's `style="text-align:x"` on table cells becomes `class="align-x"` (strict CSP). */
function alignClasses(state) {
  for (const token of state.tokens) {
    if (token.type !== "th_open" && token.type !== "td_open") continue;
    const style = token.attrGet("style");
    if (!style) continue;
    token.attrs = token.attrs.filter(([name]) => name !== "style");
    token.attrSet("class", `align-${style.replace("text-align:", "")}`);
  }
}

/** A markdown-it instance with the server's options: CommonMark, tables, no raw HTML. */
export function createParser() {
  const md = markdownit("commonmark", { html: false, linkify: false }).enable("table");
  md.core.ruler.push("align_classes", alignClasses);
  return md;
}

let shared = null;
/** The parser shared by every view (markdown-it instances are reusable). */
export function parser() {
  shared ??= createParser();
  return shared;
}

/** Render a whole text at once. */
export function renderMarkdown(text, md = parser()) {
  return md.render(text);
}

/** Offset of the start of line `line` (0-based) in text. */
function lineOffset(text, line) {
  let offset = 0;
  for (let i = 0; i < line; i++) offset = text.indexOf("\n", offset) + 1;
  return offset;
}

function completeLines(text) {
  let count = 0;
  for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) count++;
  return count;
}

/**
 * Where the parsed tail can be cut: the last top-level block (not the first) that starts
 * on a complete line. A block starting on a line still being written could turn out to
 * belong to the block before it ("2" becoming "2. item" of the list above).
 */
export function freezePoint(tokens, text) {
  const complete = completeLines(text);
  let cut = null;
  let blocks = 0;
  tokens.forEach((token, index) => {
    if (token.level !== 0 || token.nesting === -1 || !token.map) return;
    blocks++;
    if (blocks > 1 && token.map[0] < complete) cut = { index, line: token.map[0] };
  });
  return cut && { index: cut.index, offset: lineOffset(text, cut.line) };
}

/** Incremental rendering of a text that only grows (a reset starts over). */
export class StreamingMarkdown {
  constructor(md = parser()) {
    this.md = md;
    this.frozen = []; // HTML of the final blocks, in order
    this.frozenSource = ""; // the text they were rendered from
    this.tail = "";
    this.parsedChars = 0; // characters parsed so far in total (for tests and the bench)
  }

  /**
   * Take the whole text so far. Returns {reset, added, tail}: reset when the text does
   * not extend what was frozen (start over), added = HTML of blocks frozen by this update,
   * tail = HTML of the rest (replaces the previous tail).
   */
  update(text) {
    let reset = false;
    if (!text.startsWith(this.frozenSource)) {
      this.frozen = [];
      this.frozenSource = "";
      reset = true;
    }
    const rest = text.slice(this.frozenSource.length);
    const env = {};
    let tokens = this.md.parse(rest, env);
    this.parsedChars += rest.length;
    const added = [];
    const cut = freezePoint(tokens, rest);
    if (cut) {
      added.push(this.md.renderer.render(tokens.slice(0, cut.index), this.md.options, env));
      this.frozen.push(added[0]);
      this.frozenSource += rest.slice(0, cut.offset);
      tokens = tokens.slice(cut.index);
    }
    this.tail = this.md.renderer.render(tokens, this.md.options, env);
    return { reset, added, tail: this.tail };
  }

  /** The HTML of everything so far. */
  html() {
    return this.frozen.join("") + this.tail;
  }
}
