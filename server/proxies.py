"""Client address, scheme and host from X-Forwarded-* — only when the peer is a trusted proxy.

aiohttp-remotes was considered: its ``XForwardedStrict`` answers 400 to every request not
relayed by exactly the configured number of proxies (a direct health check included) and
logs each refusal at ERROR level (a log anyone can flood); ``XForwardedFiltered`` believes
X-Forwarded-For whoever sends it. What is needed is small: believe the headers only from a
trusted peer, and take the nearest untrusted hop as the client.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_SCHEMES = frozenset({"http", "https"})
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _last(header: str | None) -> str | None:
    """The value the nearest proxy appended (the last of a comma-separated list)."""
    if not header:
        return None
    value = header.rsplit(",", 1)[-1].strip()
    return value or None


class TrustedProxies:
    """A middleware that rewrites remote, scheme and host for requests relayed by a trusted peer."""

    def __init__(self, networks: Iterable[str]) -> None:
        self._networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in networks
        )

    def trusted(self, address: str | None) -> bool:
        """Whether an address belongs to a trusted proxy."""
        ip = _address(address) if address else None
        return ip is not None and any(ip in net for net in self._networks)

    def client(self, peer: str, forwarded_for: str | None) -> str:
        """Walk X-Forwarded-For from the nearest hop; the first untrusted one is the client."""
        hops = [h.strip() for h in (forwarded_for or "").split(",") if h.strip()]
        client = peer
        for hop in reversed(hops):
            if _address(hop) is None:
                break  # a garbled hop: stop at the last address known good
            client = hop
            if not self.trusted(hop):
                break
        return client

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Believe X-Forwarded-For/-Proto/-Host only when the direct peer is trusted."""
        peer = request.remote
        if not self._networks or not self.trusted(peer):
            return await handler(request)
        assert peer is not None
        headers = request.headers
        changes: dict[str, str] = {"remote": self.client(peer, headers.get("X-Forwarded-For"))}
        scheme = (_last(headers.get("X-Forwarded-Proto")) or "").lower()
        if scheme in _SCHEMES:
            changes["scheme"] = scheme
        host = _last(headers.get("X-Forwarded-Host"))
        if host is not None and _HOST.match(host):
            changes["host"] = host
        return await handler(request.clone(**changes))  # type: ignore[arg-type]
