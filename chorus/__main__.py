"""``python -m chorus``: serve Chorus (embedded mode when nothing is configured)."""

from __future__ import annotations

from aiohttp import web

from chorus.embedded import embedded_services
from server import keys
from server.app import create_app, runner_options
from server.banner import announce
from server.cli import run_cli, wait_for_stop_signal
from server.config import Settings


async def serve(settings: Settings) -> None:
    """Run the server until SIGINT or SIGTERM, then shut down gracefully."""
    async with embedded_services(settings) as embedded:
        resolved = embedded.settings
        app = create_app(resolved)
        embedded.expose_metrics(app[keys.METRICS].registry)
        runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=10, **runner_options(resolved)
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, resolved.host, resolved.port)
            await site.start()
            urls = " ".join(f"http://{host}:{port}/" for host, port in _addresses(runner))
            announce(
                f"Chorus is serving on {urls}", resolved, app[keys.PIPELINES],
                embedded.describe_workers(), private_redis=embedded.private_redis,
            )  # fmt: skip
            await wait_for_stop_signal()
        finally:
            await runner.cleanup()


def _addresses(runner: web.AppRunner) -> list[tuple[str, int]]:
    return [(str(addr[0]), int(addr[1])) for addr in runner.addresses]


if __name__ == "__main__":
    run_cli("chorus", serve)
