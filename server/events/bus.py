"""EventBus: seq + epoch + replay log + publish in one atomic Lua script (DESIGN §5)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from server.redis_keys import RedisKeys
from server.store.models import format_ts, utcnow

EVENT_NAMES = frozenset(
    {
        "message.created", "run.queued", "run.started", "stage.started", "stage.delta",
        "stage.reset", "stage.retrying", "stage.completed", "run.completed", "run.failed",
        "run.cancelled", "run.awaiting_approval", "run.approved", "run.rejected",
        "run.approval_expired", "message.queued", "message.cancelled", "run.amended",
        "branch.selected",
    }
)  # fmt: skip

# KEYS: seq hash, stream, channel, run fence, partial text, partial meta.
# ARGV: fresh epoch, session id, body (a JSON object without seq/epoch, starting with "{"),
# max history entries, ttl ms, generation (-1: not fenced), partial op ("", "delta",
# "reset", "clear"), stage name, delta text.
# Fencing: an event of a stage carries the run's generation; if the run's fence in Redis
# is newer, the event is dropped (returns false): a zombie worker publishes nothing.
# A lost counter (restart, eviction, expiry) gets a new epoch and an emptied stream, so
# a client can never mistake a restarted sequence for the old one. The stream entry id is
# "<seq>-1", so a replay is one XRANGE from after_seq + 1.
# The partial text of the running stage is kept beside the stream with the seq of the last
# event it is as of, so a client that resynced over REST can continue from live events.
_PUBLISH = """
if ARGV[6] ~= '-1' then
  local fence = redis.call('GET', KEYS[4])
  if fence and tonumber(fence) > tonumber(ARGV[6]) then return false end
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local event = '{"type":"event","session_id":"' .. ARGV[2] .. '","epoch":"' .. epoch ..
  '","seq":' .. seq .. ',' .. string.sub(ARGV[3], 2)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], seq .. '-1', 'e', event)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
local op = ARGV[7]
if op == 'delta' then
  if redis.call('HGET', KEYS[6], 'stage') ~= ARGV[8] then redis.call('DEL', KEYS[5]) end
  redis.call('APPEND', KEYS[5], ARGV[9])
end
if op == 'reset' then redis.call('DEL', KEYS[5]) end
if op == 'delta' or op == 'reset' then
  redis.call('HSET', KEYS[6], 'stage', ARGV[8], 'seq', seq, 'epoch', epoch)
  redis.call('PEXPIRE', KEYS[5], ARGV[5])
  redis.call('PEXPIRE', KEYS[6], ARGV[5])
end
if op == 'clear' then redis.call('DEL', KEYS[5], KEYS[6]) end
redis.call('PUBLISH', KEYS[3], event)
return {seq, epoch, event}
"""

# KEYS: seq hash. ARGV: fresh epoch, ttl ms. Returns {seq, epoch}, creating the counter.
_HEAD = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return {tonumber(redis.call('HGET', KEYS[1], 'seq')), epoch}
"""


@dataclass(frozen=True)
class Published:
    """An event as published: its seq, its epoch and its wire form."""

    seq: int
    epoch: str
    raw: str


@dataclass(frozen=True)
class Partial:
    """The running stage's text as streamed so far, as of event ``seq`` of ``epoch``."""

    stage: str
    text: str
    seq: int
    epoch: str


@dataclass(frozen=True)
class Replay:
    """What a subscriber missed: events after its seq, or recovered=False."""

    last_seq: int
    epoch: str
    recovered: bool
    events: list[tuple[int, str]]


def new_epoch() -> str:
    """Return a fresh random epoch id."""
    return secrets.token_hex(8)


class EventBus:
    """Publish session events (server and workers) and read a session's replay log."""

    def __init__(self, redis: Redis, keys: RedisKeys, history: int, ttl_s: int) -> None:
        self._redis = redis
        self._keys = keys
        self._history = history
        self._ttl_ms = ttl_s * 1000
        self._publish = redis.register_script(_PUBLISH)
        self._head = redis.register_script(_HEAD)

    async def publish(
        self,
        session_id: str,
        name: str,
        data: dict[str, Any],
        run_id: str | None = None,
        *,
        generation: int | None = None,
    ) -> Published | None:
        """Assign the next seq, append to the replay log and publish, atomically.

        With ``generation`` the event is fenced: it is dropped (None) when the run has
        moved on to a newer generation. Stage events also keep the stage's partial text.
        """
        if name not in EVENT_NAMES:
            raise ValueError(f"unknown event name {name!r}")
        body = json.dumps(
            {"name": name, "run_id": run_id, "data": data, "ts": format_ts(utcnow())},
            separators=(",", ":"),
        )
        k, run = self._keys, run_id or "-"
        op, stage, text = _partial_op(name, data)
        result = await self._publish(
            keys=[k.session_seq(session_id), k.session_stream(session_id),
                  k.session_channel(session_id), k.run_fence(run), k.run_partial(run),
                  k.run_partial_meta(run)],
            args=[new_epoch(), session_id, body, self._history, self._ttl_ms,
                  -1 if generation is None else generation, op, stage, text],
        )  # fmt: skip
        if result is None:
            return None
        seq, epoch, raw = result
        return Published(int(seq), _text(epoch), _text(raw))

    async def partial(self, run_id: str) -> Partial | None:
        """Return the running stage's text streamed so far, with the seq it is as of."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self._keys.run_partial(run_id))
            pipe.hgetall(self._keys.run_partial_meta(run_id))
            text, meta = await pipe.execute()
        if not meta:
            return None
        return Partial(
            stage=_text(meta[b"stage"]), text=_text(text or b""), seq=int(meta[b"seq"]),
            epoch=_text(meta[b"epoch"]),
        )  # fmt: skip

    async def head(self, session_id: str) -> tuple[int, str]:
        """Return the session's (last_seq, epoch), starting a counter if there is none."""
        seq, epoch = await self._head(
            keys=[self._keys.session_seq(session_id)], args=[new_epoch(), self._ttl_ms]
        )
        return int(seq), _text(epoch)

    async def replay(self, session_id: str, after_seq: int | None, epoch: str | None) -> Replay:
        """Return the events after ``after_seq`` if the log still covers them."""
        last_seq, current = await self.head(session_id)
        if after_seq is None:
            return Replay(last_seq, current, True, [])
        if (epoch is not None and epoch != current) or after_seq > last_seq or after_seq < 0:
            return Replay(last_seq, current, False, [])
        if after_seq == last_seq:
            return Replay(last_seq, current, True, [])
        entries = await self._redis.xrange(
            self._keys.session_stream(session_id), min=f"{after_seq + 1}-0", max="+"
        )
        events = [
            (int(_text(eid).split("-", 1)[0]), _text(fields[b"e"])) for eid, fields in entries
        ]
        if not events or events[0][0] != after_seq + 1:
            return Replay(last_seq, current, False, [])
        return Replay(events[-1][0], current, True, events)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _partial_op(name: str, data: dict[str, Any]) -> tuple[str, str, str]:
    """How an event changes the running stage's partial text: (op, stage, appended text)."""
    if name == "stage.delta":
        return "delta", str(data["stage"]), str(data["text"])
    if name in ("stage.started", "stage.reset"):
        return "reset", str(data["stage"]), ""
    if name in ("stage.completed", "run.completed", "run.failed", "run.cancelled"):
        return "clear", "", ""
    return "", "", ""
