"""The one place the OpenAI-compatible API starts runs (through the RunService)."""

from __future__ import annotations

from aiohttp import web

from server import keys
from server.errors import SessionBusy
from server.store.models import Run, User


async def start_run(app: web.Application, user: User, session_id: str, content: str) -> Run:
    """Store the user's message and start a run of the session's pipeline."""
    posted = await app[keys.RUN_SERVICE].post_message(user, session_id, content, "reject")
    if posted.run is None:  # never: "reject" starts a run or raises SessionBusy
        raise SessionBusy("this session already has an active run")
    return posted.run
