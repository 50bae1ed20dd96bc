"""``python -m server``: serve Chorus (embedded mode when nothing is configured)."""

from __future__ import annotations

import asyncio
import signal
import sys

from aiohttp import web

from server.app import create_app
from server.config import ConfigError, Settings
from server.embedded import embedded_services
from server.logs import configure_logging
from server.pipelines import PipelinesError


async def serve(settings: Settings) -> None:
    """Run the server until SIGINT or SIGTERM, then shut down gracefully."""
    async with embedded_services(settings) as resolved:
        runner = web.AppRunner(create_app(resolved), access_log=None, shutdown_timeout=10)
        await runner.setup()
        try:
            site = web.TCPSite(runner, resolved.host, resolved.port)
            await site.start()
            for host, port in (addr[:2] for addr in runner.addresses):
                print(f"Chorus is serving on http://{host}:{port}/", flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
        finally:
            await runner.cleanup()


def main() -> None:
    """Read settings, configure logs and serve."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"chorus: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level)
    try:
        asyncio.run(serve(settings))
    except PipelinesError as exc:
        print(f"chorus: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
