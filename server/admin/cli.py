"""``python -m server admin …``: manage accounts from a shell, against the configured store.

    python -m server admin list-users
    python -m server admin promote alice@example.com      # or demote
    python -m server admin disable alice@example.com      # or enable
    python -m server admin set-budget alice@example.com --tokens 200000 --cost 2.5
    python -m server admin set-budget alice@example.com --tokens default

It reads the same environment as the server (MONGODB_URL or DATA_DIR, REDIS_URL). With
Redis reachable (REDIS_URL, or the private Redis a running embedded server wrote to
``DATA_DIR/redis_url``) a disable also closes the user's sockets at once; without it the
user's tokens stop working all the same (every request reads the user from the store).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError

from server.admin.service import AdminService
from server.config import ConfigError, Settings
from server.errors import ApiError
from server.redis_keys import RedisKeys
from server.store.base import Store
from server.store.factory import open_store
from server.store.models import User

log = logging.getLogger("chorus.admin")
REDIS_URL_FILE = "redis_url"  # written by a running embedded server beside its SQLite file


def _budget(value: str) -> str:
    if value != "default":
        try:
            if float(value) < 0:
                raise ValueError
        except ValueError:
            raise argparse.ArgumentTypeError("a number >= 0, or 'default'") from None
    return value


def parser() -> argparse.ArgumentParser:
    """The admin command line."""
    top = argparse.ArgumentParser(
        prog="python -m server admin", description="Manage Chorus accounts."
    )
    commands = top.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list-users", help="list every user, oldest first")
    listing.add_argument("--limit", type=int, default=1000)
    for name, text in (
        ("promote", "give a user the admin role"),
        ("demote", "take the admin role away"),
        ("disable", "disable a user: tokens stop working, sockets close"),
        ("enable", "enable a disabled user"),
    ):
        commands.add_parser(name, help=text).add_argument("email")
    budget = commands.add_parser(
        "set-budget", help="set a user's daily budget (0: unlimited; default: the server's)"
    )
    budget.add_argument("email")
    budget.add_argument("--tokens", type=_budget, help="tokens per UTC day, or 'default'")
    budget.add_argument("--cost", type=_budget, help="USD per UTC day, or 'default'")
    return top


def describe(user: User) -> str:
    """One line of the user list."""
    tokens = "default" if user.budget_tokens_per_day is None else str(user.budget_tokens_per_day)
    cost = "default" if user.budget_cost_per_day is None else f"{user.budget_cost_per_day:g}"
    state = "disabled" if user.disabled else "active"
    return (
        f"{user.email}\t{user.role}\t{state}\ttokens/day={tokens}\tcost/day={cost}\t{user.user_id}"
    )


def _changes(args: argparse.Namespace) -> dict[str, object]:
    command = args.command
    if command in ("promote", "demote"):
        return {"role": "admin" if command == "promote" else "user"}
    if command in ("disable", "enable"):
        return {"disabled": command == "disable"}
    changes: dict[str, object] = {}
    if args.tokens is not None:
        changes["budget_tokens_per_day"] = (
            None if args.tokens == "default" else int(float(args.tokens))
        )
    if args.cost is not None:
        changes["budget_cost_per_day"] = None if args.cost == "default" else float(args.cost)
    return changes


def redis_url(settings: Settings) -> str | None:
    """REDIS_URL, else the private Redis of a running embedded server, else None."""
    if settings.redis_url is not None:
        return settings.redis_url.get_secret_value()
    path = Path(settings.data_dir) / REDIS_URL_FILE
    return path.read_text().strip() or None if path.exists() else None


async def _reachable(url: str | None) -> Redis | None:
    if url is None:
        return None
    client: Redis = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        await client.ping()
    except (RedisError, OSError):
        await client.aclose()
        return None
    return client


async def run(args: argparse.Namespace, settings: Settings, out: list[str]) -> int:
    """Perform one admin command; append what to print to ``out``; return the exit status."""
    store: Store = await open_store(settings)
    announce = args.command in ("disable", "enable")
    redis = await _reachable(redis_url(settings)) if announce else None
    try:
        admin = AdminService(store, redis, RedisKeys(settings.redis_key_prefix))
        if args.command == "list-users":
            users, total = await admin.list_users(args.limit, 0)
            out.extend(describe(user) for user in users)
            out.append(f"{len(users)} of {total} users")
            return 0
        changes = _changes(args)
        if not changes:
            out.append("nothing to change: give --tokens and/or --cost")
            return 2
        user = await admin.update((await admin.by_email(args.email)).user_id, changes)
        out.append(describe(user))
        if args.command == "disable" and redis is None:
            out.append("note: Redis not reachable; the user's open sockets close when their "
                       "tokens are next checked (their requests already get 401)")  # fmt: skip
        return 0
    finally:
        if redis is not None:
            await redis.aclose()
        await store.close()


def main(argv: Sequence[str]) -> int:
    """Parse ``argv`` (after ``admin``), run the command, print its result."""
    args = parser().parse_args(list(argv))
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"chorus admin: configuration error: {exc}", file=sys.stderr)
        return 2
    out: list[str] = []
    try:
        status = asyncio.run(run(args, settings, out))
    except ApiError as exc:
        print(f"chorus admin: {exc.message}", file=sys.stderr)
        return 1
    print("\n".join(out))
    return status
