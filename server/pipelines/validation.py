"""Checks a pipelines file needs beyond its schema: references, stage names, templates."""

from __future__ import annotations

from pydantic import ValidationError

from server.pipelines.prompts import BASE_VARIABLES, template_problem, template_variables
from server.pipelines.schema import PipelinesFile, PipelineSpec

DEFAULT_PIPELINE = "default"
_MAX_LISTED = 5


def describe_validation_error(exc: ValidationError) -> str:
    """Return pydantic's errors as ``where: what`` lines in the file's own terms."""
    lines = []
    for error in exc.errors()[:_MAX_LISTED]:
        where = ".".join(str(part) for part in error["loc"]) or "file"
        lines.append(f"{where}: {error['msg']}")
    more = exc.error_count() - _MAX_LISTED
    return "; ".join(lines) + (f" (and {more} more)" if more > 0 else "")


def _reference_problems(spec: PipelinesFile) -> list[str]:
    problems = [
        f"models.{name}.provider: unknown provider {model.provider!r}"
        for name, model in spec.models.items()
        if model.provider not in spec.providers
    ]
    for name, agent in spec.agents.items():
        problems += [
            f"agents.{name}.models: unknown model {model!r}"
            for model in agent.models
            if model not in spec.models
        ]
    return problems


def _pipeline_problems(name: str, pipeline: PipelineSpec, spec: PipelinesFile) -> list[str]:
    problems: list[str] = []
    earlier: set[str] = set()
    stage_names = {s.name for s in pipeline.stages}
    for stage in pipeline.stages:
        where = f"pipelines.{name}.stages.{stage.name}"
        if stage.name in BASE_VARIABLES:
            problems.append(f"{where}: the stage name {stage.name!r} is reserved")
        if stage.name in earlier:
            problems.append(f"{where}: duplicate stage name")
        agent = spec.agents.get(stage.agent)
        if agent is None:
            problems.append(f"{where}: unknown agent {stage.agent!r}")
        else:
            late = (template_variables(agent.system) & stage_names) - earlier - BASE_VARIABLES
            problems += [
                f"{where}: agent {stage.agent!r} uses ${var}, which is not an earlier stage"
                for var in sorted(late)
            ]
        earlier.add(stage.name)
    return problems


def _template_problems(spec: PipelinesFile) -> list[str]:
    allowed = BASE_VARIABLES | {s.name for p in spec.pipelines.values() for s in p.stages}
    problems = []
    for name, agent in spec.agents.items():
        problem = template_problem(agent.system, allowed)
        if problem is not None:
            problems.append(f"agents.{name}.system: {problem}")
    return problems


def semantic_problems(spec: PipelinesFile) -> list[str]:
    """Return every problem the schema cannot see (unknown names, bad templates...)."""
    problems = _reference_problems(spec) + _template_problems(spec)
    if DEFAULT_PIPELINE not in spec.pipelines:
        problems.append(f"pipelines: a pipeline named {DEFAULT_PIPELINE!r} is required")
    for name, pipeline in spec.pipelines.items():
        problems += _pipeline_problems(name, pipeline, spec)
    return problems
