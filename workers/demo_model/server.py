"""DemoModelServer: an OpenAI-compatible chat-completions server answering from the prompt."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import itertools
import math
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from workers.demo_model.answers import Turn, compose, prompt_tokens, tokenize
from workers.demo_model.config import DemoConfig, DemoStats
from workers.demo_model.faults import FaultPlan
from workers.demo_model.protocol import (
    ChatRequest,
    ChunkEncoder,
    completion_body,
    error_body,
    usage_body,
)


@dataclass(frozen=True)
class _Answer:
    call_id: str
    created: int
    model: str
    tokens: list[str]
    finish: str
    usage: dict[str, int]


def _conversation_key(turns: list[Turn]) -> str:
    digest = hashlib.sha256()
    for turn in turns:
        digest.update(f"{turn.role}\x00{turn.content}\x01".encode())
    return digest.hexdigest()[:24]


def _fault_text(turns: list[Turn]) -> str:
    system = [t.content for t in turns if t.role in ("system", "developer")]
    last_user = next((t.content for t in reversed(turns) if t.role == "user"), "")
    return "\n".join([*system, last_user])


class DemoModelServer:
    """Serve the demo model; ``async with DemoModelServer(cfg) as srv: srv.base_url``."""

    def __init__(self, config: DemoConfig | None = None) -> None:
        self.config = config or DemoConfig()
        self.stats = DemoStats()
        self.base_url = ""
        self._faults = FaultPlan()
        self._ids = itertools.count(1)
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None

    def configure(self, **changes: Any) -> None:
        """Change knobs while serving (e.g. ``down=True``, ``fail_rate=0.3``)."""
        self.config = dataclasses.replace(self.config, **changes)

    def app(self) -> web.Application:
        """Build the aiohttp application."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._models)
        return app

    async def start(self) -> str:
        """Listen on the configured host and port (0: a free one); return the base URL."""
        runner = web.AppRunner(
            self.app(), access_log=None, handler_cancellation=True, shutdown_timeout=2.0
        )
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self.config.host, self.config.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}/v1"
        return self.base_url

    async def close(self) -> None:
        """Release hung calls and stop serving."""
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DemoModelServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        await self.close()

    async def _models(self, request: web.Request) -> web.Response:
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "chorus"}
            for m in self.config.models
        ]
        return web.json_response({"object": "list", "data": data})

    def _refusal(self, request: web.Request, body: ChatRequest) -> web.Response | None:
        key = self.config.api_key
        if key is not None and request.headers.get("Authorization") != f"Bearer {key}":
            return web.json_response(
                error_body(401, "invalid api key", "invalid_api_key"), status=401
            )
        if self.config.models and body.model not in self.config.models:
            message = f"the model {body.model!r} does not exist"
            return web.json_response(error_body(404, message, "model_not_found"), status=404)
        return None

    async def _parse(self, request: web.Request) -> ChatRequest | web.Response:
        try:
            body = ChatRequest.model_validate_json(await request.read())
        except ValidationError as exc:
            self.stats.outcomes["400"] += 1
            message = f"invalid request: {exc.errors()[0]['msg']}"
            return web.json_response(error_body(400, message), status=400)
        self.stats.calls_by_model[body.model] += 1
        refusal = self._refusal(request, body)
        if refusal is not None:
            self.stats.outcomes[str(refusal.status)] += 1
            return refusal
        return body

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        self.stats.calls += 1
        body = await self._parse(request)
        if isinstance(body, web.Response):
            return body
        turns = body.turns()
        key = _conversation_key(turns)
        fault = self._faults.choose(self.config, key, body.model, _fault_text(turns))
        self.stats.outcomes[fault or "ok"] += 1
        if fault is not None and fault.isdigit():
            return self._failure(int(fault))
        if fault == "timeout" or (fault is not None and not body.stream):
            return await self._drop(request, web.Response(), hang=fault != "cut")
        answer = self._answer(body, turns)
        if body.stream:
            return await self._stream(request, answer, fault, body.include_usage())
        self.stats.record_usage(answer.usage["prompt_tokens"], answer.usage["completion_tokens"])
        body_json = completion_body(
            answer.call_id, answer.created, answer.model,
            text="".join(answer.tokens), finish=answer.finish, usage=answer.usage,
        )  # fmt: skip
        return web.json_response(body_json)

    def _answer(self, body: ChatRequest, turns: list[Turn]) -> _Answer:
        tokens = tokenize(compose(turns))
        limit = body.token_limit()
        finish = "stop"
        if limit is not None and len(tokens) > limit:
            tokens, finish = tokens[:limit], "length"
        usage = usage_body(prompt_tokens(turns), len(tokens))
        call_id = f"chatcmpl-demo-{next(self._ids)}"
        return _Answer(call_id, int(time.time()), body.model, tokens, finish, usage)

    def _failure(self, status: int) -> web.Response:
        headers: dict[str, str] = {}
        if status == 429:
            delay = self.config.retry_after_s
            headers = {
                "Retry-After": str(math.ceil(delay)),
                "retry-after-ms": str(round(delay * 1000)),
            }
        body = error_body(status, f"demo model: injected failure {status}", "injected")
        return web.json_response(body, status=status, headers=headers)

    async def _hang(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.hang_s):
                await self._stopping.wait()

    async def _drop(
        self, request: web.Request, resp: web.StreamResponse, *, hang: bool
    ) -> web.StreamResponse:
        """Optionally hang, then drop the connection (aiohttp then skips the response)."""
        if hang:
            await self._hang()
        if request.transport is not None:
            request.transport.abort()
        return resp

    async def _stream(
        self, request: web.Request, answer: _Answer, fault: str | None, include_usage: bool
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        # The client may go away mid-stream (its stage was cancelled): nothing left to do then.
        with contextlib.suppress(ConnectionError):
            await self._send(request, resp, answer, fault, include_usage)
        return resp

    async def _send(
        self, request: web.Request, resp: web.StreamResponse, answer: _Answer,
        fault: str | None, include_usage: bool,
    ) -> None:  # fmt: skip
        enc = ChunkEncoder(answer.call_id, answer.created, answer.model)
        await resp.write(enc.role())
        stop = max(1, len(answer.tokens) // 2) if fault in ("stall", "cut") else len(answer.tokens)
        for index, token in enumerate(answer.tokens[:stop]):
            delay = self.config.token_delay_ms / 1000  # per token: ``configure`` paces live streams
            if index and delay > 0:
                await asyncio.sleep(delay)
            await resp.write(enc.delta(token))
        if fault is not None:
            await self._drop(request, resp, hang=fault == "stall")
            return
        await resp.write(enc.finish(answer.finish))
        if include_usage:
            await resp.write(enc.usage(answer.usage))
            self.stats.record_usage(
                answer.usage["prompt_tokens"], answer.usage["completion_tokens"]
            )
        await resp.write(enc.done())
        await resp.write_eof()
