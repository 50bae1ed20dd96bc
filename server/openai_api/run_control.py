"""The one place the OpenAI-compatible API starts runs (swap in RunService here)."""

from __future__ import annotations

from aiohttp import web

from server import keys
from server.store.models import Run, User


async def start_run(app: web.Application, user: User, session_id: str, content: str) -> Run:
    """Store the user's message and start a run of the session's pipeline."""
    _message, run = await app[keys.SESSION_MANAGER].post_message(user, session_id, content)
    return run
