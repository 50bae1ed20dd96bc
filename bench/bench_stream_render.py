"""Streaming markdown render cost in the chat UI, on a 20,000-character answer.

The answer arrives in 40-character deltas (about what a worker coalesces in 50 ms); the
baseline re-renders the whole text on every delta, Chorus's StreamingMarkdown only the
blocks that are not final yet. Two measurements:

- Node (bench/stream_render.mjs): markdown parse and render only, and a check that the
  final HTML is the same as rendering the whole text at once;
- headless Chromium (bench/_browser_render.py, skipped without /usr/bin/chromium): what
  a frame of the chat UI does per delta, with DOMPurify, highlighting and layout.

Bar: Chorus ≥ 5× faster in both, and the same HTML at the end.

    .venv/bin/python bench/bench_stream_render.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("stream_render.mjs")
CHROMIUM = "/usr/bin/chromium"
BAR = 5.0


def main() -> int:
    """Run the Node script and print its figures, the ratio and PASS/MISS."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--chars", type=int, default=20_000)
    parser.add_argument("--delta", type=int, default=40)
    args = parser.parse_args()
    node = shutil.which("node")
    if node is None:
        print("node not found: this bench needs Node.js", file=sys.stderr)
        return 1
    env = dict(os.environ, CHARS=str(args.chars), DELTA=str(args.delta),
               ROUNDS="3" if args.quick else "7")  # fmt: skip
    out = subprocess.run([node, str(SCRIPT)], env=env, check=True, capture_output=True, text=True)
    r = json.loads(out.stdout)
    print(f"streaming render: {r['chars']:,} chars in {r['deltas']} deltas of {r['delta_chars']}")
    for label, key in (("baseline (whole text every delta)", "baseline"),
                       ("chorus (final blocks frozen)", "chorus")):  # fmt: skip
        print(f"  {label:34} {r[key + '_ms']:8.1f} ms per answer, "
              f"{r[key + '_per_delta_ms']:.3f} ms per delta, "
              f"{r[key + '_parsed_chars']:,} chars parsed")  # fmt: skip
    ok = r["ratio"] >= BAR and r["same_html"]
    print(f"  → {r['ratio']:.1f}× faster; same final HTML: {r['same_html']} "
          f"(bar ≥ {BAR:g}×) {'PASS' if ok else 'MISS'}")  # fmt: skip
    if not os.access(CHROMIUM, os.X_OK):
        print(f"chromium: skipped ({CHROMIUM} not found)")
        return 0 if ok else 1
    from _browser_render import measure

    b = measure(CHROMIUM, args.chars, args.delta, 3 if args.quick else 5)
    ratio = b["baseline_ms"] / b["chorus_ms"]
    print(f"in Chromium (render + DOMPurify + highlight + layout, {b['deltas']} deltas):")
    for label, key in (("baseline (whole text every delta)", "baseline"),
                       ("chorus (MarkdownView)", "chorus")):  # fmt: skip
        ms = b[key + "_ms"]
        print(f"  {label:34} {ms:8.1f} ms per answer, {ms / b['deltas']:.3f} ms per delta")
    browser_ok = ratio >= BAR and b["same_html"]
    print(f"  → {ratio:.1f}× faster; same final DOM: {b['same_html']} "
          f"(bar ≥ {BAR:g}×) {'PASS' if browser_ok else 'MISS'}")  # fmt: skip
    return 0 if ok and browser_ok else 1


if __name__ == "__main__":
    sys.exit(main())
