"""``python -m server``: serve Chorus (embedded mode when nothing is configured)."""

from __future__ import annotations

from aiohttp import web

from server.app import create_app
from server.cli import run_cli, wait_for_stop_signal
from server.config import Settings
from server.embedded import embedded_services


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
            await wait_for_stop_signal()
        finally:
            await runner.cleanup()


if __name__ == "__main__":
    run_cli("chorus", serve)
