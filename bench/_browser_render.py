"""The Chromium half of bench_stream_render.py: the UI's MarkdownView in a real page.

Files are served to the page by Playwright's router straight from the checkout (no
server); each delta is rendered, sanitized (DOMPurify), enhanced (highlighting) and laid
out (offsetHeight), as a frame of the chat UI would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Route, sync_playwright

REPO = Path(__file__).resolve().parents[1]
ORIGIN = "http://bench.local"
TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".html": "text/html"}
PAGE = "<!doctype html><meta charset=utf-8><div class=markdown id=out></div>"

MEASURE = """async ([chars, delta, rounds]) => {
  const { MarkdownView, setHtml } = await import("/static/js/markdown/view.js");
  const { renderMarkdown } = await import("/static/js/markdown/stream.js");
  const { answer, prefixes } = await import("/bench/stream_answer.mjs");
  const text = answer(chars);
  const steps = prefixes(text, delta);
  const out = document.getElementById("out");
  const run = (render) => {
    const start = performance.now();
    for (const p of steps) {
      render(p);
      out.offsetHeight; // lay it out, as a frame would
    }
    return performance.now() - start;
  };
  const base = [];
  const mine = [];
  for (let r = 0; r < rounds; r++) {
    base.push(run((p) => setHtml(out, renderMarkdown(p))));
    const view = new MarkdownView(out);
    mine.push(run((p) => view.set(p)));
  }
  const shown = out.innerHTML;
  setHtml(out, renderMarkdown(text));
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return { deltas: steps.length, baseline_ms: median(base), chorus_ms: median(mine),
           same_html: shown === out.innerHTML };
}"""


def _serve(route: Route) -> None:
    path = route.request.url.removeprefix(ORIGIN).split("?")[0]
    if path == "/":
        route.fulfill(body=PAGE, content_type="text/html")
        return
    file = (REPO / path.lstrip("/")).resolve()
    if not file.is_relative_to(REPO) or not file.is_file():
        route.fulfill(status=404)
        return
    route.fulfill(body=file.read_bytes(), content_type=TYPES.get(file.suffix, "text/plain"))


def measure(chromium: str, chars: int, delta: int, rounds: int) -> dict[str, Any]:
    """Time both ways of rendering in headless Chromium; return the figures."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--headless=new"])
        try:
            page = browser.new_page()
            page.route(f"{ORIGIN}/**", _serve)
            page.goto(f"{ORIGIN}/")
            result: dict[str, Any] = page.evaluate(MEASURE, [chars, delta, rounds])
        finally:
            browser.close()
    return result
