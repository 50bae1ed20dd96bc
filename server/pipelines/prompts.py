"""Prompt templates: ``string.Template`` over a fixed context, and a stage's chat messages.

A system prompt sees ``$message`` (the user's new message), ``$history`` (the earlier
conversation as text), ``$stage`` (this stage's name), ``$previous`` (the output of
the stage before, or empty) and one variable per earlier stage of the pipeline,
named after it (``$plan``, ``$draft``). Write ``$$`` for a literal dollar sign.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from string import Template

BASE_VARIABLES = frozenset({"message", "history", "stage", "previous"})
_SPEAKERS = {"user": "User", "assistant": "Assistant"}


class _Context(dict[str, str]):
    # Validation at load time already refused unknown names; any left render empty.
    def __missing__(self, key: str) -> str:
        return ""


def template_problem(text: str, allowed: Iterable[str]) -> str | None:
    """Return what is wrong with a template (bad ``$`` or unknown variable), or None."""
    template = Template(text)
    if not template.is_valid():
        return "has an invalid placeholder (use $name or ${name}; $$ for a literal $)"
    unknown = sorted(set(template.get_identifiers()) - set(allowed))
    if unknown:
        names = ", ".join(f"${name}" for name in unknown)
        return f"uses unknown variable(s) {names}"
    return None


def template_variables(text: str) -> set[str]:
    """Return the variables a (valid) template uses."""
    return set(Template(text).get_identifiers())


def render_history(history: Sequence[tuple[str, str]]) -> str:
    """Render the conversation as ``User: …`` / ``Assistant: …`` paragraphs."""
    return "\n\n".join(
        f"{_SPEAKERS[role]}: {content}" for role, content in history if role in _SPEAKERS
    )


def render_system(
    template: str,
    *,
    history: Sequence[tuple[str, str]],
    message: str,
    outputs: Mapping[str, str],
    stage: str = "",
) -> str:
    """Render a system prompt template for one stage."""
    context = _Context(outputs)
    context.update(
        message=message,
        history=render_history(history),
        stage=stage,
        previous=list(outputs.values())[-1] if outputs else "",
    )
    return Template(template).substitute(context).strip()


def build_messages(
    system_template: str,
    *,
    history: Sequence[tuple[str, str]],
    message: str,
    outputs: Mapping[str, str] | None = None,
    stage: str = "",
) -> list[dict[str, str]]:
    """Return a stage's chat messages: system prompt, earlier conversation, the new message."""
    outputs = outputs or {}
    system = render_system(
        system_template, history=history, message=message, outputs=outputs, stage=stage
    )
    turns = [{"role": role, "content": content} for role, content in history if role in _SPEAKERS]
    return [{"role": "system", "content": system}, *turns, {"role": "user", "content": message}]
