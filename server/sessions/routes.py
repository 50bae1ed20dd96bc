"""The sessions resource: create, list, get, rename, delete, and its messages."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server import keys
from server.api.body import parse_body, parse_query
from server.auth.identity import authenticate
from server.errors import InvalidRequest, NotFound
from server.logs import session_id_var
from server.sessions.branches import branch_messages
from server.sessions.schemas import (
    CreateSessionBody,
    ListMessagesQuery,
    ListSessionsQuery,
    PostMessageBody,
    RenameSessionBody,
    SelectBranchBody,
    SessionQuery,
)
from server.store.models import ChatSession, utcnow

RECENT_MESSAGES = 50
routes = web.RouteTableDef()


def _dump(session: ChatSession) -> dict[str, Any]:
    return session.model_dump(mode="json")


def check_pipeline(app: web.Application, name: str) -> None:
    """Refuse a pipeline name the registry does not know (422)."""
    if name not in app[keys.PIPELINES].pipeline_names():
        raise InvalidRequest(f"pipeline: unknown pipeline {name!r}")


async def _own_session(request: web.Request, user_id: str) -> ChatSession:
    session_id = request.match_info["session_id"]
    session_id_var.set(session_id)
    session = await request.app[keys.STORE].get_session(user_id, session_id)
    if session is None:
        raise NotFound("session not found")
    return session


@routes.post("/api/v1/sessions")
async def create_session(request: web.Request) -> web.Response:
    """Create a session for the caller."""
    identity = await authenticate(request)
    body = await parse_body(request, CreateSessionBody)
    check_pipeline(request.app, body.pipeline)
    session = ChatSession(
        user_id=identity.user.user_id, title=body.title, pipeline=body.pipeline,
        double_texting=body.double_texting,
    )  # fmt: skip
    await request.app[keys.STORE].create_session(session)
    return web.json_response(_dump(session), status=201)


@routes.get("/api/v1/sessions")
async def list_sessions(request: web.Request) -> web.Response:
    """List the caller's sessions, newest first, one page at a time; ``q`` searches them."""
    identity = await authenticate(request)
    query = parse_query(request.query, ListSessionsQuery)
    items, total = await request.app[keys.STORE].list_sessions(
        identity.user.user_id, status=query.status, limit=query.limit, skip=query.skip,
        search=query.q.strip() or None, order=query.sort,
    )  # fmt: skip
    return web.json_response(
        {"items": [_dump(s) for s in items], "limit": query.limit, "skip": query.skip,
         "total": total}
    )  # fmt: skip


@routes.get("/api/v1/sessions/{session_id}")
async def get_session(request: web.Request) -> web.Response:
    """Return a session with its recent messages, its active run and its queued messages."""
    identity = await authenticate(request)
    query = parse_query(request.query, SessionQuery)
    session = await _own_session(request, identity.user.user_id)
    store = request.app[keys.STORE]
    messages, _more = await branch_messages(store, session, limit=RECENT_MESSAGES, head=query.head)
    active_run = None
    if session.active_run_id is not None:
        run = await store.get_run(session.active_run_id, identity.user.user_id)
        if run is not None:
            active_run = await request.app[keys.RUN_SERVICE].with_partial(run)
    body = _dump(session)
    queued = await store.list_queued_messages(
        user_id=identity.user.user_id, session_id=session.session_id
    )
    body["messages"] = messages
    body["active_run"] = active_run
    body["queued"] = [m.model_dump(mode="json") for m in queued]
    return web.json_response(body)


@routes.patch("/api/v1/sessions/{session_id}")
async def rename_session(request: web.Request) -> web.Response:
    """Rename a session or set its double-texting policy (the fields sent)."""
    identity = await authenticate(request)
    body = await parse_body(request, RenameSessionBody)
    session_id = request.match_info["session_id"]
    if not body.model_fields_set:
        raise InvalidRequest("body: set title, double_texting or both")
    if "title" in body.model_fields_set and body.title is None:
        raise InvalidRequest("title: must be a string")
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    updated = await request.app[keys.STORE].update_session(
        identity.user.user_id, session_id, {**changes, "updated_at": utcnow()}
    )
    if updated is None:
        raise NotFound("session not found")
    return web.json_response(_dump(updated))


@routes.delete("/api/v1/sessions/{session_id}")
async def delete_session(request: web.Request) -> web.Response:
    """Delete a session with its messages and runs."""
    identity = await authenticate(request)
    session_id = request.match_info["session_id"]
    session_id_var.set(session_id)
    await request.app[keys.RUN_SERVICE].delete_session(identity.user, session_id)
    return web.Response(status=204)


@routes.post("/api/v1/sessions/{session_id}/messages")
async def post_message(request: web.Request) -> web.Response:
    """Store the user's message (or an edit of an earlier one: a new branch) and start a run
    (202); if busy, follow the double-texting policy: queue it (202, no run), interrupt,
    amend the active run, or 409 session_busy."""
    identity = await authenticate(request)
    body = await parse_body(request, PostMessageBody)
    session_id = request.match_info["session_id"]
    session_id_var.set(session_id)
    posted = await request.app[keys.RUN_SERVICE].post_message(
        identity.user, session_id, body.content, body.double_texting, edit_of=body.edit_of
    )
    return web.json_response(posted.body(), status=202)


@routes.delete("/api/v1/sessions/{session_id}/messages/{message_id}")
async def cancel_queued_message(request: web.Request) -> web.Response:
    """Take a queued message off the session's queue (409 message_not_queued once started)."""
    identity = await authenticate(request)
    session_id = request.match_info["session_id"]
    session_id_var.set(session_id)
    message = await request.app[keys.RUN_SERVICE].cancel_queued(
        identity.user, session_id, request.match_info["message_id"]
    )
    return web.json_response({"message": message.model_dump(mode="json")})


@routes.get("/api/v1/sessions/{session_id}/messages")
async def list_messages(request: web.Request) -> web.Response:
    """Return the selected branch (or the one through ``head``), newest page first, each page
    oldest first; each message lists its siblings (its alternatives on other branches)."""
    identity = await authenticate(request)
    query = parse_query(request.query, ListMessagesQuery)
    session = await _own_session(request, identity.user.user_id)
    messages, more = await branch_messages(
        request.app[keys.STORE], session, limit=query.limit, head=query.head,
        before=query.before, before_id=query.before_id,
    )  # fmt: skip
    oldest = messages[0] if more and messages else None
    return web.json_response(
        {"items": messages, "limit": query.limit,
         "next_before": oldest["created_at"] if oldest else None,
         "next_before_id": oldest["message_id"] if oldest else None}
    )  # fmt: skip


@routes.put("/api/v1/sessions/{session_id}/head")
async def select_branch(request: web.Request) -> web.Response:
    """Select the newest branch through a message (what the "< 2/3 >" switcher does)."""
    identity = await authenticate(request)
    body = await parse_body(request, SelectBranchBody)
    session_id = request.match_info["session_id"]
    session_id_var.set(session_id)
    session = await request.app[keys.RUN_SERVICE].select_branch(
        identity.user, session_id, body.message_id
    )
    return web.json_response(_dump(session))
