"""Runs over REST: post a message, read a run, cancel, retry; pipelines and usage."""

from __future__ import annotations

from aiohttp import web

from server import keys
from server.api.body import parse_body
from server.auth.identity import authenticate
from server.errors import NotFound
from server.logs import run_id_var, session_id_var
from server.sessions.schemas import PostMessageBody

routes = web.RouteTableDef()


@routes.post("/api/v1/sessions/{session_id}/messages")
async def post_message(request: web.Request) -> web.Response:
    """Store the user's message and start a run (202), or 409 session_busy."""
    identity = await authenticate(request)
    body = await parse_body(request, PostMessageBody)
    session_id = request.match_info["session_id"]
    session_id_var.set(session_id)
    message, run = await request.app[keys.SESSION_MANAGER].post_message(
        identity.user, session_id, body.content
    )
    return web.json_response(
        {"message": message.model_dump(mode="json"), "run": run.model_dump(mode="json")},
        status=202,
    )


@routes.get("/api/v1/runs/{run_id}")
async def get_run(request: web.Request) -> web.Response:
    """Return a run with every stage's status, output, model, attempts and usage."""
    identity = await authenticate(request)
    run_id = request.match_info["run_id"]
    run_id_var.set(run_id)
    run = await request.app[keys.STORE].get_run(run_id, identity.user.user_id)
    if run is None:
        raise NotFound("run not found")
    return web.json_response(run.model_dump(mode="json"))


@routes.post("/api/v1/runs/{run_id}/cancel")
async def cancel_run(request: web.Request) -> web.Response:
    """Cancel a run (202); a finished run is returned as it is."""
    identity = await authenticate(request)
    run_id_var.set(request.match_info["run_id"])
    run = await request.app[keys.SESSION_MANAGER].cancel_run(
        identity.user, request.match_info["run_id"]
    )
    return web.json_response({"run": run.model_dump(mode="json")}, status=202)


@routes.post("/api/v1/runs/{run_id}/retry")
async def retry_run(request: web.Request) -> web.Response:
    """Resume a failed or cancelled run from its first unfinished stage (202)."""
    identity = await authenticate(request)
    run_id_var.set(request.match_info["run_id"])
    run = await request.app[keys.SESSION_MANAGER].retry_run(
        identity.user, request.match_info["run_id"]
    )
    return web.json_response({"run": run.model_dump(mode="json")}, status=202)


@routes.get("/api/v1/pipelines")
async def list_pipelines(request: web.Request) -> web.Response:
    """Describe the pipelines with their stages and agents."""
    await authenticate(request)
    return web.json_response(request.app[keys.PIPELINES].describe())


@routes.get("/api/v1/usage")
async def usage(request: web.Request) -> web.Response:
    """Return the caller's tokens and cost, totals and per day."""
    identity = await authenticate(request)
    summary = await request.app[keys.STORE].usage_summary(identity.user.user_id)
    return web.json_response(summary.model_dump(mode="json"))
