"""The deployment files agree with the code: commands, ports, variables, pins, metrics.

Docker cannot run here, so the files are checked as text: every command names a module
that exists, every port is the one the settings use, every variable is one Chorus
reads, the image pins what pyproject.toml asks for, and the dashboard's queries name
metrics the processes export.
"""

from __future__ import annotations

import json
import re
import shlex
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from server.config import Settings
from server.config_docs import all_vars
from server.metrics import Metrics
from workers.metrics import WorkerMetrics

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = Settings()
CODE = ("chorus", "server", "workers")  # the packages the image installs
ROLES = {"web": ["python", "-m", "server"], "worker": ["python", "-m", "workers"]}
# Variables the compose file passes that Chorus does not read itself: provider API keys
# (named by `api_key_env` in the pipelines file).
PROVIDER_KEYS = {"OPENAI_API_KEY"}


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of each Dockerfile line, continuations joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def _instructions(name: str) -> list[str]:
    return [args for instruction, args in _dockerfile() if instruction == name]


def _docker_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in _instructions("ENV"):
        env.update(dict(pair.split("=", 1) for pair in shlex.split(args)))
    return env


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def _module_exists(command: list[str]) -> bool:
    assert command[:2] == ["python", "-m"], command
    spec = find_spec(command[2])
    if spec is None:
        return False
    is_package = spec.submodule_search_locations is not None
    return not is_package or find_spec(f"{command[2]}.__main__") is not None


def test_the_image_runs_the_web_process_by_default_and_as_a_non_root_user() -> None:
    assert json.loads(_instructions("CMD")[-1]) == ROLES["web"]
    user = _instructions("USER")[-1]
    assert user not in ("root", "0")
    healthcheck = _instructions("HEALTHCHECK")[-1]
    command = json.loads(healthcheck.split("CMD", 1)[1])
    assert _module_exists(command) and command[2] == "server.healthcheck"


def test_the_image_installs_the_pins_in_a_layer_before_the_code() -> None:
    steps = [(i, a) for i, a in _dockerfile() if i in ("COPY", "RUN")]
    pins = steps.index(("COPY", "requirements.txt ./"))
    install = next(n for n, (i, a) in enumerate(steps) if i == "RUN" and "requirements" in a)
    first_code = next(n for n, (i, a) in enumerate(steps) if i == "COPY" and a.startswith(CODE))
    assert pins < install < first_code
    copied = {a.split()[0] for i, a in steps if i == "COPY"}
    assert {"chorus", "server", "workers", "static", "pyproject.toml", "requirements.txt"} <= copied


def test_the_build_context_leaves_out_local_state() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "data"} <= ignored  # data holds the generated secret key
    copied = {a.split()[0] for i, a in _dockerfile() if i == "COPY"}
    assert copied.isdisjoint(ignored)


def test_the_pins_satisfy_pyproject() -> None:
    import tomllib

    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[_norm(name)] = Version(version)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = _norm(requirement.name)
        assert name in pins, f"{name} is not pinned: run `make lock`"
        assert pins[name] in requirement.specifier, f"{name}=={pins[name]} vs {spec}"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_image_ports_are_the_settings_ports() -> None:
    env = _docker_env()
    exposed = {int(p) for args in _instructions("EXPOSE") for p in args.split()}
    assert exposed == {int(env["PORT"]), int(env["WORKER_METRICS_PORT"])}
    assert int(env["PORT"]) == DEFAULTS.port
    assert int(env["WORKER_METRICS_PORT"]) == DEFAULTS.worker_metrics_port
    assert env["HOST"] == "0.0.0.0"
    documented = {var.env for var in all_vars()}
    python_env = {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR",
                  "PIP_DISABLE_PIP_VERSION_CHECK"}  # fmt: skip
    assert set(env) - documented <= python_env


def test_procfile_and_compose_run_the_same_commands() -> None:
    procfile = dict(
        line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )
    services = _compose()["services"]
    for role, command in ROLES.items():
        assert procfile[role].split() == command
        assert services[role]["command"] == command
        assert _module_exists(command)


def test_compose_waits_for_healthy_backends_and_checks_its_own_health() -> None:
    services = _compose()["services"]
    for backend in ("redis", "mongo"):
        assert services[backend]["healthcheck"]["test"][0] == "CMD"
    for role in ROLES:
        service = services[role]
        assert {name: dep["condition"] for name, dep in service["depends_on"].items()} == {
            "redis": "service_healthy",
            "mongo": "service_healthy",
        }
        probe = service["healthcheck"]["test"]
        assert probe[1:] == ["python", "-m", "server.healthcheck", role]
    assert services["worker"]["deploy"]["replicas"] >= 2


