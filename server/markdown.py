"""Markdown to sanitized HTML (markdown-it-py + nh3), off the event loop."""

from __future__ import annotations

import asyncio
from functools import cache

import nh3
from markdown_it import MarkdownIt

_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "code",
    "pre", "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
_ATTRIBUTES = {"a": {"href", "title"}, "code": {"class"}, "th": {"style"}, "td": {"style"}}


@cache
def _parser() -> MarkdownIt:
    # html=False: raw HTML in model output is shown as text, never interpreted.
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def render_markdown_sync(text: str) -> str:
    """Render markdown to HTML and keep only safe tags and attributes."""
    html = _parser().render(text)
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


async def render_markdown(text: str) -> str:
    """Render and sanitize in a worker thread so the loop stays free."""
    return await asyncio.to_thread(render_markdown_sync, text)
