"""``python -m server admin …`` as a subprocess against the test's store and Redis: list,
promote, set budgets, disable (the user's socket closes, their token gets 401) and enable."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from chorus.embedded import embedded_services
from server import keys
from server.admin.cli import REDIS_URL_FILE, redis_url
from server.config import Settings, secret
from tests.server.ws.conftest import Ws, recv_close
from tests.support.api import error_of


async def _admin(data_dir: Path, *args: str, redis_url: str | None = None) -> tuple[int, str]:
    """Run the CLI; return its exit status and output (stdout then stderr)."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "MONGODB_URL")}
    env |= {"DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING"}
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "admin", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, (out + err).decode()


async def test_the_cli_lists_promotes_and_sets_budgets(ws_tools: Ws) -> None:
    data_dir = ws_tools.client.app[keys.SETTINGS].data_dir
    first, second = await ws_tools.user("root"), await ws_tools.user("bob")
    status, out = await _admin(data_dir, "list-users")
    assert status == 0, out
    lines = out.splitlines()
    assert lines[0].startswith(f"{first.email}\tadmin\tactive\ttokens/day=default")
    assert lines[1].startswith(f"{second.email}\tuser\tactive")
    assert lines[-1] == "2 of 2 users"

    status, out = await _admin(data_dir, "promote", second.email.upper())
    assert status == 0 and f"{second.email}\tadmin" in out, out
    status, out = await _admin(
        data_dir, "set-budget", second.email, "--tokens", "5000", "--cost", "1.25"
    )
    assert status == 0 and "tokens/day=5000\tcost/day=1.25" in out, out
    stored = await ws_tools.client.app[keys.STORE].get_user(second.user["user_id"])
    assert stored is not None and stored.role == "admin"
    assert (stored.budget_tokens_per_day, stored.budget_cost_per_day) == (5000, 1.25)
    status, out = await _admin(data_dir, "set-budget", second.email, "--tokens", "default")
    assert status == 0 and "tokens/day=default\tcost/day=1.25" in out, out

    status, out = await _admin(data_dir, "disable", "nobody@example.test")
    assert status == 1 and "No user with email" in out, out
    status, out = await _admin(data_dir, "set-budget", second.email, "--tokens", "lots")
    assert status == 2 and "'default'" in out, out


async def test_the_cli_disable_closes_the_users_socket_and_enable_restores_them(
    ws_tools: Ws, redis_url: str
) -> None:
    client = ws_tools.client
    data_dir = client.app[keys.SETTINGS].data_dir
    await ws_tools.user("root")
    user, other = await ws_tools.user("bob"), await ws_tools.user("carol")
    ws, other_ws = await ws_tools.connect(user), await ws_tools.connect(other)

    status, out = await _admin(data_dir, "disable", user.email, redis_url=redis_url)
    assert status == 0 and f"{user.email}\tuser\tdisabled" in out, out
    assert await recv_close(ws) == 4403
    assert await error_of(await client.get("/api/v1/auth/me", headers=user.auth)) == (
        401, "unauthorized",
    )  # fmt: skip
    pong = await ws_tools.call(other_ws, {"id": 1, "type": "ping"})
    assert pong["ok"] is True

    status, out = await _admin(data_dir, "enable", user.email, redis_url=redis_url)
    assert status == 0 and f"{user.email}\tuser\tactive" in out, out
    assert (await client.get("/api/v1/auth/me", headers=user.auth)).status == 200
    assert not await client.app[keys.REDIS].exists(
        client.app[keys.REDIS_KEYS].user_disabled(user.user["user_id"])
    )
    await other_ws.close()


async def test_the_cli_finds_the_private_redis_of_an_embedded_server(tmp_path: Path) -> None:
    """Without REDIS_URL, `admin disable` reaches the Redis a running embedded server
    started (written to DATA_DIR/redis_url while it runs), so it can close sockets."""
    settings = Settings(data_dir=tmp_path / "data", embedded_worker=False)
    assert redis_url(settings) is None
    async with embedded_services(settings) as embedded:
        assert embedded.private_redis and embedded.settings.redis_url
        assert redis_url(settings) == secret(embedded.settings.redis_url)
        assert redis_url(settings.replace(redis_url="redis://elsewhere:6379/0")) == (
            "redis://elsewhere:6379/0"
        )
    assert not (tmp_path / "data" / REDIS_URL_FILE).exists()
    assert redis_url(settings) is None
