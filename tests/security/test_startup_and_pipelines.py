"""Part 6 (server side): settings that cannot work are refused at start, and a session
whose pipeline left the file answers 422 unknown_pipeline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from server import keys
from server.app import create_app
from server.config import ConfigError, Settings
from server.pipelines import PipelinesError
from server.store.models import ChatSession
from tests.security.conftest import MakeSec

PRODUCTION = {"ENV": "production", "SECRET_KEY": "s" * 40, "REDIS_URL": "redis://127.0.0.1:1"}

PIPELINES = """
[providers.hosted]
base_url = "{base_url}"
api_key_env = "{key_env}"

[models.m]
provider = "hosted"
model = "some-model"

[agents.a]
system = "You are an agent."
models = ["m"]

[pipelines.default]
stages = [{{ name = "answer", agent = "a" }}]
"""


def test_production_without_mongodb_url_is_refused() -> None:
    with pytest.raises(ConfigError, match="MONGODB_URL"):
        Settings.from_env(PRODUCTION)
    Settings.from_env({**PRODUCTION, "MONGODB_URL": "mongodb://db.example:27017"})


def test_the_server_exits_2_naming_the_setting(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URL", "PIPELINES_FILE")}
    done = subprocess.run(
        [sys.executable, "-m", "chorus"], env={**env, **PRODUCTION, "DATA_DIR": str(tmp_path)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "MONGODB_URL is required when ENV=production" in done.stderr


def _pipelines(tmp_path: Path, base_url: str, key_env: str) -> Path:
    path = tmp_path / "pipelines.toml"
    path.write_text(PIPELINES.format(base_url=base_url, key_env=key_env))
    return path


@pytest.mark.parametrize(
    ("base_url", "key_env", "problem"),
    [
        ("https://llm.example/v1", "CHORUS_TEST_UNSET_KEY",
         "agents.a: no model can be called (hosted: the environment variable "
         "CHORUS_TEST_UNSET_KEY (its API key) is not set)"),
        ("${LLM_GATEWAY_URL}/v1", "PATH",
         "providers.hosted: base_url needs ${LLM_GATEWAY_URL}, which was not given"),
    ],
    ids=["api-key-variable-unset", "unknown-url-placeholder"],
)  # fmt: skip
def test_a_provider_that_can_never_be_called_is_refused_at_start(
    settings: Settings, tmp_path: Path, base_url: str, key_env: str, problem: str
) -> None:
    path = _pipelines(tmp_path, base_url, key_env)
    with pytest.raises(PipelinesError) as refused:
        create_app(settings.replace(pipelines_file=path))
    assert problem in str(refused.value)


def test_a_keyless_provider_with_a_fallback_starts(settings: Settings, tmp_path: Path) -> None:
    # A chain that falls back to a callable provider still answers every run.
    path = _pipelines(tmp_path, "https://llm.example/v1", "CHORUS_TEST_UNSET_KEY")
    text = path.read_text().replace('models = ["m"]', 'models = ["m", "backup"]')
    text += '\n[providers.local]\nbase_url = "http://vllm.example/v1"\n'
    text += '\n[models.backup]\nprovider = "local"\nmodel = "small"\n'
    path.write_text(text)
    create_app(settings.replace(pipelines_file=path))  # starts


def test_a_provider_no_pipeline_uses_may_lack_its_key(settings: Settings, tmp_path: Path) -> None:
    path = _pipelines(tmp_path, "https://llm.example/v1", "HOSTED_KEY")
    text = path.read_text() + '\n[providers.spare]\nbase_url = "x"\napi_key_env = "NOPE_UNSET"\n'
    path.write_text(text)
    keys = {"HOSTED_KEY": "sk-hosted"}
    create_app(settings.replace(pipelines_file=path, provider_keys=keys))  # starts


def test_the_demo_url_placeholder_is_left_to_the_embedded_mode(settings: Settings) -> None:
    app = create_app(settings.replace(demo_model_url=None))  # the built-in pipelines
    assert app[keys.PIPELINES].provider("demo").missing_url == "DEMO_MODEL_URL"


async def test_posting_to_a_session_whose_pipeline_vanished_is_422(make_sec: MakeSec) -> None:
    sec = await make_sec()
    mallory = await sec.user()
    session = ChatSession(user_id=mallory.user["user_id"], title="old", pipeline="retired")
    await sec.app[keys.STORE].create_session(session)
    path = f"/api/v1/sessions/{session.session_id}/messages"
    resp = await sec.client.post(path, json={"content": "hello"}, headers=mallory.auth)
    assert (resp.status, (await resp.json())["error"]["code"]) == (422, "unknown_pipeline")
    stored = await sec.app[keys.STORE].get_session(mallory.user["user_id"], session.session_id)
    assert stored is not None and stored.active_run_id is None  # nothing was started
    ws = await sec.client.ws_connect("/api/v1/ws", headers=mallory.auth)
    assert (await ws.receive_json())["type"] == "ready"
    await ws.send_json(
        {"id": 1, "type": "send", "session_id": session.session_id, "content": "hello"}
    )
    reply = await ws.receive_json()
    assert (reply["type"], reply["error"]["code"]) == ("error", "unknown_pipeline")
    await ws.close()
    await sec.still_serving()
