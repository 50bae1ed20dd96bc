"""What an operator sees of real processes: each worker's /metrics, the embedded mode's
one /metrics, JSON logs carrying ids, and the one start-up line."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sys
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.redis_proc import free_port
from tests.support.api import Api
from tests.system.cluster import ChorusProcess, Cluster

pytestmark = pytest.mark.slow


async def _scrape(http: aiohttp.ClientSession, url: str) -> dict[tuple[str, str], float]:
    """GET a /metrics page; index each sample by (name, sorted labels as text)."""
    async with http.get(url) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    samples: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[(sample.name, labels)] = sample.value
    return samples


def _value(samples: dict[tuple[str, str], float], name: str, **labels: str) -> float:
    key = (name, ",".join(f"{k}={v}" for k, v in sorted(labels.items())))
    return samples.get(key, 0.0)


def _json_lines(proc: ChorusProcess) -> tuple[list[dict[str, Any]], list[str]]:
    """The process's output split into JSON log records and other lines."""
    records, other = [], []
    for line in proc.log.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            other.append(line)
    return records, other


async def _healthcheck(cluster: Cluster, role: str, **env: Any) -> int:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.healthcheck", role, env=cluster.environ(**env)
    )
    return await proc.wait()


async def _one_run(api: Api) -> dict[str, Any]:
    session_id = await api.new_session()
    run_id = (await api.send(session_id, "What is a monad?"))["run"]["run_id"]
    run = await api.wait_run(run_id)
    assert run["status"] == "completed", run
    return run


async def _embedded_run(
    cluster: Cluster, http: aiohttp.ClientSession, email: str
) -> tuple[ChorusProcess, Api, dict[str, Any]]:
    """A web process with its in-process worker, and one completed run of a new user."""
    web = await cluster.web(http, EMBEDDED_WORKER="1")
    api = await Api(http, web.url).sign_up(email)
    return web, api, await _one_run(api)


async def _scrape_after_jobs(
    http: aiohttp.ClientSession, url: str, stages: int
) -> dict[tuple[str, str], float]:
    """Scrape once the run's last job is counted finished: arq counts a job after it returns,
    which is after the run (completed by that job) can be read as completed."""
    done = {"function": "run_stage", "outcome": "completed"}
    async with asyncio.timeout(15):
        while True:
            samples = await _scrape(http, url)
            if _value(samples, "chorus_jobs_finished_total", **done) >= stages:
                return samples
            await asyncio.sleep(0.1)


def _assert_run_counted(samples: dict[tuple[str, str], float], stages: int) -> None:
    ok = {"provider": "demo", "model": "demo", "outcome": "ok"}
    assert _value(samples, "chorus_llm_attempts_total", **ok) == stages
    assert _value(samples, "chorus_llm_ttft_seconds_count", provider="demo", model="demo") == stages
    assert _value(samples, "chorus_llm_tokens_total", provider="demo", model="demo",
                  kind="completion") > 0  # fmt: skip
    assert _value(samples, "chorus_llm_cost_usd_total", provider="demo", model="demo") > 0
    assert _value(samples, "chorus_llm_stages_total", result="ok") == stages
    assert _value(samples, "chorus_jobs_started_total", function="run_stage") == stages
    done = {"function": "run_stage", "outcome": "completed"}
    assert _value(samples, "chorus_jobs_finished_total", **done) == stages
    assert _value(samples, "chorus_job_queue_wait_seconds_count", function="run_stage") == stages


async def test_a_run_moves_the_llm_and_job_metrics_on_the_workers_metrics(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    web = await cluster.web(http)
    port = free_port()
    worker = await cluster.worker(WORKER_METRICS_PORT=port)
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    before = await _scrape(http, metrics_url)
    assert _value(before, "chorus_jobs_started_total", function="run_stage") == 0
    assert ("chorus_lease_takeovers_total", "") in before

    api = await Api(http, web.url).sign_up("metrics@example.test")
    run = await _one_run(api)

    _assert_run_counted(
        await _scrape_after_jobs(http, metrics_url, len(run["stages"])), len(run["stages"])
    )
    # The image's HEALTHCHECK: the worker answers on its metrics port, nothing on another.
    assert await _healthcheck(cluster, "worker", WORKER_METRICS_PORT=port) == 0
    assert await _healthcheck(cluster, "worker", WORKER_METRICS_PORT=free_port()) == 1
    assert await _healthcheck(cluster, "any", PORT=free_port(), WORKER_METRICS_PORT=port) == 0
    # The web process serves its own metrics, not the worker's.
    on_web = await _scrape(http, f"{web.url}/metrics")
    assert _value(on_web, "chorus_jobs_started_total", function="run_stage") == 0
    _, banner = _json_lines(worker)
    assert len(banner) == 1 and banner[0].startswith("Chorus worker is running")
    assert metrics_url in banner[0] and "redis: redis://" in banner[0]


async def test_a_worker_whose_metrics_port_is_taken_serves_on_another(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = await cluster.worker(WORKER_METRICS_PORT=port)
        _, banner = _json_lines(worker)
        found = re.search(r"metrics: (http://127\.0\.0\.1:(\d+)/metrics)", banner[0])
        assert found is not None and int(found[2]) != port, banner
        samples = await _scrape(http, found[1])
        assert ("chorus_lease_takeovers_total", "") in samples
        records, _ = _json_lines(worker)
        assert any(r["level"] == "WARNING" and str(port) in r["msg"] for r in records)


async def test_the_embedded_worker_is_counted_on_the_web_metrics(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    web, _api, run = await _embedded_run(cluster, http, "embedded-metrics@example.test")
    samples = await _scrape_after_jobs(http, f"{web.url}/metrics", len(run["stages"]))
    _assert_run_counted(samples, len(run["stages"]))
    route = {"method": "POST", "route": "/api/v1/sessions/{session_id}/messages", "status": "202"}
    assert _value(samples, "chorus_http_requests_total", **route) == 1


async def test_logs_are_json_lines_carrying_ids_and_one_start_up_line(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    web, api, run = await _embedded_run(cluster, http, "logs@example.test")
    await cluster.close()  # flushes and ends the process: its whole output is in the file

    records, other = _json_lines(web)
    assert len(other) == 1, other  # the start-up line, nothing else outside JSON
    assert other[0].startswith(f"Chorus is serving on {web.url}/")
    for part in ("store: sqlite ", "redis: redis://", "models: demo http://",
                 "workers: 1 in-process"):  # fmt: skip
        assert part in other[0], (part, other[0])
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    startup = [r for r in records if r["logger"] == "chorus.startup"]
    assert len(startup) == 1 and startup[0]["store"].startswith("sqlite ")
    posted = [r for r in records if r["logger"] == "chorus.access" and r.get("status") == 202]
    assert len(posted) == 1
    assert posted[0]["request_id"] and posted[0]["user_id"] == api.user["user_id"]
    assert posted[0]["session_id"] == run["session_id"]
    polled = [r for r in records if r["logger"] == "chorus.access"
              and r["msg"].startswith(f"GET /api/v1/runs/{run['run_id']} ")]  # fmt: skip
    assert polled and all(r["run_id"] == run["run_id"] for r in polled)
    assert not [r for r in records if r["logger"].startswith(("httpx", "openai"))]