def test_compose_volumes_are_named_and_declared() -> None:
    compose = _compose()
    declared = set(compose["volumes"])
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source.startswith("./") or source in declared, volume
            if source.startswith("./"):
                assert (ROOT / source).exists(), volume


def test_compose_environment_is_what_chorus_reads() -> None:
    services = _compose()["services"]
    documented = {var.env for var in all_vars()}
    env = services["web"]["environment"]
    assert services["worker"]["environment"] == env
    assert set(env) - documented <= PROVIDER_KEYS, set(env) - documented
    assert env["EMBEDDED_WORKER"] == "0" and env["ENV"] == "production"
    _published, container = services["web"]["ports"][0].split(":")
    assert int(container) == DEFAULTS.port
    redis_port = int(env["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
    assert redis_port == 6379 and "redis" in services and "mongo" in services
    assert str(DEFAULTS.worker_metrics_port) in services["worker"]["expose"]


def test_prometheus_scrapes_the_ports_chorus_serves_metrics_on() -> None:
    config = yaml.safe_load((ROOT / "docs" / "monitoring" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    web_target = jobs["chorus-web"]["static_configs"][0]["targets"][0]
    assert web_target == f"web:{DEFAULTS.port}"
    assert jobs["chorus-worker"]["dns_sd_configs"][0]["port"] == DEFAULTS.worker_metrics_port
    assert all(job["metrics_path"] == "/metrics" for job in jobs.values())


def _exported_metric_names() -> set[str]:
    names = set()
    for registry in (Metrics().registry, WorkerMetrics().registry):
        for family in registry.collect():
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
            for suffix in suffixes.get(family.type, [""]):
                names.add(family.name + suffix)
    return names


def test_the_dashboard_queries_only_exported_metrics() -> None:
    dashboard = json.loads((ROOT / "docs" / "monitoring" / "grafana-dashboard.json").read_text())
    exported = _exported_metric_names()
    used = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            used |= set(re.findall(r"\bchorus_[a-z_]+", target["expr"]))
    assert used and used - exported == set()


def test_every_exported_metric_is_documented() -> None:
    table = (ROOT / "docs" / "operations.md").read_text()
    documented = set(re.findall(r"^\| `(chorus_[a-z_]+)` \|", table, re.M))
    families = {re.sub(r"_(bucket|sum|count)$", "", name) for name in _exported_metric_names()}
    assert families - documented == set(), "add a row to the metrics table of operations.md"
    assert documented - families == set()


def _workflow(name: str) -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    return data


def test_ci_runs_the_readme_test_command() -> None:
    steps = _workflow("ci.yml")["jobs"]["test"]["steps"]
    assert any("bash .ci/run" in step.get("run", "") for step in steps)
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("make test")


def test_ci_hands_the_jobs_settings_to_the_tests() -> None:
    # `.ci/run` runs under sudo, which drops the environment unless told to keep it: the
    # tests would silently run on SQLite and mongomock instead of the MongoDB service.
    job = _workflow("ci.yml")["jobs"]["test"]
    assert job["env"]["MONGODB_URL"].startswith("mongodb://")
    assert "mongo" in job["services"]
    run = next(step["run"] for step in job["steps"] if "bash .ci/run" in step.get("run", ""))
    kept = re.search(r"--preserve-env=(\S+)", run)
    assert kept is not None and set(job["env"]) <= set(kept[1].split(",")), run


def test_release_pushes_the_image_to_ghcr_on_a_version_tag() -> None:
    workflow = _workflow("release.yml")
    trigger = workflow[True]  # YAML 1.1 reads the key `on` as a boolean
    assert trigger["push"]["tags"] == ["v*.*.*"]
    assert workflow["permissions"]["packages"] == "write"
    steps = workflow["jobs"]["image"]["steps"]
    uses = {step.get("uses", "").split("@")[0]: step for step in steps}
    assert uses["docker/login-action"]["with"]["registry"] == "ghcr.io"
    assert "ghcr.io/${{ github.repository }}" in uses["docker/metadata-action"]["with"]["images"]
    build = uses["docker/build-push-action"]["with"]
    assert build["push"] is True and build["file"] == "Dockerfile"


@pytest.mark.parametrize("ecosystem", ["pip", "docker", "docker-compose", "github-actions"])
def test_dependabot_watches(ecosystem: str) -> None:
    config = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())
    assert config["version"] == 2
    assert ecosystem in {update["package-ecosystem"] for update in config["updates"]}
