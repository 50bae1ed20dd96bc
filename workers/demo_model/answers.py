"""Deterministic answers: the same prompt always yields the same text and token count.

A "token" here is one word with the whitespace that follows it, so the streamed
chunks concatenate to exactly the answer and usage counts are honest and stable.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from workers.demo_model.faults import strip_markers

_TOKEN = re.compile(r"\S+\s*")
_ROLE_WORDS = re.compile(
    r"\b(plan|planner|planning|draft|drafter|drafting|writer|review|reviewer|reviewing|critic)\b",
    re.IGNORECASE,
)
_ROLE_OF = {
    "plan": "plan", "planner": "plan", "planning": "plan",
    "draft": "draft", "drafter": "draft", "drafting": "draft", "writer": "draft",
    "review": "review", "reviewer": "review", "reviewing": "review", "critic": "review",
}  # fmt: skip
_PER_MESSAGE_OVERHEAD = 3
_TOPIC_WORDS = 12


@dataclass(frozen=True)
class Turn:
    """One chat message as the demo model sees it."""

    role: str
    content: str


def tokenize(text: str) -> list[str]:
    """Split text into word tokens whose concatenation is the text."""
    return _TOKEN.findall(text.strip())


def prompt_tokens(turns: Sequence[Turn]) -> int:
    """Count the prompt's tokens: its words plus a small overhead per message."""
    return sum(len(t.content.split()) + _PER_MESSAGE_OVERHEAD for t in turns)


def detect_role(system: str) -> str:
    """Return plan, draft, review or chat from the first role word of a system prompt."""
    found = _ROLE_WORDS.search(system)
    return _ROLE_OF[found.group(1).lower()] if found else "chat"


def _topic(text: str) -> str:
    words = strip_markers(text).split()
    topic = " ".join(words[:_TOPIC_WORDS]).rstrip(".?!,;:")
    return topic + ("…" if len(words) > _TOPIC_WORDS else "") if topic else "your message"


def _pick(digest: bytes, index: int, options: Sequence[str]) -> str:
    return options[digest[index] % len(options)]


_OPENERS = ("Here is", "This is", "Below is")
_QUALITIES = ("clear", "practical", "concise")
_CLOSERS = (
    "Start small, check the result, then build on what works.",
    "The key is to keep each step simple and verifiable.",
    "If anything is unclear, ask a follow-up and I will go deeper.",
)


def _plan(topic: str, d: bytes) -> str:
    return (
        f"**Plan** for *{topic}*:\n\n"
        f"1. Restate the question: {topic}.\n"
        f"2. List the {_pick(d, 0, ('three', 'four', 'five'))} points that matter most, "
        "with one example each.\n"
        f"3. End with a {_pick(d, 1, _QUALITIES)} recommendation."
    )


def _draft(topic: str, d: bytes) -> str:
    return (
        f"### Draft\n\n{_pick(d, 2, _OPENERS)} a {_pick(d, 1, _QUALITIES)} take on "
        f"*{topic}*. It follows the plan step by step.\n\n"
        "- First, the essentials and why they matter.\n"
        "- Then, a worked example.\n"
        f"- Finally, a recommendation.\n\n{_pick(d, 3, _CLOSERS)}"
    )


def _review(topic: str, d: bytes) -> str:
    return (
        f"## Answer\n\n{_pick(d, 2, _OPENERS)} the reviewed answer about **{topic}**.\n\n"
        "1. **Essentials** — what it is and why it matters.\n"
        "2. **Example** — a short worked case.\n"
        f"3. **Recommendation** — {_pick(d, 3, _CLOSERS).lower()}\n\n"
        "_Reviewed for accuracy and clarity._"
    )


def _chat(topic: str, d: bytes) -> str:
    return (
        f"You asked about *{topic}*. {_pick(d, 2, _OPENERS)} a {_pick(d, 1, _QUALITIES)} "
        f"answer from the demo model.\n\n{_pick(d, 3, _CLOSERS)}"
    )


_COMPOSERS = {"plan": _plan, "draft": _draft, "review": _review, "chat": _chat}


def compose(turns: Sequence[Turn]) -> str:
    """Return the markdown answer for a conversation, from its system prompt and last user turn."""
    system = "\n".join(t.content for t in turns if t.role in ("system", "developer"))
    last_user = next((t.content for t in reversed(turns) if t.role == "user"), "")
    digest = hashlib.sha256(f"{system}\x00{last_user}".encode()).digest()
    return _COMPOSERS[detect_role(system)](_topic(last_user), digest)
