"""The one REST and WebSocket client of the tests: the product's own ``ChorusClient``
(REST + SSE) with what tests need on top: exact status checks, sign-up, polling a run,
a WebSocket with commands answered by id, and a transcript that checks event order.

Every test folder uses it:

- in-process tests (an aiohttp ``TestClient``): ``await make_user(client)``, or
  ``Api.of(client)`` for the client itself;
- system tests (real processes): ``await Api(http, web.url).sign_up("ann@example.test")``;
- end-to-end tests (Playwright's sync API, no event loop of their own): ``SyncApi``, the
  same client driven on an event loop of its own thread (``LoopThread``).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from collections.abc import Collection, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient
from chorus_client import ChorusClient

PASSWORD = "correct horse battery"
FINAL_STATUSES = ("completed", "failed", "cancelled")
_T = TypeVar("_T")


def fresh_email(label: str = "user") -> str:
    """An email address no other test uses."""
    return f"{label}-{secrets.token_hex(4)}@example.test"


class ApiError(AssertionError):
    """A REST call answered with another status than the test expected."""

    def __init__(self, status: int, body: Any, what: str = "") -> None:
        super().__init__(f"{what} HTTP {status}: {body}".strip())
        self.status = status
        self.body = body


@dataclass
class User:
    """A user of the tests; ``token`` and ``user`` (the API's user object) once logged in."""

    email: str
    password: str = PASSWORD
    name: str = ""
    token: str = ""
    user: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fresh(cls, label: str = "user") -> User:
        """A user no other test uses, named after ``label``."""
        return cls(fresh_email(label), name=label.title())

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header for this user."""
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def user_id(self) -> str:
        """The user's id (once logged in)."""
        return str(self.user["user_id"])


class Api(ChorusClient):
    """REST (and a WebSocket) as one user of one server, on a shared aiohttp session."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, token: str | None = None):
        super().__init__(base_url, token=token, http=http)
        self.account: User | None = None

    @classmethod
    def of(cls, client: TestClient[Any, web.Application]) -> Api:
        """A client of an in-process test server (on the test client's own session)."""
        return cls(client.session, str(client.make_url("/")))

    @property
    def user(self) -> dict[str, Any]:
        """The logged-in user, as the API shows it."""
        assert self.account is not None, "not logged in"
        return self.account.user

    def on(self, base_url: str) -> Api:
        """The same user talking to another web process."""
        other = Api(self.http, base_url, self.token)
        other.account = self.account
        return other

    def as_user(self, user: User) -> Api:
        """A client of the same server acting as ``user`` (logged in)."""
        other = Api(self.http, self.base_url, user.token)
        other.account = user
        return other

    async def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        """Send a request (path from the root, e.g. ``/api/v1/usage``); raise ApiError
        unless it answers ``expect``; return the JSON body (None when empty)."""
        async with self.http.request(
            method, self.base_url + path, json=body, headers=self._headers()
        ) as resp:
            text = await resp.text()
            data = json.loads(text) if text else None
            if resp.status != expect:
                raise ApiError(resp.status, data, f"{method} {path}:")
            return data

    async def sign_up(self, who: User | str) -> Api:
        """Register (201) and log in (a User, or an email); this client acts as them."""
        user = who if isinstance(who, User) else User(who)
        body = {"email": user.email, "password": user.password}
        if user.name:
            body["name"] = user.name
        await self.call("POST", "/api/v1/auth/register", body, 201)
        return await self.log_in(user)

    async def log_in(self, user: User) -> Api:
        """Log in as ``user``: the user and this client carry the token."""
        body = {"email": user.email, "password": user.password}
        data = await self.call("POST", "/api/v1/auth/login", body)
        self.token = user.token = data["access_token"]
        user.user = data["user"]
        self.account = user
        return self

    async def new_session(self, pipeline: str = "default", title: str = "") -> str:
        """Create a session (201); return its id."""
        body = {"pipeline": pipeline} | ({"title": title} if title else {})
        data = await self.call("POST", "/api/v1/sessions", body, 201)
        return str(data["session_id"])

    async def send(
        self, session_id: str, content: str, double_texting: str | None = None
    ) -> dict[str, Any]:
        """Post a message (202); return ``{message, outcome, run}``."""
        path = f"/api/v1/sessions/{session_id}/messages"
        body = {"content": content}
        if double_texting is not None:
            body["double_texting"] = double_texting
        return dict(await self.call("POST", path, body, 202))

    async def wait_run(
        self, run_id: str, statuses: Collection[str] = FINAL_STATUSES, within_s: float = 30.0
    ) -> dict[str, Any]:
        """Poll GET /runs/{id} until its status is one of ``statuses``; return the run."""
        async with asyncio.timeout(within_s):
            while True:
                run = await self.get_run(run_id)
                if run["status"] in statuses:
                    return run
                await asyncio.sleep(0.05)

    async def messages(self, session_id: str) -> list[dict[str, Any]]:
        """Every message of a session (oldest first)."""
        data = await self.call("GET", f"/api/v1/sessions/{session_id}/messages?limit=100")
        items: list[dict[str, Any]] = data["items"]
        return sorted(items, key=lambda m: m["created_at"])

    async def session_runs(self, session_id: str) -> list[dict[str, Any]]:
        """The session's runs, oldest first, as GET /runs/{id} shows them."""
        session = await self.get_session(session_id)
        asked = [m for m in session["messages"] if m["role"] == "user" and m.get("run_id")]
        return [await self.get_run(m["run_id"]) for m in asked]

    async def socket(self) -> Socket:
        """Open an authenticated WebSocket and read its ``ready`` frame."""
        ws = await self.http.ws_connect(f"{self.base_url}/api/v1/ws", headers=self._headers())
        sock = Socket(ws)
        ready = await sock.frame()
        assert ready["type"] == "ready", ready
        return sock


async def make_user(client: TestClient[Any, web.Application], name: str = "ann") -> User:
    """Register and log in a fresh user of an in-process test server."""
    user = User.fresh(name)
    await Api.of(client).sign_up(user)
    return user


async def error_of(resp: Any) -> tuple[int, str]:
    """Return (status, error code) of an error response."""
    body = await resp.json()
    return resp.status, body["error"]["code"]


class Socket:
    """A WebSocket client: commands answered by id; events and other frames queued apart."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = 0
        self.pending: list[dict[str, Any]] = []  # non-result frames read while awaiting a result

    async def frame(self, within_s: float = 10.0) -> dict[str, Any]:
        """The next frame (queued ones first)."""
        if self.pending:
            return self.pending.pop(0)
        msg = await self.ws.receive(timeout=within_s)
        assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, msg.data)
        frame: dict[str, Any] = json.loads(msg.data)
        return frame

    async def call(self, kind: str, within_s: float = 10.0, **fields: Any) -> dict[str, Any]:
        """Send a command; return its result's data (events read meanwhile stay queued)."""
        self._ids += 1
        cmd_id = self._ids
        await self.ws.send_json({"id": cmd_id, "type": kind, **fields})
        early: list[dict[str, Any]] = []
        async with asyncio.timeout(within_s):
            while True:
                msg = await self.ws.receive()
                assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, msg.data)
                frame = json.loads(msg.data)
                if frame.get("id") == cmd_id and frame["type"] in ("result", "error"):
                    assert frame["type"] == "result", frame
                    self.pending.extend(early)
                    data: dict[str, Any] = frame["data"]
                    return data
                early.append(frame)

    async def close(self) -> None:
        """Close the socket."""
        await self.ws.close()


class Transcript:
    """Events of one session as a client received them: contiguous seqs, stage texts."""

    def __init__(self, after_seq: int = 0, epoch: str | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.epoch = epoch
        self._start = after_seq

    @property
    def last_seq(self) -> int:
        """The seq of the last event held (``after_seq`` before any)."""
        return int(self.events[-1]["seq"]) if self.events else self._start

    def add(self, event: dict[str, Any]) -> None:
        """Take the next event; it must follow the last one exactly."""
        assert event["type"] == "event", event
        if self.epoch is None:
            self.epoch = event["epoch"]
        assert event["epoch"] == self.epoch, (event, self.epoch)
        assert event["seq"] == self.last_seq + 1, (
            f"seq {event['seq']} after {self.last_seq}: {event['name']}"
        )
        self.events.append(event)

    def names(self) -> list[str]:
        """Event names in order."""
        return [e["name"] for e in self.events]

    def texts(self, run_id: str | None = None) -> dict[str, str]:
        """Each stage's text (of one run, or all): its deltas after its last ``stage.reset``."""
        texts: dict[str, str] = {}
        for e in self.events:
            if run_id is not None and e["run_id"] != run_id:
                continue
            if e["name"] == "stage.reset":
                texts[e["data"]["stage"]] = ""
            elif e["name"] == "stage.delta":
                stage = e["data"]["stage"]
                texts[stage] = texts.get(stage, "") + e["data"]["text"]
        return texts

    def ended(self, run_id: str) -> bool:
        """Whether the run's final event is held."""
        final = ("run.completed", "run.failed", "run.cancelled")
        return any(e["name"] in final and e["run_id"] == run_id for e in self.events)


async def follow(sock: Socket, transcript: Transcript, run_id: str, within_s: float = 30.0) -> None:
    """Read the socket's events into the transcript until the run's final event."""
    async with asyncio.timeout(within_s):
        while not transcript.ended(run_id):
            frame = await sock.frame(within_s=within_s)
            if frame["type"] == "event":
                transcript.add(frame)


def resynced_texts(rest_run: dict[str, Any], live: Transcript) -> dict[str, str]:
    """Each stage's text as a client that resynced over REST shows it: the REST state (stored
    outputs, the running stage's partial as of ``partial_seq``), then the live events after."""
    texts = {s["name"]: s["output"] or s.get("partial") or "" for s in rest_run["stages"]}
    since = {s["name"]: s.get("partial_seq") or 0 for s in rest_run["stages"]}
    for e in live.events:
        stage = e["data"].get("stage") if e["run_id"] == rest_run["run_id"] else None
        if stage is None or e["seq"] <= since.get(stage, 0):
            continue
        if e["name"] in ("stage.reset", "stage.started"):
            texts[stage] = ""
        elif e["name"] == "stage.delta":
            texts[stage] += e["data"]["text"]
        elif e["name"] == "stage.completed":
            texts[stage] = e["data"]["output"]
    return texts


def stored_outputs(run: dict[str, Any]) -> dict[str, str]:
    """Each stage's stored output (checkpoint) of a run."""
    return {s["name"]: s["output"] or "" for s in run["stages"]}


# --- from synchronous code (Playwright's sync API) ------------------------------------------


class LoopThread:
    """An event loop running on a thread of its own, for driving ``Api`` from sync code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, _T], within_s: float = 60.0) -> _T:
        """Run a coroutine on the loop; return its result (or raise its exception)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(within_s)

    def close(self) -> None:
        """Stop the loop and its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    @classmethod
    @contextmanager
    def running(cls) -> Iterator[LoopThread]:
        """A loop thread for the block."""
        thread = cls()
        try:
            yield thread
        finally:
            thread.close()


class SyncApi:
    """``Api`` for synchronous tests: each call runs on ``loop``; same paths and checks."""

    def __init__(self, loop: LoopThread, api: Api) -> None:
        self.loop = loop
        self.api = api

    @classmethod
    def open(cls, loop: LoopThread, base_url: str, timeout_s: float = 10.0) -> SyncApi:
        """An anonymous client with an HTTP session of its own (``close`` it)."""

        async def build() -> Api:
            http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s))
            return Api(http, base_url)

        return cls(loop, loop.run(build()))

    def close(self) -> None:
        """Close the HTTP session (of the client ``open`` made)."""
        self.loop.run(self.api.http.close())

    def as_user(self, user: User) -> SyncApi:
        """The same server, acting as ``user`` (shares the HTTP session)."""
        return SyncApi(self.loop, self.api.as_user(user))

    def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        """See ``Api.call``."""
        return self.loop.run(self.api.call(method, path, body, expect))

    def get(self, path: str, expect: int = 200) -> Any:
        """GET path (from the root, e.g. ``/api/v1/usage``)."""
        return self.call("GET", path, expect=expect)

    def post(self, path: str, body: Any = None, expect: int = 200) -> Any:
        """POST path with a JSON body (``{}`` when none)."""
        return self.call("POST", path, {} if body is None else body, expect)

    def sign_up(self, user: User) -> User:
        """Register and log in ``user`` (it carries the token after)."""
        self.loop.run(Api(self.api.http, self.api.base_url).sign_up(user))
        return user

    def log_in(self, user: User) -> User:
        """Log in as ``user`` (it carries the token after)."""
        self.loop.run(Api(self.api.http, self.api.base_url).log_in(user))
        return user

    def wait_run(
        self, run_id: str, statuses: Collection[str] = FINAL_STATUSES, within_s: float = 30.0
    ) -> dict[str, Any]:
        """See ``Api.wait_run``."""
        return self.loop.run(self.api.wait_run(run_id, statuses, within_s), within_s + 5)

    def session_runs(self, session_id: str) -> list[dict[str, Any]]:
        """See ``Api.session_runs``."""
        return self.loop.run(self.api.session_runs(session_id))
