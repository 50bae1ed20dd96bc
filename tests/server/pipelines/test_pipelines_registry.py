"""AgentRegistry: the built-in file, descriptions, prompts, and clear errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from server.pipelines import (
    DEFAULT_PIPELINES_FILE,
    AgentRegistry,
    PipelinesError,
    UnknownName,
)

GOOD = """
[providers.p]
base_url = "http://models.internal:8000/v1"
api_key_env = "P_KEY"
input_usd_per_million = 1.0
output_usd_per_million = 2.0

[models.m]
provider = "p"
model = "upstream-m"

[agents.a]
system = "Plan for: $message"
models = ["m"]

[agents.b]
system = "Use the plan: $plan (previous: $previous, stage: $stage)"
models = ["m"]

[pipelines.default]
stages = [{ name = "plan", agent = "a" }, { name = "write", agent = "b" }]
"""


def test_the_default_file_loads_with_plan_draft_review_and_chat() -> None:
    registry = AgentRegistry.load(demo_url="http://127.0.0.1:1234/v1")
    assert registry.pipeline_names() == ("default", "chat", "reviewed")
    assert [s.name for s in registry.pipeline("default").stages] == ["plan", "draft", "review"]
    assert [s.name for s in registry.pipeline("chat").stages] == ["answer"]
    # Only `reviewed` has an approval gate, after its plan.
    gates = {p: [s.approve for s in registry.pipeline(p).stages] for p in registry.pipeline_names()}
    assert gates == {"default": [False] * 3, "chat": [False], "reviewed": [True, False, False]}
    demo = registry.provider("demo")
    assert demo.base_url == "http://127.0.0.1:1234/v1" and demo.problem is None
    assert registry.agent("drafter").models == ("demo", "demo-backup")
    assert registry.model("demo").upstream == "chorus-demo"
    assert AgentRegistry.load(DEFAULT_PIPELINES_FILE).pipeline_names() == (
        "default",
        "chat",
        "reviewed",
    )


def test_without_the_demo_url_the_provider_says_what_is_missing() -> None:
    provider = AgentRegistry.load().provider("demo")
    assert provider.base_url is None
    assert provider.problem is not None and "${DEMO_MODEL_URL}" in provider.problem


def test_describe_lists_pipelines_stages_and_agents_without_secrets() -> None:
    registry = AgentRegistry.loads(GOOD, keys={"P_KEY": SecretStr("sk-secret-value")})
    described = registry.describe()
    assert described["default"] == "default"
    [pipeline] = described["pipelines"]
    assert pipeline["stages"] == [
        {"name": "plan", "agent": "a", "approve": False},
        {"name": "write", "agent": "b", "approve": False},
    ]
    assert pipeline["answer_stage"] == "write"
    assert {a["name"] for a in described["agents"]} == {"a", "b"}
    text = json.dumps(described)
    for secret in ("sk-secret-value", "models.internal", "P_KEY", "Plan for"):
        assert secret not in text
    assert "sk-secret-value" not in repr(registry.provider("p"))


def test_api_keys_come_from_the_given_keys() -> None:
    key = AgentRegistry.loads(GOOD, keys={"P_KEY": SecretStr("k")}).provider("p").api_key
    assert key is not None and key.get_secret_value() == "k"
    missing = AgentRegistry.loads(GOOD, keys={}).provider("p")
    assert missing.problem is not None and "P_KEY" in missing.problem


def test_prices_give_costs() -> None:
    provider = AgentRegistry.loads(GOOD, keys={}).provider("p")
    assert provider.cost(1_000_000, 500_000) == pytest.approx(2.0)
    assert provider.cost(0, 0) == 0


def test_unknown_names_raise_a_clear_lookup_error() -> None:
    registry = AgentRegistry.loads(GOOD, keys={})
    for lookup in (registry.pipeline, registry.agent, registry.model, registry.provider):
        with pytest.raises(UnknownName, match=r"unknown .* 'nope'"):
            lookup("nope")


def test_build_messages_renders_the_template_and_keeps_the_conversation() -> None:
    registry = AgentRegistry.loads(GOOD, keys={})
    msgs = registry.build_messages(
        registry.agent("b"),
        history=[("user", "earlier"), ("assistant", "reply"), ("system", "ignored")],
        message="now",
        outputs={"plan": "1. do it"},
        stage="write",
    )
    assert msgs == [
        {"role": "system", "content": "Use the plan: 1. do it (previous: 1. do it, stage: write)"},
        {"role": "user", "content": "earlier"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": "now"},
    ]


def test_templates_see_message_and_history_and_keep_literal_dollars() -> None:
    text = GOOD.replace('"Plan for: $message"', '"Cost $$5. $message // $history"')
    registry = AgentRegistry.loads(text, keys={})
    [system, *_] = registry.build_messages(
        registry.agent("a"), history=[("user", "hi"), ("assistant", "yo")], message="q"
    )
    assert system["content"] == "Cost $5. q // User: hi\n\nAssistant: yo"


def test_default_prompts_render_earlier_outputs() -> None:
    registry = AgentRegistry.load()
    [system, user] = registry.build_messages(
        registry.agent("reviewer"),
        history=[],
        message="Q?",
        outputs={"plan": "PLAN", "draft": "DRAFT"},
    )
    assert "PLAN" in system["content"] and "DRAFT" in system["content"]
    assert "$" not in system["content"]
    assert user == {"role": "user", "content": "Q?"}


STAGES = '{ name = "plan", agent = "a" }, { name = "write", agent = "b" }'
SWAPPED = '{ name = "write", agent = "b" }, { name = "plan", agent = "a" }'


def _bad(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


BAD_FILES = [
    ("[providers.p\nbase_url = 1", "invalid TOML"),
    (_bad('agent = "b"', 'agent = "ghost"'), "stages.write: unknown agent 'ghost'"),
    (_bad('models = ["m"]\n\n[pipelines', 'models = ["m", "x"]\n\n[pipelines'),
     "agents.b.models: unknown model 'x'"),
    (_bad('provider = "p"', 'provider = "q"'), "models.m.provider: unknown provider 'q'"),
    (_bad(f"stages = [{STAGES}]", "stages = []"),
     "pipelines.default.stages: List should have at least 1 item"),
    (_bad("input_usd_per_million = 1.0", 'input_usd_per_million = "cheap"'),
     "providers.p.input_usd_per_million: Input should be a valid number"),
    (_bad('models = ["m"]\n\n[agents.b]', 'models = ["m"]\ntemprature = 0.2\n\n[agents.b]'),
     "agents.a.temprature: Extra inputs are not permitted"),
    (_bad("[pipelines.default]", "[pipelines.main]"), "a pipeline named 'default' is required"),
    (_bad("$message", "$mesage"), "agents.a.system: uses unknown variable(s) $mesage"),
    (_bad("$message", "$ 5"), "agents.a.system: has an invalid placeholder"),
    (_bad(STAGES, SWAPPED), "stages.write: agent 'b' uses $plan, which is not an earlier stage"),
    (_bad('name = "write"', 'name = "plan"'), "stages.plan: duplicate stage name"),
    (_bad('name = "write"', 'name = "message"'), "the stage name 'message' is reserved"),
    (_bad('name = "write"', 'name = "Write It"'), "String should match pattern"),
    ("", "providers: Field required"),
    (_bad('name = "write", agent = "b"', 'name = "write", agent = "b", approve = "yes"'),
     "stages.1.approve: Input should be a valid boolean"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "problem"), BAD_FILES)
def test_bad_files_are_refused_naming_the_problem(text: str, problem: str) -> None:
    with pytest.raises(PipelinesError) as caught:
        AgentRegistry.loads(text, source="custom.toml", keys={})
    message = str(caught.value)
    assert message.startswith("pipelines file custom.toml: ")
    assert problem in message


def test_a_stage_may_declare_an_approval_gate() -> None:
    text = GOOD.replace(
        '{ name = "plan", agent = "a" }', '{ name = "plan", agent = "a", approve = true }'
    )
    registry = AgentRegistry.loads(text, keys={})
    assert [s.approve for s in registry.pipeline("default").stages] == [True, False]
    [pipeline] = registry.describe()["pipelines"]
    assert [s["approve"] for s in pipeline["stages"]] == [True, False]


def test_an_unreadable_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PipelinesError, match="cannot read it"):
        AgentRegistry.load(tmp_path / "missing.toml")


def test_a_file_on_disk_loads(tmp_path: Path) -> None:
    path = tmp_path / "pipelines.toml"
    path.write_text(GOOD)
    assert AgentRegistry.load(path, keys={}).pipeline("default").stages[-1].name == "write"
