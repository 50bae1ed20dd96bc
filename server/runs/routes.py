"""The runs resource over REST: read a run, cancel it, retry it, approve or reject the
stage it awaits, regenerate it, re-run a stage (via the RunService)."""

from __future__ import annotations

import re

from aiohttp import web

from server import keys
from server.api.body import parse_optional_body
from server.auth.identity import authenticate
from server.errors import NotFound
from server.logs import run_id_var
from server.runs.schemas import ApproveBody, RegenerateBody, RejectBody, RerunStageBody

routes = web.RouteTableDef()
_STAGE_INDEX = re.compile(r"[0-9]{1,4}")


@routes.get("/api/v1/runs/{run_id}")
async def get_run(request: web.Request) -> web.Response:
    """Return a run with every stage's status, output, model, attempts and usage.

    A running stage also carries ``partial`` (its text streamed so far) with
    ``partial_seq``/``partial_epoch``: the session event it is as of.
    """
    identity = await authenticate(request)
    run_id = request.match_info["run_id"]
    run_id_var.set(run_id)
    return web.json_response(await request.app[keys.RUN_SERVICE].run_view(identity.user, run_id))


@routes.post("/api/v1/runs/{run_id}/cancel")
async def cancel_run(request: web.Request) -> web.Response:
    """Cancel a run (202); a finished run is returned as it is."""
    identity = await authenticate(request)
    run_id = request.match_info["run_id"]
    run_id_var.set(run_id)
    run = await request.app[keys.RUN_SERVICE].cancel_run(identity.user, run_id)
    return web.json_response({"run": run.model_dump(mode="json")}, status=202)


@routes.post("/api/v1/runs/{run_id}/retry")
async def retry_run(request: web.Request) -> web.Response:
    """Resume a failed or cancelled run from its first unfinished stage (202)."""
    identity = await authenticate(request)
    run_id = request.match_info["run_id"]
    run_id_var.set(run_id)
    run = await request.app[keys.RUN_SERVICE].retry_run(identity.user, run_id)
    return web.json_response({"run": run.model_dump(mode="json")}, status=202)


@routes.post("/api/v1/runs/{run_id}/approve")
async def approve_run(request: web.Request) -> web.Response:
    """Approve the stage the run awaits (its output optionally edited); the run goes on (202)."""
    identity = await authenticate(request)
    body = await parse_optional_body(request, ApproveBody)
    run_id = request.match_info["run_id"]
    run_id_var.set(run_id)
    run = await request.app[keys.RUN_SERVICE].approve_run(identity.user, run_id, body.output)
    return web.json_response({"run": run.model_dump(mode="json")}, status=202)


@routes.post("/api/v1/runs/{run_id}/reject")
async def reject_run(request: web.Request) -> web.Response:
    """Reject the stage the run awaits: the run ends cancelled, its error "rejected"."""
    identity = await authenticate(request)
    body = await parse_optional_body(request, RejectBody)
    run_id = request.match_info["run_id"]
    run_id_var.set(run_id)
    run = await request.app[keys.RUN_SERVICE].reject_run(identity.user, run_id, body.reason)
    return web.json_response({"run": run.model_dump(mode="json")})


@routes.post("/api/v1/runs/{run_id}/regenerate")
async def regenerate_run(request: web.Request) -> web.Response:
    """Answer the run's message again in a new run, a new branch (202)."""
    identity = await authenticate(request)
    body = await parse_optional_body(request, RegenerateBody)
    run_id = request.match_info["run_id"]
    run_id_var.set(run_id)
    run = await request.app[keys.RUN_SERVICE].regenerate(identity.user, run_id, body.pipeline)
    return web.json_response({"run": run.model_dump(mode="json")}, status=202)


@routes.post("/api/v1/runs/{run_id}/stages/{index}/rerun")
async def rerun_stage(request: web.Request) -> web.Response:
    """Run one stage of a finished run again, then the stages after it (202)."""
    identity = await authenticate(request)
    body = await parse_optional_body(request, RerunStageBody)
    run_id = request.match_info["run_id"]
    run_id_var.set(run_id)
    index = request.match_info["index"]
    if not _STAGE_INDEX.fullmatch(index):
        raise NotFound(f"the run has no stage {index[:8]!r}")
    run = await request.app[keys.RUN_SERVICE].rerun_stage(
        identity.user, run_id, int(index), body.model
    )
    return web.json_response({"run": run.model_dump(mode="json")}, status=202)
