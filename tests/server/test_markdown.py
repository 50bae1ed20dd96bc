"""Server-side markdown: sanitized HTML that a strict CSP (no inline styles) shows right."""

from __future__ import annotations

import re

from server.errors import NotFound, error_body
from server.markdown import render_markdown, render_markdown_sync

TABLE = "| name | qty | price |\n|:-----|:---:|------:|\n| tea | 2 | 3.50 |\n"


def test_table_alignment_is_a_class_never_an_inline_style() -> None:
    html = render_markdown_sync(TABLE)
    assert "style" not in html
    assert '<th class="align-left">name</th>' in html
    assert '<th class="align-center">qty</th>' in html
    assert '<td class="align-right">3.50</td>' in html


def test_only_alignment_classes_survive_sanitizing() -> None:
    html = render_markdown_sync("<td class='evil' style='x'>a</td>\n\n[x](javascript:alert(1))")
    tags = re.findall(r"<[^>]*>", html)
    assert tags == ["<p>", "</p>", "<p>", "</p>"], tags  # raw HTML is text, the link refused


async def test_render_off_the_loop_gives_the_same_html() -> None:
    assert await render_markdown("```python\nx = 1\n```") == render_markdown_sync(
        "```python\nx = 1\n```"
    )
    assert 'class="language-python"' in render_markdown_sync("```python\nx = 1\n```")


def test_error_messages_start_with_a_capital_letter() -> None:
    assert NotFound("session not found").message == "Session not found"
    assert error_body("not_found", "no such resource")["error"]["message"] == "No such resource"
    assert error_body("x", "")["error"]["message"] == ""
