"""Settings: from_env is the one reader of the environment; bad values name their variable;
secrets never show."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import SecretStr

from server.config import ConfigError, Limits, Settings
from server.pipelines import AgentRegistry

SECRET = "a-secret-key-of-at-least-32-bytes-for-tests"
PIPELINES = """
[providers.hosted]
base_url = "https://llm.example/v1"
api_key_env = "HOSTED_KEY"

[providers.other]
base_url = "https://other.example/v1"
api_key_env = "OTHER_KEY"

[models.m]
provider = "hosted"
model = "big"

[agents.a]
system = "You help."
models = ["m"]

[pipelines.default]
stages = [{ name = "answer", agent = "a" }]
"""


def test_direct_construction_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9999")
    monkeypatch.setenv("RATE_LLM_PER_USER", "3")
    monkeypatch.setenv("SECRET_KEY", "s" * 40)
    monkeypatch.setenv("port", "9998")  # not even under the field's own name
    settings = Settings(host="0.0.0.0")
    assert (settings.port, settings.limits.llm_per_user, settings.secret_key) == (8080, 100, None)
    assert Limits().llm_per_user == 100
    assert Settings.from_env().port == 9999  # from_env reads os.environ when given nothing


def test_from_env_reads_only_the_mapping_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9999")
    assert Settings.from_env({}).port == 8080
    assert Settings.from_env({"port": "1", "limits": "{}"}).port == 8080  # variables only


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "eighty"}, "PORT must be an integer, got 'eighty'"),
        ({"BCRYPT_ROUNDS": "3"}, "BCRYPT_ROUNDS must be >= 4, got 3"),
        ({"RATE_LOGIN_PER_IP": "0"}, "RATE_LOGIN_PER_IP must be >= 1, got 0"),
        ({"STAGE_TIMEOUT_S": "soon"}, "STAGE_TIMEOUT_S must be a number, got 'soon'"),
        ({"ENV": "staging"}, "ENV must be 'production' or 'development', got 'staging'"),
        ({"EMBEDDED_WORKER": "perhaps"}, "EMBEDDED_WORKER must be 1 or 0"),
        ({"REAPER_INTERVAL_S": "61"}, "REAPER_INTERVAL_S must be <= 60, got 61"),
        ({"REAPER_STALE_S": "-1"}, "REAPER_STALE_S must be >= 0"),
        ({"WS_RATE_PER_S": "0"}, "WS_RATE_PER_S must be > 0"),
        ({"TRUSTED_PROXIES": "10.0.0.0/8, not-an-address"}, "TRUSTED_PROXIES: 'not-an-address'"),
        ({"LEASE_RENEW_S": "7"}, "LEASE_RENEW_S must be > 0 and below LEASE_TTL_S"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY must be at least 32 bytes"),
        ({"METRICS_TOKEN": "short"}, "METRICS_TOKEN must be at least 16 characters"),
        ({"ENV": "production", "SECRET_KEY": SECRET}, "MONGODB_URL is required"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_the_variable(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env(env)
    assert str(refused.value).startswith(message), refused.value


def test_the_bounds_themselves_are_accepted() -> None:
    settings = Settings.from_env({"BCRYPT_ROUNDS": "4", "REAPER_INTERVAL_S": "60",
                                  "RATE_LOGIN_PER_IP": "1", "RUN_MAX_RECOVERIES": "0"})  # fmt: skip
    assert (settings.bcrypt_rounds, settings.reaper_interval_s) == (4, 60)
    assert (settings.limits.login_per_ip, settings.run_max_recoveries) == (1, 0)


def test_empty_values_are_unset_and_lists_are_comma_separated() -> None:
    settings = Settings.from_env({
        "PORT": "", "ENV": "", "SECRET_KEY": "", "METRICS_PORT": "0", "EMBEDDED_WORKER": "no",
        "ALLOWED_ORIGINS": " https://a.example/ ,, https://b.example",
        "TRUSTED_PROXIES": "10.0.0.0/8,127.0.0.1", "LOG_LEVEL": "debug",
        "UI_API_BASE": "https://api.example/", "RATE_REGISTER_PER_IP": "7",
    })  # fmt: skip
    assert (settings.port, settings.env, settings.secret_key) == (8080, "development", None)
    assert settings.metrics_port is None and settings.embedded_worker is False
    assert settings.allowed_origins == ("https://a.example", "https://b.example")
    assert settings.trusted_proxies == ("10.0.0.0/8", "127.0.0.1")
    assert (settings.log_level, settings.ui_api_base) == ("DEBUG", "https://api.example")
    assert settings.limits == Limits(register_per_ip=7)


def test_secrets_never_show_in_a_repr_or_a_log(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    path = tmp_path / "pipelines.toml"
    path.write_text(PIPELINES)
    secrets = {
        "SECRET_KEY": SECRET,
        "METRICS_TOKEN": "a-metrics-token-0123456789",
        "MONGODB_URL": "mongodb://user:mongo-password@db.example:27017",
        "REDIS_URL": "redis://:redis-password@r.example:6379/0",
        "HOSTED_KEY": "sk-provider-key",
    }
    settings = Settings.from_env(secrets | {"PIPELINES_FILE": str(path)})
    assert settings.provider_keys["HOSTED_KEY"].get_secret_value() == secrets["HOSTED_KEY"]
    with caplog.at_level(logging.INFO):
        logging.getLogger("chorus.test").info("settings %s %r", settings, settings)
    for text in (repr(settings), str(settings), caplog.text, str(settings.model_dump())):
        for value in secrets.values():
            assert value not in text
    assert settings.mongodb_url is not None
    assert settings.mongodb_url.get_secret_value() == secrets["MONGODB_URL"]


def test_provider_keys_are_the_variables_the_pipelines_file_names(tmp_path: Path) -> None:
    path = tmp_path / "pipelines.toml"
    path.write_text(PIPELINES)
    env = {"PIPELINES_FILE": str(path), "HOSTED_KEY": "sk-hosted", "OTHER_KEY": "",
           "UNRELATED_KEY": "sk-unrelated"}  # fmt: skip
    settings = Settings.from_env(env)
    assert {k: v.get_secret_value() for k, v in settings.provider_keys.items()} == {
        "HOSTED_KEY": "sk-hosted"
    }
    registry = AgentRegistry.load(settings.pipelines_file, keys=settings.provider_keys)
    hosted = registry.provider("hosted")
    assert hosted.problem is None and hosted.api_key == SecretStr("sk-hosted")
    assert "OTHER_KEY" in (registry.provider("other").problem or "")
    # A pipelines file that cannot be read names no key here; loading it says why.
    assert Settings.from_env({"PIPELINES_FILE": str(tmp_path / "none.toml")}).provider_keys == {}


def test_replace_changes_fields_by_name_and_validates_again() -> None:
    settings = Settings(secret_key=SECRET, bcrypt_rounds=4)
    changed = settings.replace(port=9000, redis_url="redis://r:6379/0", data_dir="/tmp/x")
    assert (changed.port, changed.bcrypt_rounds, changed.data_dir) == (9000, 4, Path("/tmp/x"))
    assert changed.redis_url == SecretStr("redis://r:6379/0")
    assert changed.secret_key == settings.secret_key and settings.port == 8080
    with pytest.raises(ValueError, match="port"):
        settings.replace(port="eighty")
    # Bounds guard the environment; tests may go below them (a token that expires at once).
    assert settings.replace(jwt_ttl_s=2).jwt_ttl_s == 2
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1  # type: ignore[misc]
