"""Parts 4 and 5: registration is limited per client address, and the client address,
scheme and host come from X-Forwarded-* only when the peer is a trusted proxy."""

from __future__ import annotations

from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from server.config import Limits
from server.proxies import TrustedProxies
from tests.security.conftest import MakeSec

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"


def _new(n: int) -> dict[str, str]:
    return {"email": f"user{n}@example.test", "password": "longenough"}


async def test_registration_is_limited_per_address(make_sec: MakeSec) -> None:
    # bob's own registration used one of the three.
    sec = await make_sec(limits=Limits(register_per_ip=3))
    for n in range(2):
        assert (await sec.client.post(REGISTER, json=_new(n))).status == 201
    refused = await sec.client.post(REGISTER, json=_new(9))
    assert (refused.status, (await refused.json())["error"]["code"]) == (429, "rate_limited")
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.headers["X-RateLimit-Limit"] == "3"
    # A spoofed X-Forwarded-For from an untrusted peer does not buy a new budget.
    spoofed = await sec.client.post(REGISTER, json=_new(10), headers={"X-Forwarded-For": "9.9.9.9"})
    assert spoofed.status == 429
    await sec.still_serving()


async def test_behind_a_trusted_proxy_each_client_has_its_own_budget(make_sec: MakeSec) -> None:
    sec = await make_sec(limits=Limits(register_per_ip=1), trusted_proxies=("127.0.0.1",))
    first = {"X-Forwarded-For": "203.0.113.7"}
    assert (await sec.client.post(REGISTER, json=_new(1), headers=first)).status == 201
    assert (await sec.client.post(REGISTER, json=_new(2), headers=first)).status == 429
    second = {"X-Forwarded-For": "203.0.113.8"}
    assert (await sec.client.post(REGISTER, json=_new(3), headers=second)).status == 201
    await sec.still_serving()


async def test_login_budget_per_address_behind_a_proxy(make_sec: MakeSec) -> None:
    sec = await make_sec(limits=Limits(login_per_ip=2), trusted_proxies=("127.0.0.0/8",))
    wrong = {"email": sec.bob.user.email, "password": "wrong password"}
    for _ in range(2):
        resp = await sec.client.post(LOGIN, json=wrong, headers={"X-Forwarded-For": "198.51.100.1"})
        assert resp.status == 401
    resp = await sec.client.post(LOGIN, json=wrong, headers={"X-Forwarded-For": "198.51.100.1"})
    assert resp.status == 429
    right = {"email": sec.bob.user.email, "password": sec.bob.user.password}
    resp = await sec.client.post(LOGIN, json=right, headers={"X-Forwarded-For": "198.51.100.2"})
    assert resp.status == 200
    await sec.still_serving()


FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "chorus.example"}


@pytest.mark.parametrize(
    ("trusted", "headers", "status"),
    [
        (("127.0.0.1",), FORWARDED, 201),
        ((), FORWARDED, 403),
        (("10.0.0.0/8",), FORWARDED, 403),
        (("127.0.0.1",), {**FORWARDED, "X-Forwarded-Host": "chorus.example; evil"}, 403),
        (("127.0.0.1",), {**FORWARDED, "X-Forwarded-Proto": "gopher"}, 403),
    ],
    ids=["trusted-proxy", "no-proxy-configured", "peer-not-trusted", "garbled-host",
         "unknown-scheme"],
)  # fmt: skip
async def test_same_origin_cookie_requests_behind_tls_termination(
    make_sec: MakeSec, trusted: tuple[str, ...], headers: dict[str, str], status: int
) -> None:
    sec = await make_sec(trusted_proxies=trusted)
    user = await sec.user()
    login = await sec.client.post(LOGIN, json={"email": user.email, "password": user.password})
    assert login.status == 200  # the cookie is now in the client's jar
    resp = await sec.client.post(
        "/api/v1/sessions", json={},
        headers={**headers, "Origin": "https://chorus.example", "X-Requested-With": "fetch"},
    )  # fmt: skip
    assert resp.status == status, await resp.text()
    sec.client.session.cookie_jar.clear()
    await sec.still_serving()


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("10.0.0.2", "203.0.113.9", "203.0.113.9"),
        ("10.0.0.2", "198.51.100.1, 203.0.113.9, 10.0.0.3", "203.0.113.9"),
        ("10.0.0.2", "10.0.0.4, 10.0.0.3", "10.0.0.4"),
        ("10.0.0.2", "not-an-ip, 203.0.113.9", "203.0.113.9"),
        ("10.0.0.2", "203.0.113.9, garbage", "10.0.0.2"),
        ("10.0.0.2", None, "10.0.0.2"),
    ],
    ids=["one-hop", "nearest-untrusted-wins", "all-trusted-leftmost", "garbage-beyond-client",
         "garbage-nearest", "no-header"],
)  # fmt: skip
def test_the_client_is_the_nearest_untrusted_hop(
    peer: str, forwarded_for: str | None, client: str
) -> None:
    assert TrustedProxies(["10.0.0.0/8"]).client(peer, forwarded_for) == client


@pytest.mark.parametrize(
    ("forwarded_host", "seen"),
    [("chorus.example", "chorus.example"), ("chorus.example:8443", "chorus.example:8443"),
     ("[2001:db8::1]:443", "[2001:db8::1]:443"), ("chorus.example/evil", "origin.test"),
     ("a b", "origin.test"), ("evil.example; report-uri x", "origin.test")],
    ids=["host", "host-port", "ipv6", "path", "space", "directive"],
)  # fmt: skip
async def test_only_a_well_formed_forwarded_host_is_believed(
    forwarded_host: str, seen: str
) -> None:
    peer = mock.Mock()
    peer.get_extra_info.side_effect = lambda name, default=None: (
        ("10.0.0.2", 4000) if name == "peername" else default
    )
    request = make_mocked_request(
        "GET", "/", headers={"Host": "origin.test", "X-Forwarded-Host": forwarded_host},
        transport=peer,
    )  # fmt: skip
    hosts: list[str] = []

    async def handler(req: web.Request) -> web.Response:
        hosts.append(req.host)
        return web.Response()

    await TrustedProxies(["10.0.0.0/8"]).middleware(request, handler)
    assert hosts == [seen]
