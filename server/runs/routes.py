"""The runs resource over REST: read a run, cancel it, retry it (via the RunService)."""

from __future__ import annotations

from aiohttp import web

from server import keys
from server.auth.identity import authenticate
from server.logs import run_id_var

routes = web.RouteTableDef()


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
