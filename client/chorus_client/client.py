"""ChorusClient: the REST API, and session events over SSE with automatic resume."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from types import TracebackType
from typing import Any

import aiohttp

from chorus_client.models import (
    FINAL_RUN_EVENTS,
    ChorusError,
    Event,
    HistoryLost,
    Subscribed,
)
from chorus_client.sse import SseParser, iter_sse

StreamItem = Event | Subscribed
_RECONNECT_ERRORS = (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError)


class ChorusClient:
    """An async client of one Chorus server, authenticated by a login token or an API key."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        http: aiohttp.ClientSession | None = None,
        max_reconnects: int = 5,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._http = http
        self._own_http = http is None
        self.max_reconnects = max_reconnects

    async def __aenter__(self) -> ChorusClient:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session if this client opened it."""
        if self._http is not None and self._own_http:
            await self._http.close()
        self._http = None

    @property
    def http(self) -> aiohttp.ClientSession:
        """The HTTP session (opened on first use)."""
        if self._http is None:
            self._http = aiohttp.ClientSession()
            self._own_http = True
        return self._http

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers | (extra or {})

    async def request(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        """Call the API; return the decoded JSON (None for 204); raise ChorusError on errors."""
        query = {k: str(v) for k, v in params.items() if v is not None}
        async with self.http.request(
            method, self.base_url + path, json=body, params=query, headers=self._headers()
        ) as resp:
            if resp.status == 204:
                return None
            data = await resp.json(content_type=None)
            if resp.status >= 400:
                error = (data or {}).get("error", {}) if isinstance(data, dict) else {}
                raise ChorusError(resp.status, error.get("code", "http_error"),
                                  error.get("message", resp.reason or ""))  # fmt: skip
            return data

    # auth

    async def register(self, email: str, password: str, name: str = "") -> dict[str, Any]:
        """Create an account."""
        body = {"email": email, "password": password} | ({"name": name} if name else {})
        return dict(await self.request("POST", "/api/v1/auth/register", body))

    async def login(self, email: str, password: str) -> dict[str, Any]:
        """Log in; the client uses the returned token from now on."""
        data = await self.request(
            "POST", "/api/v1/auth/login", {"email": email, "password": password}
        )
        self.token = data["access_token"]
        return dict(data)

    async def me(self) -> dict[str, Any]:
        """The current user."""
        return dict((await self.request("GET", "/api/v1/auth/me"))["user"])

    async def create_api_key(self, name: str = "") -> dict[str, Any]:
        """Create an API key (its ``key`` is only ever shown in this answer)."""
        return dict(await self.request("POST", "/api/v1/api-keys", {"name": name}))

    async def list_api_keys(self) -> list[dict[str, Any]]:
        """The caller's API keys."""
        return list((await self.request("GET", "/api/v1/api-keys"))["items"])

    async def revoke_api_key(self, key_id: str) -> None:
        """Revoke an API key."""
        await self.request("DELETE", f"/api/v1/api-keys/{key_id}")

    # sessions, runs, usage

    async def pipelines(self) -> dict[str, Any]:
        """Pipelines with their stages and agents."""
        return dict(await self.request("GET", "/api/v1/pipelines"))

    async def create_session(self, title: str = "", pipeline: str = "default") -> dict[str, Any]:
        """Create a session."""
        return dict(
            await self.request("POST", "/api/v1/sessions", {"title": title, "pipeline": pipeline})
        )

    async def list_sessions(
        self, limit: int = 20, skip: int = 0, status: str | None = None
    ) -> dict[str, Any]:
        """One page of the caller's sessions, newest first: ``{items, limit, skip, total}``."""
        return dict(
            await self.request("GET", "/api/v1/sessions", limit=limit, skip=skip, status=status)
        )

    async def get_session(self, session_id: str) -> dict[str, Any]:
        """A session with its recent messages and active run."""
        return dict(await self.request("GET", f"/api/v1/sessions/{session_id}"))

    async def send(
        self, session_id: str, content: str, double_texting: str | None = None
    ) -> dict[str, Any]:
        """Post a message; answers ``{message, outcome, run}``.

        While the session's run is active, ``double_texting`` (``reject``, ``enqueue``,
        ``interrupt``, ``amend``; None: the session's policy) decides: ``outcome`` is
        ``started`` (``run`` is the new run), ``queued`` (``run`` is None) or ``amended``.
        """
        body = {"content": content}
        if double_texting is not None:
            body["double_texting"] = double_texting
        return dict(await self.request("POST", f"/api/v1/sessions/{session_id}/messages", body))

    async def cancel_queued(self, session_id: str, message_id: str) -> dict[str, Any]:
        """Take a queued message off the session's queue (409 once it has started)."""
        path = f"/api/v1/sessions/{session_id}/messages/{message_id}"
        return dict((await self.request("DELETE", path))["message"])

    async def get_run(self, run_id: str) -> dict[str, Any]:
        """A run with every stage's status, output and usage."""
        return dict(await self.request("GET", f"/api/v1/runs/{run_id}"))

    async def cancel(self, run_id: str) -> dict[str, Any]:
        """Cancel a run."""
        return dict((await self.request("POST", f"/api/v1/runs/{run_id}/cancel"))["run"])

    async def retry(self, run_id: str) -> dict[str, Any]:
        """Resume a failed or cancelled run from its first unfinished stage."""
        return dict((await self.request("POST", f"/api/v1/runs/{run_id}/retry"))["run"])

    async def approve(self, run_id: str, output: str | None = None) -> dict[str, Any]:
        """Approve the stage a run awaits (``output``: its edited text); the run goes on."""
        body = {} if output is None else {"output": output}
        return dict((await self.request("POST", f"/api/v1/runs/{run_id}/approve", body))["run"])

    async def reject(self, run_id: str, reason: str = "") -> dict[str, Any]:
        """Reject the stage a run awaits: the run ends cancelled."""
        body = {"reason": reason} if reason else {}
        return dict((await self.request("POST", f"/api/v1/runs/{run_id}/reject", body))["run"])

    async def usage(self) -> dict[str, Any]:
        """Tokens and cost, totals and per day."""
        return dict(await self.request("GET", "/api/v1/usage"))

    # events

    async def events(
        self, session_id: str, last_event_id: str | None = None
    ) -> AsyncGenerator[StreamItem]:
        """Yield a ``Subscribed`` per connection, then events; reconnect and resume on drops.

        A drop reconnects with the last event's id, so no event is lost or repeated. If the
        server can no longer replay from there it yields ``Subscribed(recovered=False)``:
        reload state over REST, then keep reading (live events go on).
        """
        parser = SseParser()
        parser.last_id = last_event_id
        failures, delay_s = 0, 0.2
        path = f"{self.base_url}/api/v1/sessions/{session_id}/events"
        while True:
            headers = self._headers({"Accept": "text/event-stream"})
            if parser.last_id:
                headers["Last-Event-ID"] = parser.last_id
            try:
                async with self.http.get(path, headers=headers, timeout=aiohttp.ClientTimeout(
                    total=None, sock_read=None)) as resp:  # fmt: skip
                    if resp.status >= 400:
                        data = await resp.json(content_type=None)
                        error = data.get("error", {}) if isinstance(data, dict) else {}
                        raise ChorusError(resp.status, error.get("code", "http_error"),
                                          error.get("message", ""))  # fmt: skip
                    async for sse in iter_sse(resp.content, parser):
                        failures = 0
                        if sse.retry_ms is not None:
                            delay_s = sse.retry_ms / 1000
                        item = _item(sse.event, sse.data)
                        if item is not None:
                            yield item
            except _RECONNECT_ERRORS:
                failures += 1
                if failures > self.max_reconnects:
                    raise
                if failures == 1:
                    continue  # a dropped connection: come back at once
            await asyncio.sleep(delay_s)  # the server ended the stream, or again a failure

    async def follow_run(self, session_id: str, run_id: str, last_event_id: str | None = None
                         ) -> AsyncIterator[Event]:  # fmt: skip
        """Yield a run's events until it completes, fails or is cancelled."""
        async for item in self.events(session_id, last_event_id):
            if isinstance(item, Subscribed):
                if not item.recovered and last_event_id is not None:
                    raise HistoryLost(f"events of session {session_id} before seq {item.last_seq}")
                continue
            if item.run_id == run_id:
                yield item
                if item.name in FINAL_RUN_EVENTS:
                    return

    async def run(self, session_id: str, content: str) -> AsyncIterator[Event]:
        """Send a message and yield its run's events until the run ends."""
        stream = self.events(session_id)
        try:
            first = await anext(stream)  # subscribed before sending: nothing is missed
            assert isinstance(first, Subscribed)
            # "reject": a busy session is an error (409) here, not a message left queued.
            run_id = (await self.send(session_id, content, "reject"))["run"]["run_id"]
            async for item in stream:
                if isinstance(item, Event) and item.run_id == run_id:
                    yield item
                    if item.name in FINAL_RUN_EVENTS:
                        return
        finally:
            await stream.aclose()


def _item(event: str, data: str) -> StreamItem | None:
    if event == "subscribed":
        info = json.loads(data)
        return Subscribed(int(info["last_seq"]), str(info["epoch"]), bool(info["recovered"]))
    if event == "message":
        return Event.from_json(json.loads(data))
    return None  # "resync": the stream ends next and the reconnect says recovered: false
