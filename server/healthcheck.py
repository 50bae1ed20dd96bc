"""``python -m server.healthcheck [web|worker]``: exit 0 if this container's process is alive.

The container image's HEALTHCHECK. A web process answers ``/healthz`` on ``PORT``; a
worker on ``WORKER_METRICS_PORT``; with no argument either will do (one image serves
both roles). Only the standard library: it runs every few seconds.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from server.config import ConfigError, Settings

_TIMEOUT_S = 2.0


def probe(port: int) -> bool:
    """Whether http://127.0.0.1:port/healthz answers 200."""
    if not port:
        return False
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=_TIMEOUT_S) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def ports_for(role: str, settings: Settings) -> list[int]:
    """The ports to try for ``role`` (web, worker, or either)."""
    if role == "web":
        return [settings.port]
    if role == "worker":
        return [settings.worker_metrics_port]
    return [settings.port, settings.worker_metrics_port]


def main(argv: list[str]) -> int:
    """Probe the role's ports; 0 when one answers, 1 otherwise, 2 on bad usage."""
    role = argv[0] if argv else "any"
    if role not in ("web", "worker", "any"):
        print("usage: python -m server.healthcheck [web|worker]", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"healthcheck: configuration error: {exc}", file=sys.stderr)
        return 2
    return 0 if any(probe(port) for port in ports_for(role, settings)) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
