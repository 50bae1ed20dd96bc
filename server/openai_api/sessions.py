"""Which Chorus session a chat completion runs in: a given one, or a new one seeded."""

from __future__ import annotations

import re
from datetime import timedelta

from aiohttp import web

from server import keys
from server.errors import InvalidRequest, NotFound
from server.openai_api import conversations
from server.openai_api.schemas import ChatCompletionBody, ChatMessage
from server.store.base import Store
from server.store.models import ChatSession, Message, User, utcnow

SESSION_HEADER = "X-Chorus-Session-Id"
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TITLE_CHARS = 80


class ModelNotFound(NotFound):
    code = "model_not_found"


def check_model(app: web.Application, model: str) -> list[str]:
    """Return the stage names of the pipeline named ``model``; 404 model_not_found if none."""
    registry = app[keys.PIPELINES]
    if model not in registry.pipeline_names():
        raise ModelNotFound(f"The model {model!r} does not exist: it must name a pipeline")
    return [stage.name for stage in registry.pipeline(model).stages]


async def session_for(request: web.Request, user: User, body: ChatCompletionBody) -> ChatSession:
    """The session named by header or ``chorus_session_id``; else the one this conversation
    started (server/openai_api/conversations.py); else a new one seeded with the history.

    In a named or continued session only the last message is new: the earlier ones are
    already its history. A new session is seeded with the request's earlier user and
    assistant messages (system messages are left to the pipeline's own agents).
    """
    session_id = request.headers.get(SESSION_HEADER) or body.chorus_session_id
    store = request.app[keys.STORE]
    if session_id is not None:
        if not _SESSION_ID.match(session_id):
            raise InvalidRequest(f"{SESSION_HEADER}: not a session id")
        session = await store.get_session(user.user_id, session_id)
        if session is None:
            raise NotFound("session not found")
        if session.pipeline != body.model:
            raise InvalidRequest(f"model: session {session_id} runs {session.pipeline!r}")
        return session
    continued = await _continued(request.app, user, body)
    if continued is not None:
        return continued
    title = body.messages[-1].text().strip().replace("\n", " ")[:_TITLE_CHARS]
    session = ChatSession(user_id=user.user_id, title=title, pipeline=body.model)
    await store.create_session(session)
    await _seed(store, session, body.messages[:-1])
    return session


async def _continued(
    app: web.Application, user: User, body: ChatCompletionBody
) -> ChatSession | None:
    history = conversations.turns_of(body.messages[:-1])
    session_id = await conversations.find(app, user.user_id, body.model, history)
    if session_id is None:
        return None
    session = await app[keys.STORE].get_session(user.user_id, session_id)
    if session is None or session.active_run_id is not None:
        return None  # deleted, or busy with another request: start afresh
    return session


async def _seed(store: Store, session: ChatSession, history: list[ChatMessage]) -> None:
    turns = [m for m in history if m.role in ("user", "assistant")]
    start = utcnow() - timedelta(milliseconds=len(turns) + 1)  # before the new message
    for i, turn in enumerate(turns):
        await store.insert_message(
            Message(
                session_id=session.session_id, user_id=session.user_id,
                role="user" if turn.role == "user" else "assistant", content=turn.text(),
                created_at=start + timedelta(milliseconds=i),
            )
        )  # fmt: skip
