"""AgentRegistry: the providers, models, agents and pipelines of one pipelines file."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import SecretStr, ValidationError

from server.errors import UnknownPipelineError
from server.pipelines import prompts
from server.pipelines.schema import PipelinesFile, ProviderSpec
from server.pipelines.validation import (
    DEFAULT_PIPELINE,
    describe_validation_error,
    semantic_problems,
)

DEFAULT_PIPELINES_FILE = Path(__file__).with_name("default.toml")
DEMO_URL_VARIABLE = "DEMO_MODEL_URL"
_T = TypeVar("_T")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class PipelinesError(ValueError):
    """The pipelines file is unusable; the message names the file and the problem."""


class UnknownName(LookupError):
    """No pipeline, agent, model or provider has that name."""


class UnknownPipeline(UnknownName, UnknownPipelineError):
    """No pipeline has that name (a session's pipeline removed from the file): 422 to clients."""

    def __init__(self, message: str) -> None:
        UnknownPipelineError.__init__(self, message)  # the client's message: a sentence
        self.args = (message,)  # str() reads like every other UnknownName


@dataclass(frozen=True)
class Provider:
    """An OpenAI-compatible endpoint; ``problem`` says why it cannot be called, if it cannot."""

    name: str
    base_url: str | None
    api_key: SecretStr | None = field(repr=False)
    input_usd_per_million: float
    output_usd_per_million: float
    rpm: int | None
    problem: str | None = None
    # The ${NAME} of base_url left unfilled, if any (the embedded mode fills DEMO_MODEL_URL).
    missing_url: str | None = None

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Return the price in USD of a call's tokens."""
        usd = prompt_tokens * self.input_usd_per_million
        usd += completion_tokens * self.output_usd_per_million
        return round(usd / 1_000_000, 10)


@dataclass(frozen=True)
class Model:
    """A model name agents use, served by ``provider`` as ``upstream``."""

    name: str
    provider: str
    upstream: str


@dataclass(frozen=True)
class Agent:
    """A system prompt template and the ordered chain of models that may answer it."""

    name: str
    description: str
    system: str
    models: tuple[str, ...]
    temperature: float
    max_tokens: int


@dataclass(frozen=True)
class Stage:
    """One stage of a pipeline: a name (a template variable later on), an agent, and
    whether the run pauses for the user's approval after it."""

    name: str
    agent: str
    approve: bool = False


@dataclass(frozen=True)
class Pipeline:
    """An ordered list of stages; the last stage's output is the assistant's answer."""

    name: str
    description: str
    stages: tuple[Stage, ...]


def _resolve_url(template: str, urls: Mapping[str, str]) -> tuple[str | None, str | None]:
    """Fill ``${NAME}`` placeholders; return (url, None) or (None, the first missing name)."""
    missing = [name for name in _PLACEHOLDER.findall(template) if not urls.get(name)]
    if missing:
        return None, missing[0]
    return _PLACEHOLDER.sub(lambda m: urls[m[1]].rstrip("/"), template), None


def _provider(
    name: str, spec: ProviderSpec, urls: Mapping[str, str], keys: Mapping[str, SecretStr]
) -> Provider:
    base_url, missing = _resolve_url(spec.base_url, urls)
    problem = None if missing is None else f"base_url needs ${{{missing}}}, which was not given"
    api_key = keys.get(spec.api_key_env) if spec.api_key_env else None
    if problem is None and spec.api_key_env and not (api_key and api_key.get_secret_value()):
        problem = f"the environment variable {spec.api_key_env} (its API key) is not set"
    return Provider(
        name=name, base_url=base_url, api_key=api_key or None, problem=problem,
        missing_url=missing,
        input_usd_per_million=spec.input_usd_per_million,
        output_usd_per_million=spec.output_usd_per_million, rpm=spec.rpm,
    )  # fmt: skip


def _parse(text: str, source: str) -> PipelinesFile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PipelinesError(f"pipelines file {source}: invalid TOML: {exc}") from None
    try:
        spec = PipelinesFile.model_validate(data)
    except ValidationError as exc:
        raise PipelinesError(f"pipelines file {source}: {describe_validation_error(exc)}") from None
    problems = semantic_problems(spec)
    if problems:
        raise PipelinesError(f"pipelines file {source}: " + "; ".join(problems))
    return spec


def api_key_variables(path: str | Path | None = None) -> tuple[str, ...]:
    """The API-key variables the providers of a pipelines file (None: the built-in one) name.

    ``Settings.from_env`` reads exactly these. A file that cannot be read or parsed names
    none here: ``AgentRegistry.load`` then refuses it with the reason.
    """
    source = Path(path) if path else DEFAULT_PIPELINES_FILE
    try:
        spec = _parse(source.read_text(encoding="utf-8"), str(source))
    except (OSError, PipelinesError):
        return ()
    return tuple(p.api_key_env for p in spec.providers.values() if p.api_key_env)


class AgentRegistry:
    """Look up pipelines, agents, models and providers; build a stage's chat messages."""

    def __init__(
        self, spec: PipelinesFile, urls: Mapping[str, str], keys: Mapping[str, SecretStr]
    ) -> None:
        self._providers = {n: _provider(n, p, urls, keys) for n, p in spec.providers.items()}
        self._models = {n: Model(n, m.provider, m.model) for n, m in spec.models.items()}
        self._agents = {
            n: Agent(n, a.description, a.system, tuple(a.models), a.temperature, a.max_tokens)
            for n, a in spec.agents.items()
        }
        self._pipelines = {
            n: Pipeline(
                n, p.description, tuple(Stage(s.name, s.agent, s.approve) for s in p.stages)
            )
            for n, p in spec.pipelines.items()
        }

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        demo_url: str | None = None,
        urls: Mapping[str, str] | None = None,
        keys: Mapping[str, SecretStr] | None = None,
    ) -> AgentRegistry:
        """Load a pipelines file (None: the built-in one); raise PipelinesError naming a problem.

        ``${NAME}`` in a provider's base_url is filled from ``urls`` (``demo_url`` is
        ``DEMO_MODEL_URL``); API keys come from ``keys``, by the variable a provider's
        ``api_key_env`` names (``Settings.provider_keys``: the environment is read there).
        """
        source = Path(path) if path is not None else DEFAULT_PIPELINES_FILE
        try:
            text = source.read_text(encoding="utf-8")
        except OSError as exc:
            raise PipelinesError(
                f"pipelines file {source}: cannot read it ({exc.strerror})"
            ) from None
        return cls.loads(text, source=str(source), demo_url=demo_url, urls=urls, keys=keys)

    @classmethod
    def loads(
        cls,
        text: str,
        *,
        source: str = "<string>",
        demo_url: str | None = None,
        urls: Mapping[str, str] | None = None,
        keys: Mapping[str, SecretStr] | None = None,
    ) -> AgentRegistry:
        """Load pipelines from TOML text (see ``load``)."""
        spec = _parse(text, source)
        all_urls = dict(urls or {})
        if demo_url:
            all_urls[DEMO_URL_VARIABLE] = demo_url
        return cls(spec, all_urls, keys or {})

    def pipeline_names(self) -> tuple[str, ...]:
        """Return the pipelines' names, in file order."""
        return tuple(self._pipelines)

    def pipeline(self, name: str) -> Pipeline:
        """Return a pipeline; raise UnknownPipeline (an UnknownName) if there is none."""
        try:
            return self._pipelines[name]
        except KeyError:
            raise UnknownPipeline(f"unknown pipeline {name!r}") from None

    def agent(self, name: str) -> Agent:
        """Return an agent; raise UnknownName if there is none of that name."""
        return _lookup(self._agents, name, "agent")

    def model(self, name: str) -> Model:
        """Return a model; raise UnknownName if there is none of that name."""
        return _lookup(self._models, name, "model")

    def provider(self, name: str) -> Provider:
        """Return a provider; raise UnknownName if there is none of that name."""
        return _lookup(self._providers, name, "provider")

    def providers(self) -> tuple[Provider, ...]:
        """Return every provider."""
        return tuple(self._providers.values())

    def build_messages(
        self,
        agent: Agent,
        *,
        history: Sequence[tuple[str, str]],
        message: str,
        outputs: Mapping[str, str] | None = None,
        stage: str = "",
    ) -> list[dict[str, str]]:
        """Return the chat messages for one stage performed by ``agent``."""
        return prompts.build_messages(
            agent.system, history=history, message=message, outputs=outputs, stage=stage
        )

    def describe(self) -> dict[str, Any]:
        """Return pipelines with their stages and agents as JSON (no URLs, keys or prompts)."""
        agents = [
            {"name": a.name, "description": a.description, "models": list(a.models),
             "temperature": a.temperature, "max_tokens": a.max_tokens}
            for a in self._agents.values()
        ]  # fmt: skip
        pipelines = [
            {"name": p.name, "description": p.description,
             "stages": [{"name": s.name, "agent": s.agent, "approve": s.approve}
                        for s in p.stages],
             "answer_stage": p.stages[-1].name}
            for p in self._pipelines.values()
        ]  # fmt: skip
        return {"default": DEFAULT_PIPELINE, "pipelines": pipelines, "agents": agents}


def _lookup(table: Mapping[str, _T], name: str, kind: str) -> _T:
    try:
        return table[name]
    except KeyError:
        raise UnknownName(f"unknown {kind} {name!r}") from None
