"""The runs resource over REST: read a run, cancel it, retry it, approve or reject the
stage it awaits (via the RunService)."""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web

from server import keys
from server.api.body import RequestModel, parse_body
from server.auth.identity import authenticate
from server.logs import run_id_var
from server.runs.schemas import ApproveBody, RejectBody

routes = web.RouteTableDef()
B = TypeVar("B", bound=RequestModel)


async def _optional_body(request: web.Request, model: type[B]) -> B:
    """The JSON body, or the model's defaults when the request has no body."""
    if not request.body_exists:
        return model()
    return await parse_body(request, model)


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
    body = await _optional_body(request, ApproveBody)
    run_id = request.match_info["run_id"]
    run_id_var.set(run_id)
    run = await request.app[keys.RUN_SERVICE].approve_run(identity.user, run_id, body.output)
    return web.json_response({"run": run.model_dump(mode="json")}, status=202)


@routes.post("/api/v1/runs/{run_id}/reject")
async def reject_run(request: web.Request) -> web.Response:
    """Reject the stage the run awaits: the run ends cancelled, its error "rejected"."""
    identity = await authenticate(request)
    body = await _optional_body(request, RejectBody)
    run_id = request.match_info["run_id"]
    run_id_var.set(run_id)
    run = await request.app[keys.RUN_SERVICE].reject_run(identity.user, run_id, body.reason)
    return web.json_response({"run": run.model_dump(mode="json")})
