"""Time to first token through /v1/chat/completions vs the WebSocket vs the model itself.

Three ways to get the first token of the same one-stage ``chat`` answer, measured in
one run, in alternating phases so all three see the same machine:

- direct: the openai SDK streaming straight from the demo model server, with the
  messages the worker would build (the baseline: what any client pays anyway);
- WebSocket: Chorus's own path, WS ``send`` → first ``stage.delta`` on the socket;
- OpenAI-compatible: the openai SDK streaming from Chorus's ``/v1/chat/completions``
  (``model="chat"``, an API key, ``chorus_session_id`` so each caller's history grows
  as the other paths' do) → first chunk with content.

The direct and /v1 callers run in child processes of their own (the SDK's CPU is not
this process's); each caller sends, reads the answer, thinks (0.5 to 1.5 times
--think-s) and sends again. Then, paired and noise-free: one /v1 stream at a time with
a WebSocket subscribed to the same session, comparing the same event on both.
Printed: p50/p95 of each, and what Chorus adds over the direct call on each path,
against DESIGN §7's bar for the WebSocket path (p50 ≤ 10 ms, p95 ≤ 30 ms), which the
/v1 path is held to as well.

Processes: redis-server, the demo model, one web process, one worker, this client.

    .venv/bin/python bench/bench_openai_ttft.py [--quick] [--sessions 10] [--think-s 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import time
from typing import Any

import aiohttp
import openai
from _harness import Api, ChorusWs, Stack, client, header, new_email, run, verdict
from bench_stage_latency import PROMPT, chorus_ttft, ms, open_seats, run_direct, think


def v1_ttft(job: tuple[str, str, list[str], float, float], queue: Any) -> None:
    """Child process: one SDK caller per session streams from /v1; put their TTFTs."""
    queue.put(asyncio.run(_v1(*job)))


async def _v1(base: str, key: str, sessions: list[str], seconds: float,
              think_s: float) -> list[float]:  # fmt: skip
    sdk = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=120)
    ttfts: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def call(session_id: str) -> float | None:
        sent, first = time.perf_counter(), None
        stream = await sdk.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": PROMPT}], stream=True,
            extra_body={"chorus_session_id": session_id, "chorus_progress": False},
        )  # fmt: skip
        async with stream:
            async for chunk in stream:
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter()
        return None if first is None else first - sent

    async def loop(session_id: str) -> None:
        await call(session_id)  # warm-up, as the other paths had theirs
        await asyncio.sleep(random.uniform(0, think_s or 0.2))
        while time.perf_counter() < stop_at:
            ttft = await call(session_id)
            if ttft is not None:
                ttfts.append(ttft)
            await asyncio.sleep(think(think_s))

    await asyncio.gather(*(loop(s) for s in sessions))
    await sdk.close()
    return ttfts


async def run_v1(base: str, key: str, sessions: list[str], seconds: float,
                 think_s: float) -> list[float]:  # fmt: skip
    """Run the /v1 callers in a child process."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    job = (base, key, sessions, seconds, think_s)
    proc = ctx.Process(target=v1_ttft, args=(job, queue))
    proc.start()
    result: list[float] = await asyncio.to_thread(queue.get, True, seconds + 180)
    await asyncio.to_thread(proc.join, 30)
    return result


async def v1_caller(api: Api, count: int) -> tuple[str, list[str]]:
    """A user with an API key and ``count`` chat sessions of theirs."""
    token = await api.user(new_email("v1"))
    key = (await api._json("POST", "/api/v1/api-keys", token, json={"name": "bench"}))["key"]
    return key, [await api.session(token, pipeline="chat") for _ in range(count)]


