"""POST /v1/chat/completions and GET /v1/models: Chorus pipelines for any OpenAI client.

``model`` names a pipeline. A completion is a Chorus run: it belongs to the server,
so a client that disconnects mid-stream does not cancel it (cancel it over the Chorus
API with the run id the first chunk and the ``X-Chorus-Run-Id`` header carry).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from server import keys
from server.api.body import parse_body
from server.auth.identity import authenticate
from server.openai_api import conversations
from server.openai_api.chunks import ChunkWriter
from server.openai_api.conversations import Turn
from server.openai_api.errors import error_payload, openai_error, openai_errors
from server.openai_api.run_control import start_run
from server.openai_api.schemas import ChatCompletionBody
from server.openai_api.sessions import SESSION_HEADER, ModelNotFound, check_model, session_for
from server.sse.feed import FeedClosed, FeedLost, SessionFeed
from server.store.models import ChatSession, Run

routes = web.RouteTableDef()
FINAL_EVENTS = frozenset({"run.completed", "run.failed", "run.cancelled"})
_STORE_POLL_S = 0.25
_DONE = b"data: [DONE]\n\n"
_SSE_HEADERS = {
    "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
}  # fmt: skip


def _data(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _model(pipeline: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": pipeline["name"], "object": "model", "created": 0, "owned_by": "chorus",
        "chorus": {"description": pipeline["description"], "answer_stage": pipeline["answer_stage"],
                   "stages": [s["name"] for s in pipeline["stages"]]},
    }  # fmt: skip


@routes.get("/v1/models")
@openai_errors
async def list_models(request: web.Request) -> web.Response:
    """Every pipeline, as an OpenAI model."""
    await authenticate(request)
    pipelines = request.app[keys.PIPELINES].describe()["pipelines"]
    return web.json_response({"object": "list", "data": [_model(p) for p in pipelines]})


@routes.get("/v1/models/{model}")
@openai_errors
async def get_model(request: web.Request) -> web.Response:
    """One pipeline, as an OpenAI model."""
    await authenticate(request)
    name = request.match_info["model"]
    for pipeline in request.app[keys.PIPELINES].describe()["pipelines"]:
        if pipeline["name"] == name:
            return web.json_response(_model(pipeline))
    raise ModelNotFound(f"The model {name!r} does not exist: it must name a pipeline")


async def _ending(app: web.Application, run: Run) -> dict[str, Any] | None:
    """The run's final event rebuilt from the store, or None while it is not over."""
    current = await app[keys.STORE].get_run(run.run_id, run.user_id)
    if current is None:
        return {"name": "run.failed", "data": {"error": "the run was deleted"}}
    if current.status == "completed":
        answer = current.stages[-1].output or ""
        return {"name": "run.completed", "data": {
            "message": {"content": answer}, "usage": current.usage.model_dump()}}  # fmt: skip
    if current.status in ("failed", "cancelled"):
        return {"name": f"run.{current.status}", "data": {"error": current.error}}
    return None


async def _from_store(
    app: web.Application, run: Run, idle_s: float
) -> AsyncIterator[list[dict[str, Any]]]:
    """Wait for the run's end in the store (the event history no longer covers it)."""
    idle = 0.0
    while (ending := await _ending(app, run)) is None:
        await asyncio.sleep(_STORE_POLL_S)
        idle += _STORE_POLL_S
        if idle >= idle_s:
            idle = 0.0
            yield []  # a heartbeat
    yield [ending]


async def run_events(
    app: web.Application, feed: SessionFeed, run: Run, idle_s: float, *, covered: bool
) -> AsyncIterator[list[dict[str, Any]]]:
    """Yield the run's events batch by batch (an empty batch when idle) until it ends."""
    while covered:
        try:
            events = await feed.next(idle_s)
        except FeedLost:
            break
        mine = [e for e in events if e.get("run_id") == run.run_id]
        yield mine
        if any(e["name"] in FINAL_EVENTS for e in mine):
            return
    async for batch in _from_store(app, run, idle_s):
        yield batch


