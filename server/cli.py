"""What ``python -m server`` and ``python -m workers`` share: settings, logs, signals."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from server.config import ConfigError, Settings
from server.logs import configure_logging
from server.pipelines import PipelinesError


async def wait_for_stop_signal() -> None:
    """Return when the process gets SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def run_cli(
    name: str,
    serve: Callable[[Settings], Coroutine[Any, Any, None]],
    check: Callable[[Settings], None] | None = None,
) -> None:
    """Read settings once, configure JSON logs and run ``serve``; exit 2 on bad config."""
    try:
        settings = Settings.from_env()
        if check is not None:
            check(settings)
    except ConfigError as exc:
        print(f"{name}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level)
    try:
        asyncio.run(serve(settings))
    except PipelinesError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
