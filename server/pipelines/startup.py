"""Refuse, at start, pipelines whose runs could never reach a model."""

from __future__ import annotations

from server.pipelines.registry import (
    DEMO_URL_VARIABLE,
    Agent,
    AgentRegistry,
    PipelinesError,
    Provider,
)


def _callable(provider: Provider) -> bool:
    # ${DEMO_MODEL_URL} alone is left open: the embedded mode starts the demo model.
    return provider.problem is None or provider.missing_url == DEMO_URL_VARIABLE


def _used_agents(registry: AgentRegistry) -> list[Agent]:
    names = {
        stage.agent
        for name in registry.pipeline_names()
        for stage in registry.pipeline(name).stages
    }
    return [registry.agent(name) for name in sorted(names)]


def startup_problems(registry: AgentRegistry) -> list[str]:
    """What makes the pipelines unusable: unfilled base_url placeholders, dead agents.

    A ``${NAME}`` in a used provider's base_url that nothing fills in is always a
    mistake. An unset API-key variable is one only when it leaves an agent no model to
    call (every run of its stages would fail); a chain that falls back to another
    provider still works, and the start-up line names the unusable one.
    """
    problems: list[str] = []
    seen: set[str] = set()
    for agent in _used_agents(registry):
        providers = [registry.provider(registry.model(m).provider) for m in agent.models]
        for provider in providers:
            unfilled = provider.missing_url not in (None, DEMO_URL_VARIABLE)
            if unfilled and provider.name not in seen:
                seen.add(provider.name)
                problems.append(f"providers.{provider.name}: {provider.problem}")
        if not any(_callable(p) for p in providers):
            reasons = "; ".join(sorted({f"{p.name}: {p.problem}" for p in providers}))
            problems.append(f"agents.{agent.name}: no model can be called ({reasons})")
    return problems


def check_startable(registry: AgentRegistry) -> None:
    """Raise PipelinesError naming every problem ``startup_problems`` finds."""
    problems = startup_problems(registry)
    if problems:
        raise PipelinesError("pipelines file: " + "; ".join(problems))
