"""Continue a stateless client's conversation in the session it started.

Most OpenAI clients (Open WebUI, LibreChat, scripts) send the whole conversation with
every request and know nothing of Chorus sessions. After a completion, Chorus keeps, in
Redis, a digest of the conversation including the answer, pointing at its session. A
later request whose earlier turns have that digest continues the same session instead
of starting a new one seeded with the history. Only user and assistant turns count,
compared with surrounding whitespace stripped; anything else (an edited message, a
regenerated answer) starts a new session, as before.
"""

from __future__ import annotations

import hashlib
import json

from aiohttp import web

from server import keys
from server.openai_api.schemas import ChatMessage

REMEMBER_S = 24 * 3600  # how long a conversation can be continued without a session id
Turn = tuple[str, str]


def turns_of(messages: list[ChatMessage]) -> list[Turn]:
    """The user and assistant turns, as they are compared."""
    return [(m.role, m.text().strip()) for m in messages if m.role in ("user", "assistant")]


def _key(app: web.Application, user_id: str, model: str, turns: list[Turn]) -> str:
    raw = json.dumps([user_id, model, turns], separators=(",", ":"))
    return app[keys.REDIS_KEYS].openai_conversation(hashlib.sha256(raw.encode()).hexdigest())


async def find(app: web.Application, user_id: str, model: str, history: list[Turn]) -> str | None:
    """The session whose conversation is exactly ``history``, if one is remembered."""
    if not history:
        return None
    found = await app[keys.REDIS].get(_key(app, user_id, model, history))
    return found.decode() if isinstance(found, bytes) else found


async def remember(
    app: web.Application, user_id: str, model: str, turns: list[Turn], session_id: str
) -> None:
    """Remember that ``turns`` (ending with the answer) continue in ``session_id``."""
    await app[keys.REDIS].set(_key(app, user_id, model, turns), session_id, ex=REMEMBER_S)