@dataclass
class Completion:
    """One chat completion in flight: its run, session, event feed and chunk writer."""

    request: web.Request
    feed: SessionFeed
    writer: ChunkWriter
    session: ChatSession
    run: Run
    created: int
    turns: list[Turn]  # the conversation's user and assistant turns, this message last
    covered: bool  # False: the event history missed the start (Redis lost it): ask the store

    async def remember(self) -> None:
        """Let the client continue this conversation without naming the session."""
        outcome = self.writer.outcome
        if outcome is not None and outcome.status == "completed":
            turns = [*self.turns, ("assistant", outcome.answer.strip())]
            await conversations.remember(
                self.request.app, self.run.user_id, self.session.pipeline, turns,
                self.session.session_id,
            )  # fmt: skip

    @property
    def headers(self) -> dict[str, str]:
        """Where the run lives, for clients that continue or cancel it."""
        return {SESSION_HEADER: self.session.session_id, "X-Chorus-Run-Id": self.run.run_id}

    def events(self, idle_s: float) -> AsyncIterator[list[dict[str, Any]]]:
        """The run's events, batch by batch."""
        return run_events(self.request.app, self.feed, self.run, idle_s, covered=self.covered)


async def _stream(c: Completion) -> web.StreamResponse:
    resp = web.StreamResponse(headers={**_SSE_HEADERS, **c.headers})
    await resp.prepare(c.request)
    idle_s = c.request.app[keys.SETTINGS].sse_heartbeat_s
    try:
        await resp.write(_data(c.writer.first(c.session.session_id, c.run.run_id)))
        async for events in c.events(idle_s):
            chunks = [chunk for event in events for chunk in c.writer.feed(event)]
            await resp.write(b"".join(map(_data, chunks)) if events else b": ping\n\n")
        await resp.write(b"".join(map(_data, c.writer.closing())) + _DONE)
        await c.remember()
    except FeedClosed as closed:  # token revoked or expired, or the server shutting down
        error = error_payload(f"stream closed: {closed}; the run goes on", "server_error",
                              "stream_closed")  # fmt: skip
        with contextlib.suppress(ConnectionError):
            await resp.write(_data(error) + _DONE)
    except ConnectionError:
        pass  # the client left (or aiohttp cancels us): the run goes on, it is the server's
    return resp


async def _complete(c: Completion) -> web.Response:
    try:
        async for events in c.events(3600.0):
            for event in events:
                c.writer.feed(event)
    except FeedClosed as closed:
        return openai_error(503, f"stream closed: {closed}; the run goes on", "stream_closed")
    outcome = c.writer.outcome
    assert outcome is not None
    if outcome.status != "completed":
        status = 500 if outcome.status == "failed" else 409
        return openai_error(status, outcome.error, f"run_{outcome.status}")
    await c.remember()
    message = {"role": "assistant", "content": outcome.answer, "refusal": None}
    body = {
        "id": c.writer.completion_id, "object": "chat.completion", "created": c.created,
        "model": c.session.pipeline, "system_fingerprint": None,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": outcome.usage,
        "chorus": {"session_id": c.session.session_id, "run_id": c.run.run_id},
    }  # fmt: skip
    return web.json_response(body, headers=c.headers)


@routes.post("/v1/chat/completions")
@openai_errors
async def chat_completions(request: web.Request) -> web.StreamResponse:
    """Run the pipeline named by ``model`` on the last user message; stream it or answer it."""
    identity = await authenticate(request)
    body = await parse_body(request, ChatCompletionBody)
    app = request.app
    stages = check_model(app, body.model)
    content = body.messages[-1].text()
    session = await session_for(request, identity.user, body)
    feed = SessionFeed(app, session.session_id, app[keys.SETTINGS].ws_queue_size)
    # Attached like a socket: a revoked key or token, or shutdown, ends the response.
    detach = app[keys.EVENT_HUB].attach(feed, identity.claims.jti, identity.user.user_id)
    try:
        # Subscribing once the run has started keeps a Redis round trip out of the time to
        # first token; the replay from the head read before it covers the events between.
        head, epoch = await app[keys.EVENT_BUS].head(session.session_id)
        run = await start_run(app, identity.user, session.session_id, content)
        replay = await feed.open(head, epoch)
        created = int(time.time())
        writer = ChunkWriter(
            f"chatcmpl-{run.run_id}", created, body.model, stages,
            progress=body.chorus_progress, include_usage=body.include_usage,
        )  # fmt: skip
        turns = conversations.turns_of(body.messages)
        completion = Completion(
            request, feed, writer, session, run, created, turns, replay.recovered
        )
        return await (_stream(completion) if body.stream else _complete(completion))
    finally:
        detach()
        feed.close()


@routes.route("*", "/v1/{tail:.*}")
@openai_errors
async def unknown(request: web.Request) -> web.Response:
    """Any other /v1 path: an OpenAI-shaped 404."""
    return openai_error(404, f"Unknown request URL: {request.method} {request.path}", None)
