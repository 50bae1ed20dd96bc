"""ProviderPool: one openai.AsyncOpenAI and one rpm limiter per provider, built once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import openai
from aiolimiter import AsyncLimiter

from server.config import secret
from server.pipelines import Provider

# Local servers (the demo model, Ollama, llama.cpp) take any key; the SDK insists on one.
_NO_KEY = "not-needed"


class ProviderPool:
    """The clients of every usable provider, and each provider's requests-per-minute pacing."""

    def __init__(self, providers: Iterable[Provider], timeout_s: float) -> None:
        self._clients: dict[str, openai.AsyncOpenAI] = {}
        self._limiters: dict[str, AsyncLimiter] = {}
        for provider in providers:
            if provider.rpm is not None:
                self._limiters[provider.name] = AsyncLimiter(provider.rpm, 60)
            if provider.problem is None and provider.base_url is not None:
                self._clients[provider.name] = openai.AsyncOpenAI(
                    base_url=provider.base_url, api_key=secret(provider.api_key) or _NO_KEY,
                    max_retries=0, timeout=timeout_s,  # the chain is the one retry policy
                )  # fmt: skip

    def client(self, provider: str) -> openai.AsyncOpenAI | None:
        """Return the provider's client, or None if it cannot be called."""
        return self._clients.get(provider)

    async def pace(self, provider: str) -> None:
        """Wait for the provider's rpm budget to allow one more request."""
        limiter = self._limiters.get(provider)
        if limiter is not None:
            await limiter.acquire()

    async def close(self) -> None:
        """Close every client."""
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(client.close() for client in clients))
