"""The documents in the repo: configuration generated from the settings, links that
resolve inside the repo, provider examples that load."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr

from server.config import Settings
from server.config_docs import Var, all_vars
from server.docgen import DOCS, configuration_md, format_default, main, setting_value
from server.pipelines import AgentRegistry

ROOT = DOCS.parent
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
_SECRET = "a-secret-key-of-at-least-32-bytes-for-tests"
_SOURCE_DIRS = ("chorus", "server", "workers", "static", "tests", "bench", "docs", ".github", ".ci")
_OUTSIDE = ("../" + "shared/", "/work/" + "shared")  # spelt apart so this file is no hit


def _variables(cls: type[BaseModel], prefix: str = "") -> dict[str, str | None]:
    """Each setting's dotted field path and the variable it is read from (None: no one)."""
    names: dict[str, str | None] = {}
    for name, info in cls.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            names |= _variables(info.annotation, f"{prefix}{name}.")
        else:
            alias = info.validation_alias
            names[prefix + name] = alias if isinstance(alias, str) else None
    return names


def test_every_setting_is_documented_once() -> None:
    documented = {var.field: var.env for var in all_vars()}
    assert len(documented) == len(all_vars())
    variables = _variables(Settings)
    # The providers' API keys: their variables are the ones the pipelines file names.
    assert [f for f, env in variables.items() if env is None] == ["provider_keys"]
    read = {f: env for f, env in variables.items() if env is not None}
    assert sorted(set(read) - set(documented)) == [], "add a Var to server/config_docs.py"
    assert sorted(set(documented) - set(read)) == []
    assert documented == read, "a Var names another variable than its field reads"


def _sample(var: Var, default: object) -> str:
    if var.sample is not None:
        return var.sample
    if isinstance(default, bool):
        return "0" if default else "1"
    if isinstance(default, int | float):
        return str(default + 1)
    return "sample-value"


@pytest.mark.parametrize("var", all_vars(), ids=lambda v: v.env)
def test_each_documented_variable_is_the_one_from_env_reads(var: Var) -> None:
    default = setting_value(Settings(), var.field)
    # ENV=production also needs a MONGODB_URL.
    env = {
        "SECRET_KEY": _SECRET,
        "MONGODB_URL": "mongodb://db.test",
        var.env: _sample(var, default),
    }
    assert setting_value(Settings.from_env(env), var.field) != default, var.env


def test_docs_configuration_md_is_generated_from_the_settings() -> None:
    assert (DOCS / "configuration.md").read_text() == configuration_md(), "run `make docs`"
    assert main(["--check"]) == 0


def test_defaults_are_shown_as_the_environment_spells_them() -> None:
    assert format_default(None) == "unset"
    assert format_default(True) == "`1`"
    assert format_default(()) == "empty"
    assert format_default(0.005) == "`0.005`"
    assert "| `WORKER_METRICS_PORT` | `9101` |" in configuration_md()


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md")), ROOT / "bench" / "README.md"]


@pytest.mark.parametrize("doc", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve_inside_the_repo(doc: Path) -> None:
    text = doc.read_text()
    assert not any(needle in text for needle in _OUTSIDE)
    for target in _LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        assert (doc.parent / target).resolve().exists(), f"{doc.name}: {target}"
        assert (doc.parent / target).resolve().is_relative_to(ROOT), f"{doc.name}: {target}"


def test_nothing_in_the_repo_points_outside_it() -> None:
    offenders = []
    for path in ROOT.rglob("*"):
        parts = path.relative_to(ROOT).parts
        if not path.is_file() or (parts[0] not in _SOURCE_DIRS and len(parts) > 1):
            continue
        if path.suffix not in (".py", ".md", ".toml", ".yml", ".yaml", ".json", ".js", ""):
            continue
        text = path.read_text(errors="replace")
        if any(needle in text for needle in _OUTSIDE):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def _toml_blocks(text: str) -> list[str]:
    return re.findall(r"```toml\n(.*?)```", text, re.S)


def test_provider_examples_load_with_their_keys_from_the_environment() -> None:
    blocks = _toml_blocks((DOCS / "providers.md").read_text())
    assert len(blocks) >= 4
    for block in blocks:
        keys = re.findall(r'api_key_env = "([A-Z0-9_]+)"', block)
        registry = AgentRegistry.loads(block, keys={k: SecretStr("sk-test") for k in keys})
        assert registry.pipeline_names(), block
        assert all(p.problem is None for p in registry.providers()), block
        for key in keys:  # without its key a provider says so instead of calling out
            missing = AgentRegistry.loads(block, keys={})
            assert any(key in (p.problem or "") for p in missing.providers())


def test_the_websocket_document_names_every_command_event_and_close_code() -> None:
    from server.events.bus import EVENT_NAMES
    from server.ws import protocol
    from server.ws.commands import COMMANDS

    text = (DOCS / "websocket.md").read_text()
    for name in [*COMMANDS, *EVENT_NAMES, "unknown_command", "invalid_message", "resync"]:
        assert f"`{name}`" in text, name
    codes = [protocol.GOING_AWAY, protocol.POLICY_VIOLATION, protocol.TRY_AGAIN_LATER,
             protocol.AUTH_FAILED, 1009, 1011]  # fmt: skip
    for code in codes:
        assert f"| {code} |" in text, code
