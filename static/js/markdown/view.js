// Markdown in the DOM: sanitized (DOMPurify), enhanced (code blocks with a language label,
// highlighting and a copy button; links that open safely), and a live view for streams.

import DOMPurify from "../../vendor/dompurify/purify.es.mjs";
import { h } from "../util/dom.js";
import { highlight } from "./highlight.js";
import { StreamingMarkdown } from "./stream.js";

// The same tags as the server's sanitizer (server/markdown.py).
const TAGS = [
  "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "code",
  "pre", "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td",
];
const CLASS_OK = { CODE: /^language-[\w+#.-]{1,32}$/, TH: /^align-(left|center|right)$/, TD: /^align-(left|center|right)$/ };
const PURIFY = {
  ALLOWED_TAGS: TAGS,
  ALLOWED_ATTR: ["href", "title", "class", "start"],
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i,
  RETURN_DOM_FRAGMENT: true,
};

DOMPurify.addHook("uponSanitizeAttribute", (node, data) => {
  if (data.attrName === "style" && /^(TH|TD)$/.test(node.nodeName)) {
    // Older stored answers carry alignment as an inline style, which the CSP refuses.
    const side = /text-align:\s*(left|center|right)/.exec(data.attrValue)?.[1];
    if (side) node.classList.add(`align-${side}`);
  }
  if (data.attrName === "class") {
    const ok = CLASS_OK[node.nodeName];
    data.attrValue = data.attrValue.split(/\s+/).filter((c) => ok && ok.test(c)).join(" ");
    if (!data.attrValue) data.keepAttr = false;
  }
});

/** Sanitize HTML into a fragment of this document. */
export function sanitize(html) {
  return DOMPurify.sanitize(html, PURIFY);
}

async function copyText(button, text) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Copy failed";
  }
  button.dataset.state = "done";
  setTimeout(() => {
    button.textContent = button.dataset.label;
    delete button.dataset.state;
  }, 1500);
}

/** A copy button for a text produced on demand (label kept in data-label). */
export function copyButton(getText, { label = "Copy", testid = "copy", describedBy = null } = {}) {
  const button = h("button", {
    type: "button", class: "copy-button", testid, "aria-describedby": describedBy, dataset: { label },
  }, label);
  button.addEventListener("click", () => copyText(button, getText()));
  return button;
}

function enhanceCode(pre, live) {
  const code = pre.querySelector("code");
  if (!code) return;
  const language = /language-([\w+#.-]+)/.exec(code.className)?.[1]?.toLowerCase() ?? "";
  highlight(code, language);
  const source = code.textContent;
  const head = h("div", { class: "code-head" },
    h("span", { class: "code-lang", testid: "code-lang", text: language || "text" }),
    live ? null : copyButton(() => source, { label: "Copy code", testid: "copy-code" }));
  const block = h("div", { class: "code-block", testid: "code-block" });
  pre.replaceWith(block);
  block.append(head, pre);
  pre.tabIndex = 0; // scrollable: reachable by keyboard
}

/** Enhance sanitized markdown in place. live: a streaming tail (no copy buttons yet). */
export function enhance(root, { live = false } = {}) {
  for (const a of root.querySelectorAll("a[href]")) {
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow";
  }
  for (const pre of root.querySelectorAll("pre")) enhanceCode(pre, live);
  for (const table of root.querySelectorAll("table")) {
    table.tabIndex = 0; // it scrolls sideways on narrow screens
  }
}

/** Put sanitized, enhanced HTML into an element (server's content_html, a whole output). */
export function setHtml(el, html) {
  const fragment = sanitize(html);
  enhance(fragment);
  el.replaceChildren(fragment);
}

/**
 * A view of a markdown text that grows: final blocks are inserted once, only the tail is
 * rebuilt. live: the text is still streaming (its last code block gets no copy button
 * yet). `el.source` holds the text shown (for tests and debugging).
 */
export class MarkdownView {
  constructor(el, { live = false } = {}) {
    this.el = el;
    this.live = live;
    this.reset();
  }

  reset() {
    this.stream = new StreamingMarkdown();
    this.tailNodes = [];
    this.tailHtml = null;
    this.source = null;
    this.el.replaceChildren();
    this.el.source = "";
  }

  set(text) {
    if (text === this.source) return;
    if (!text) {
      this.reset();
      return;
    }
    const { reset, added, tail } = this.stream.update(text);
    if (reset) this.el.replaceChildren();
    if (reset || added.length || tail !== this.tailHtml) {
      for (const node of this.tailNodes) node.remove();
      for (const html of added) {
        const fragment = sanitize(html);
        enhance(fragment);
        this.el.append(fragment);
      }
      const fragment = sanitize(tail);
      enhance(fragment, { live: this.live });
      this.tailNodes = [...fragment.childNodes];
      this.el.append(fragment);
      this.tailHtml = tail;
    }
    this.source = text;
    this.el.source = text;
  }
}
