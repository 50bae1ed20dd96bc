"""The ``chorus`` command: chat with a pipeline, list sessions, show usage, manage keys.

Server and credential come from ``--url``/``--token``, else ``CHORUS_URL`` and
``CHORUS_API_KEY`` (or ``CHORUS_TOKEN``), else the file ``chorus login`` writes.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from chorus_client.client import ChorusClient
from chorus_client.config import CliConfig
from chorus_client.models import FINAL_RUN_EVENTS, ChorusError, Event
from chorus_client.stepper import Stepper

Command = Callable[[argparse.Namespace, CliConfig], Coroutine[Any, Any, int]]


async def _turn(client: ChorusClient, session_id: str, content: str, stepper: Stepper) -> None:
    """Send one message and render its run; Ctrl-C cancels the run."""
    stream = client.events(session_id)
    try:
        await anext(stream)  # subscribed before sending: no event is missed
        # "reject": a busy session is an error (409) here, not a message left queued.
        run_id = (await client.send(session_id, content, "reject"))["run"]["run_id"]
        print(f"run {run_id} queued", file=sys.stderr, flush=True)
        try:
            async for item in stream:
                if isinstance(item, Event) and item.run_id == run_id:
                    stepper.show(item)
                    if item.name in FINAL_RUN_EVENTS:
                        return
        except asyncio.CancelledError:
            await client.cancel(run_id)  # Ctrl-C: stopping is explicit, so cancel the run
            raise
    finally:
        await stream.aclose()


def _ask() -> str:
    """Read one message, prompting on stderr (stdout carries only answers)."""
    sys.stderr.write("you> ")
    sys.stderr.flush()
    return input()


def _messages(args: argparse.Namespace) -> list[str] | None:
    if args.message:
        return [" ".join(args.message)]
    return None


async def chat(args: argparse.Namespace, cfg: CliConfig) -> int:
    """Stream a run of each message (or of each line typed, when none is given)."""
    async with ChorusClient(cfg.url, token=cfg.token) as client:
        given = _messages(args)
        if args.session:
            session = await client.get_session(args.session)
        else:
            title = (given[0] if given else "")[:80]
            session = await client.create_session(title=title, pipeline=args.pipeline)
        described = await client.pipelines()
        pipeline = next(p for p in described["pipelines"] if p["name"] == session["pipeline"])
        stages = [s["name"] for s in pipeline["stages"]]
        print(f"session {session['session_id']} · pipeline {pipeline['name']}", file=sys.stderr)
        status = "completed"
        while True:
            if given is not None:
                if not given:
                    break
                content = given.pop(0)
            else:
                try:
                    content = await asyncio.to_thread(_ask)
                except EOFError:
                    break
                if not content.strip():
                    continue
            stepper = Stepper(stages, sys.stdout, sys.stderr, all_stages=args.all_stages)
            await _turn(client, session["session_id"], content, stepper)
            status = stepper.status or "unknown"
    return 0 if status == "completed" else 1


async def sessions(args: argparse.Namespace, cfg: CliConfig) -> int:
    """List sessions, newest first."""
    async with ChorusClient(cfg.url, token=cfg.token) as client:
        page = await client.list_sessions(limit=args.limit, status=args.status)
    for s in page["items"]:
        print(f"{s['session_id']}  {s['status']:<9}  {s['pipeline']:<10}  "
              f"{s['updated_at']}  {s['title']}")  # fmt: skip
    print(f"{len(page['items'])} of {page['total']} sessions", file=sys.stderr)
    return 0


async def usage(args: argparse.Namespace, cfg: CliConfig) -> int:
    """Show tokens and cost, in total and per day."""
    async with ChorusClient(cfg.url, token=cfg.token) as client:
        summary = await client.usage()
    print(f"total  {summary['prompt_tokens']} prompt  {summary['completion_tokens']} completion"
          f"  {summary['calls']} calls  ${summary['cost_usd']:.6f}")  # fmt: skip
    for day in summary["days"]:
        print(f"{day['day']}  {day['prompt_tokens']} prompt  {day['completion_tokens']} "
              f"completion  {day['calls']} calls  ${day['cost_usd']:.6f}")  # fmt: skip
    budget = summary.get("budget")
    if isinstance(budget, dict):
        print(_budget_line(budget))
    return 0


def _budget_line(budget: dict[str, Any]) -> str:
    """Today's budget: what is left of the tokens and cost (or unlimited), and the reset."""
    parts = []
    for name, unit in (("tokens", " tokens"), ("cost_usd", " USD")):
        meter = budget.get(name) or {}
        if meter.get("limit") is None:
            parts.append(f"unlimited{unit}")
        else:
            parts.append(f"{meter['remaining']:g} of {meter['limit']:g}{unit} left")
    spent = "  SPENT" if budget.get("exceeded") or budget.get("global_exceeded") else ""
    return f"budget  {'  '.join(parts)}  resets {budget.get('resets_at')}{spent}"


async def login(args: argparse.Namespace, cfg: CliConfig) -> int:
    """Log in and keep the token in the config file."""
    password = args.password or getpass.getpass("password: ")
    async with ChorusClient(cfg.url) as client:
        await client.login(args.email, password)
        path = CliConfig(cfg.url, client.token).save(os.environ)
    print(f"logged in; token saved to {path}", file=sys.stderr)
    return 0


async def api_keys(args: argparse.Namespace, cfg: CliConfig) -> int:
    """Create, list or revoke API keys (needs a login token, not a key)."""
    async with ChorusClient(cfg.url, token=cfg.token) as client:
        if args.action == "create":
            created = await client.create_api_key(args.name or "")
            print(created["key"])
            print(f"key {created['key_id']}: shown once, keep it safe", file=sys.stderr)
        elif args.action == "revoke":
            await client.revoke_api_key(args.name)
        else:
            for key in await client.list_api_keys():
                revoked = f"revoked {key['revoked_at']}" if key["revoked_at"] else "active"
                print(f"{key['key_id']}  {key['prefix']}…  {revoked:<8}  {key['name']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(prog="chorus", description="Talk to a Chorus server.")
    parser.add_argument("--url", help="server URL (default: $CHORUS_URL or the saved one)")
    parser.add_argument("--token", help="API key or login token (default: $CHORUS_API_KEY)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("chat", help="send a message and stream the run")
    p.add_argument("message", nargs="*", help="the message (none: read lines interactively)")
    p.add_argument("--session", help="continue this session")
    p.add_argument("--pipeline", default="default", help="pipeline of a new session")
    p.add_argument("--all-stages", action="store_true", help="also show earlier stages' text")
    p.set_defaults(func=chat)
    p = sub.add_parser("sessions", help="list your sessions")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--status")
    p.set_defaults(func=sessions)
    sub.add_parser("usage", help="tokens and cost").set_defaults(func=usage)
    p = sub.add_parser("login", help="log in and save the token")
    p.add_argument("--email", required=True)
    p.add_argument("--password", help="(default: prompt)")
    p.set_defaults(func=login)
    p = sub.add_parser("keys", help="manage API keys")
    p.add_argument("action", choices=["create", "list", "revoke"])
    p.add_argument("name", nargs="?", help="name of a new key, or id of the key to revoke")
    p.set_defaults(func=api_keys)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    cfg = CliConfig.load(os.environ, args.url, args.token)
    func: Command = args.func
    try:
        return asyncio.run(func(args, cfg))
    except ChorusError as exc:
        print(f"chorus: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nchorus: interrupted (the run was cancelled)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
