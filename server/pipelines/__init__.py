"""Pipelines, agents, models and providers, declared in a TOML file (docs/providers.md)."""

from __future__ import annotations

from server.pipelines.prompts import build_messages, render_system
from server.pipelines.registry import (
    DEFAULT_PIPELINES_FILE,
    DEMO_URL_VARIABLE,
    Agent,
    AgentRegistry,
    Model,
    Pipeline,
    PipelinesError,
    Provider,
    Stage,
    UnknownName,
    UnknownPipeline,
)

__all__ = [
    "DEFAULT_PIPELINES_FILE",
    "DEMO_URL_VARIABLE",
    "Agent",
    "AgentRegistry",
    "Model",
    "Pipeline",
    "PipelinesError",
    "Provider",
    "Stage",
    "UnknownName",
    "UnknownPipeline",
    "build_messages",
    "render_system",
]