async def paired(
    http: aiohttp.ClientSession, api: Api, base: str, count: int
) -> tuple[list[float], list[float]]:
    """Sequential /v1 streams watched by a WebSocket on the same session.

    Returns, per answer, the /v1 request → ``message.created`` on the socket (what the
    HTTP request, API-key auth and session lookup cost before the run starts) and the
    first /v1 content chunk − the same delta on the socket (what the /v1 delivery adds
    to the WebSocket's for the very same event: noise from other load cancels out).
    """
    token = await api.user(new_email("pair"))
    key = (await api._json("POST", "/api/v1/api-keys", token, json={"name": "pair"}))["key"]
    session_id = await api.session(token, pipeline="chat")
    seen: dict[str, float] = {}
    conn = await ChorusWs.open(http, base, token, lambda f, now: seen.setdefault(f["name"], now))
    await conn.command("subscribe", session_id=session_id)
    before: list[float] = []
    delivery: list[float] = []
    body = {
        "model": "chat", "stream": True, "chorus_session_id": session_id,
        "chorus_progress": False, "messages": [{"role": "user", "content": PROMPT}],
    }  # fmt: skip
    for _ in range(count):
        seen.clear()
        sent, first = time.perf_counter(), None
        async with http.post(f"{base}/v1/chat/completions", json=body,
                             headers={"Authorization": f"Bearer {key}"}) as resp:  # fmt: skip
            async for line in resp.content:
                if first is None and line.startswith(b"data: {"):
                    choices = json.loads(line[6:])["choices"]
                    if choices and choices[0]["delta"].get("content"):
                        first = time.perf_counter()
        if first is not None and "stage.delta" in seen:
            before.append(seen["message.created"] - sent)
            delivery.append(first - seen["stage.delta"])
        await asyncio.sleep(random.uniform(0.1, 0.3))
    await conn.close()
    return before, delivery


def row(label: str, values: list[float], direct: list[float]) -> tuple[float, float]:
    """Print one path's figures; return what it adds over direct (p50, p95 ms)."""
    added = (ms(values, 50) - ms(direct, 50), ms(values, 95) - ms(direct, 95))
    extra = "" if values is direct else f"   added p50 {added[0]:6.1f} ms  p95 {added[1]:6.1f} ms"
    print(f"    {label:34s} p50 {ms(values, 50):6.1f} ms  p95 {ms(values, 95):6.1f} ms"
          f"  ({len(values):4d} answers){extra}")  # fmt: skip
    return added


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a < 30 s smoke run")
    parser.add_argument("--sessions", type=int, default=10, help="concurrent callers per path")
    parser.add_argument("--think-s", type=float, default=1.0, help="mean pause between sends")
    parser.add_argument("--token-delay-ms", type=float, default=20.0, help="demo delay per token")
    args = parser.parse_args()
    phase_s, rounds = (3.0, 1) if args.quick else (10.0, 2)
    header("bench_openai_ttft")
    async with Stack() as stack, client() as http:
        _demo, demo_url = await stack.demo(args.token_delay_ms)
        _web, base = await stack.web()
        await stack.worker("worker", DEMO_MODEL_URL=demo_url)
        seats = await open_seats(http, base, args.sessions)
        key, v1_sessions = await v1_caller(Api(http, base), args.sessions)
        await asyncio.gather(*(seat.run_once() for seat in seats))  # warm-up
        before, delivery = await paired(http, Api(http, base), base, 20 if args.quick else 60)
        direct: list[float] = []
        ws: list[float] = []
        v1: list[float] = []
        for _ in range(rounds):
            direct += await run_direct(demo_url, args.sessions, phase_s, args.think_s)
            ws += await chorus_ttft(seats, phase_s, args.think_s, [])
            v1 += await run_v1(base, key, v1_sessions, phase_s, args.think_s)
        for seat in seats:
            await seat.conn.close()
    print(
        f"time to first token, {args.sessions} callers per path, think {args.think_s:g} s, "
        f"demo token delay {args.token_delay_ms:g} ms, {rounds} × {phase_s:g} s per path"
    )
    row("direct SDK call to the model", direct, direct)
    ws_added = row("Chorus WebSocket send → delta", ws, direct)
    v1_added = row("Chorus /v1/chat/completions (SDK)", v1, direct)
    print(f"    /v1 vs WebSocket: p50 {ms(v1, 50) - ms(ws, 50):+.1f} ms, "
          f"p95 {ms(v1, 95) - ms(ws, 95):+.1f} ms")  # fmt: skip
    print(f"    paired, one /v1 stream watched by a WebSocket ({len(delivery)} answers): request →"
          f" run's first event p50 {ms(before, 50):.1f} / p95 {ms(before, 95):.1f} ms; first /v1"
          f" content − the same delta on the socket p50 {ms(delivery, 50):.2f} /"
          f" p95 {ms(delivery, 95):.2f} ms")  # fmt: skip
    ok = all(a50 <= 10 and a95 <= 30 for a50, a95 in (ws_added, v1_added))
    print(f"RESULT bench_openai_ttft: added p50 ≤ 10 ms, p95 ≤ 30 ms on both paths: {verdict(ok)}")


if __name__ == "__main__":
    run(main)
