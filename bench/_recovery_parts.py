"""The bench_recovery parts outside the scenarios: a client that notes when each event
arrives, and the pool of worker processes a phase kills and replaces."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from _harness import Api, Child, ChorusWs, Stack, new_email

PROMPT = "How do I keep sourdough starter alive?"
FINAL = ("run.completed", "run.failed", "run.cancelled")


@dataclass(frozen=True)
class Seen:
    """One event as the client got it (``at``: perf_counter on receipt)."""

    at: float
    name: str
    run_id: str
    session_id: str
    epoch: str
    seq: int
    data: dict[str, Any]

    @property
    def stage(self) -> str | None:
        """The stage the event is about, if any."""
        stage = self.data.get("stage")
        return stage if isinstance(stage, str) else None


class Watch:
    """Every event and ``resync`` frame one socket got, with when it got them."""

    def __init__(self) -> None:
        self.events: list[Seen] = []
        self.resyncs: list[tuple[float, list[str]]] = []
        self._changed = asyncio.Event()

    def on_event(self, frame: dict[str, Any], now: float) -> None:
        """Record an event frame."""
        self.events.append(
            Seen(now, frame["name"], frame.get("run_id") or "", frame["session_id"],
                 frame["epoch"], frame["seq"], frame.get("data") or {})
        )  # fmt: skip
        self._changed.set()

    def on_resync(self, session_ids: list[str], now: float) -> None:
        """Record a resync frame."""
        self.resyncs.append((now, session_ids))
        self._changed.set()

    def find(self, pred: Callable[[Seen], bool]) -> Seen | None:
        """The first event held that matches."""
        return next((e for e in self.events if pred(e)), None)

    async def wait(self, pred: Callable[[], bool], within_s: float) -> None:
        """Wait until ``pred()`` holds (re-checked on each frame); TimeoutError after within_s."""
        async with asyncio.timeout(within_s):
            while not pred():
                self._changed.clear()
                await self._changed.wait()

    async def wait_event(self, pred: Callable[[Seen], bool], within_s: float) -> Seen:
        """Wait for the first event that matches."""
        await self.wait(lambda: self.find(pred) is not None, within_s)
        found = self.find(pred)
        assert found is not None
        return found


@dataclass
class Client:
    """One user with one socket; each sample runs in a fresh session of this user."""

    api: Api
    token: str
    conn: ChorusWs
    watch: Watch

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, base: str) -> Client:
        """Register a user and open its socket."""
        api = Api(http, base)
        token = await api.user(new_email("recovery"))
        watch = Watch()
        conn = await ChorusWs.open(http, base, token, watch.on_event)
        conn.on_resync = watch.on_resync
        return cls(api, token, conn, watch)

    async def start_run(self) -> tuple[str, str]:
        """Create a subscribed session and send a message; return (session id, run id)."""
        session_id = await self.api.session(self.token)
        await self.conn.command("subscribe", session_id=session_id, after_seq=0)
        sent = await self.conn.command("send", session_id=session_id, content=PROMPT)
        return session_id, sent["run"]["run_id"]

    def last_held(self, session_id: str, epoch: str | None = None) -> Seen:
        """The session's last event held (of ``epoch`` if given), by seq."""
        held = [e for e in self.watch.events if e.session_id == session_id]
        return max((e for e in held if epoch in (None, e.epoch)), key=lambda e: e.seq)

    async def outcome(self, session_id: str, run_id: str, within_s: float) -> str:
        """Wait for the run's end; '' if it completed with one assistant message, else why."""
        try:
            end = await self.watch.wait_event(
                lambda e: e.run_id == run_id and e.name in FINAL, within_s
            )
        except TimeoutError:
            return f"no end within {within_s:g} s"
        body = await self.api.get(f"/sessions/{session_id}/messages?limit=100", self.token)
        answers = [m for m in body["items"] if m["role"] == "assistant" and m["run_id"] == run_id]
        run_state = await self.api.get(f"/runs/{run_id}", self.token)
        problems = [] if end.name == "run.completed" else [end.name]
        if run_state["status"] != "completed":
            problems.append(f"status {run_state['status']}")
        if len(answers) != 1:
            problems.append(f"{len(answers)} assistant messages")
        if run_state["stages"][0]["attempts"] != 1:
            problems.append("the completed plan stage was redone")
        await self.conn.command("unsubscribe", session_id=session_id)
        return ", ".join(problems)


@dataclass
class Workers:
    """The live workers of a phase; a killed one is replaced at once."""

    stack: Stack
    env: dict[str, str]
    args: tuple[str, ...] = ()
    live: list[Child] = field(default_factory=list)
    count: int = 0
    _starting: set[asyncio.Task[Child]] = field(default_factory=set)

    async def add(self) -> Child:
        """Start one more worker and wait until it runs."""
        self.count += 1
        plain = bool(self.args)
        child = await self.stack.worker(
            f"worker-{self.count}{'-arq' if plain else ''}", plain=plain, args=self.args,
            **self.env,
        )  # fmt: skip
        self.live.append(child)
        return child

    def running(self, job_id: str) -> Child:
        """The worker that started the job (arq logs each job it starts, at INFO)."""
        needle = f"{job_id}:run_stage("
        holders = [c for c in self.live if needle in c.log_path.read_text(errors="replace")]
        if len(holders) != 1:
            raise RuntimeError(f"{len(holders)} live workers started {job_id}")
        return holders[0]

    def kill_and_replace(self, victim: Child) -> None:
        """SIGKILL the worker and start its replacement (in the background)."""
        victim.kill()
        self.live.remove(victim)
        task = asyncio.create_task(self.add())
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    async def settled(self) -> None:
        """Wait for the replacements being started."""
        if self._starting:
            await asyncio.gather(*self._starting)

    async def stop(self) -> None:
        """Stop every live worker of the phase."""
        await self.settled()
        for child in self.live:
            await asyncio.to_thread(child.stop)
        self.live.clear()
