"""``python -m workers.demo_model --port 8001``: run the demo model server on its own."""

from __future__ import annotations

import argparse
import asyncio
import signal

from workers.demo_model.config import DemoConfig
from workers.demo_model.server import DemoModelServer


def parse_args(argv: list[str] | None = None) -> DemoConfig:
    """Turn command-line arguments into a DemoConfig."""
    parser = argparse.ArgumentParser(prog="python -m workers.demo_model", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--token-delay-ms", type=float, default=DemoConfig.token_delay_ms)
    parser.add_argument("--fail-rate", type=float, default=0.0, help="share of calls that fail")
    parser.add_argument("--fail-kinds", default=",".join(DemoConfig.fail_kinds))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retry-after-s", type=float, default=DemoConfig.retry_after_s)
    parser.add_argument("--api-key", default=None, help="require this bearer token")
    parser.add_argument("--any-model", action="store_true", help="serve any model name")
    parser.add_argument("--down", action="store_true", help="answer every call with 503")
    args = parser.parse_args(argv)
    return DemoConfig(
        host=args.host, port=args.port, token_delay_ms=args.token_delay_ms,
        fail_rate=args.fail_rate, seed=args.seed, down=args.down,
        fail_kinds=tuple(k.strip() for k in args.fail_kinds.split(",") if k.strip()),
        retry_after_s=args.retry_after_s, api_key=args.api_key,
        models=() if args.any_model else DemoConfig.models,
    )  # fmt: skip


async def serve(config: DemoConfig) -> None:
    """Serve until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with DemoModelServer(config) as server:
        print(f"demo model serving on {server.base_url}", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve(parse_args()))
