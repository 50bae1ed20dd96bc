"""Markdown to sanitized HTML (markdown-it-py + nh3), off the event loop."""

from __future__ import annotations

import asyncio
from functools import cache

import nh3
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore

_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "code",
    "pre", "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
_ATTRIBUTES = {"a": {"href", "title"}, "code": {"class"}, "ol": {"start"}}
_ALIGN_CLASSES = {f"align-{side}" for side in ("left", "center", "right")}
# Table cells carry their alignment as a class: the page's CSP forbids inline styles.
_CLASSES = {"th": _ALIGN_CLASSES, "td": _ALIGN_CLASSES}


def _align_classes(state: StateCore) -> None:
    """Turn markdown-it's ``style="text-align:x"`` on table cells into ``class="align-x"``."""
    for token in state.tokens:
        for child in [token, *(token.children or [])]:
            style = child.attrGet("style")
            if child.type in ("th_open", "td_open") and isinstance(style, str):
                del child.attrs["style"]
                child.attrSet("class", "align-" + style.removeprefix("text-align:"))


@cache
def _parser() -> MarkdownIt:
    # html=False: raw HTML in model output is shown as text, never interpreted.
    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    md.core.ruler.push("align_classes", _align_classes)
    return md


def render_markdown_sync(text: str) -> str:
    """Render markdown to HTML and keep only safe tags and attributes."""
    html = _parser().render(text)
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        allowed_classes=_CLASSES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


async def render_markdown(text: str) -> str:
    """Render and sanitize in a worker thread so the loop stays free."""
    return await asyncio.to_thread(render_markdown_sync, text)
