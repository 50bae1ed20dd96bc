"""The start-up line: where things run, and never a password."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from server.banner import announce, describe_models, describe_store, redact
from server.config import Settings
from server.pipelines import AgentRegistry

TOML = """
[providers.openai]
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"
[providers.local]
base_url = "http://localhost:11434/v1"
[models.gpt]
provider = "openai"
model = "gpt-4o-mini"
[models.llama]
provider = "local"
model = "llama3.2"
[agents.assistant]
models = ["gpt", "llama"]
system = "Answer."
[pipelines.default]
stages = [{ name = "answer", agent = "assistant" }]
"""


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
        ("mongodb://chorus:hunter2@db1,db2/?replicaSet=rs0", "mongodb://chorus:***@"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
    ],
)
def test_passwords_in_urls_are_hidden(url: str, shown: str) -> None:
    assert redact(url).startswith(shown)
    assert "hunter2" not in redact(url)


def test_the_store_is_named_with_where_it_lives(tmp_path: Path) -> None:
    assert describe_store(Settings(data_dir=tmp_path)) == f"sqlite {tmp_path}/chorus.sqlite3"
    mongo = Settings(mongodb_url="mongodb://u:secret@db:27017", mongodb_db="prod")
    assert describe_store(mongo) == "mongodb mongodb://u:***@db:27017 db=prod"


def test_providers_are_named_with_their_endpoint_or_why_they_are_unusable() -> None:
    registry = AgentRegistry.loads(TOML, keys={})
    described = describe_models(registry)
    assert "local http://localhost:11434/v1" in described
    assert "openai UNUSABLE: the environment variable OPENAI_API_KEY" in described


def test_the_line_is_printed_once_and_logged(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    registry = AgentRegistry.loads(TOML, keys={"OPENAI_API_KEY": SecretStr("sk-x")})
    settings = Settings(redis_url="redis://:pw@r:6379/0")
    with caplog.at_level("INFO", logger="chorus.startup"):
        line = announce("Chorus is serving on http://h:1/", settings, registry, "1 in-process",
                        private_redis=True)  # fmt: skip
    assert capsys.readouterr().out == line + "\n"
    assert "redis: redis://:***@r:6379/0 (private redis-server)" in line
    assert "workers: 1 in-process" in line and "sk-x" not in line
    (record,) = caplog.records
    assert record.getMessage() == "Chorus is serving on http://h:1/"
    assert record.__dict__["workers"] == "1 in-process"
