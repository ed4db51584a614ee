"""Who is at the other end of a request: its client address, and whether it is local.

Behind a reverse proxy every request arrives from the proxy's address: the per-address rate
limit would be one bucket for all clients and, with the proxy on the same machine, every
request would look local (``/metrics`` open, a loopback server open without a token). The
proxy names the real client in ``X-Forwarded-For``, but any client can send that header, so
it is believed only from the proxies named in ``--forwarded-allow-ips``
(:class:`ForwardedMiddleware`); uvicorn's own handling, which trusts 127.0.0.1 by default,
is turned off, so a local client cannot pick its address by rotating the header.

Locality never comes from a header: a request is local when its socket peer is loopback and
it carries no forwarding header (:func:`is_local`). A proxy on the same machine connects
from loopback, and its requests are still not local.
"""

from __future__ import annotations

import ipaddress

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from aigc_apps.errors import AigcError

FORWARDING_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")
PEER = "aigc.peer"  # the scope key of the socket peer's host, kept before any rewrite
MAX_ADDRESS = 100  # a forwarded entry longer than that is no address; never a huge key

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine only."""
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TrustedProxies:
    """The proxies whose forwarding headers are believed: ``"127.0.0.1, 10.0.0.0/8"``
    (addresses and networks, comma-separated) or ``"*"`` (any peer: only when nothing but
    the proxy can reach the server)."""

    def __init__(self, spec: str) -> None:
        entries = [e.strip() for e in spec.split(",") if e.strip()]
        if not entries:
            raise AigcError("forwarded_allow_ips is empty: name the proxies' addresses")
        self.everyone = "*" in entries
        self.networks: list[Network] = []
        for entry in entries:
            if entry == "*":
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise AigcError(f"forwarded_allow_ips: {entry!r} is not an IP address or "
                                "network (e.g. 127.0.0.1, 10.0.0.0/8, or *)") from None

    def __contains__(self, host: object) -> bool:
        if not isinstance(host, str):
            return False
        if self.everyone:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def client(self, forwarded_for: str) -> str:
        """The client an ``X-Forwarded-For`` chain names: the last address not one of our
        proxies (each proxy appends the address it saw, so entries left of it may be the
        client's own inventions); the first one when every entry is a proxy."""
        chain = [e.strip() for e in forwarded_for.split(",") if e.strip()]
        for entry in reversed(chain):
            if entry not in self:
                return entry[:MAX_ADDRESS]
        return chain[0][:MAX_ADDRESS]


class ForwardedMiddleware:
    """Puts the client a trusted proxy forwarded in ``scope["client"]`` (and the scheme of
    ``X-Forwarded-Proto`` in ``scope["scheme"]``); keeps the socket peer under
    :data:`PEER`. Headers from any other peer change nothing."""

    def __init__(self, app: ASGIApp, trusted: TrustedProxies | None) -> None:
        self.app, self.trusted = app, trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        peer = scope.get("client")
        scope = {**scope, PEER: peer[0] if peer else None}
        if self.trusted is not None and scope[PEER] in self.trusted:
            headers = _headers(scope)
            forwarded_for = headers.get("x-forwarded-for")
            if forwarded_for and forwarded_for.strip(" ,"):
                scope["client"] = (self.trusted.client(forwarded_for), 0)
            proto = headers.get("x-forwarded-proto", "").strip().lower()
            if proto in ("http", "https", "ws", "wss"):
                secure = proto.endswith("s")
                if scope["type"] == "websocket":
                    scope["scheme"] = "wss" if secure else "ws"
                else:
                    scope["scheme"] = "https" if secure else "http"
        await self.app(scope, receive, send)


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name; repeated ones joined by commas, as
    HTTP defines it (a proxy may add a second X-Forwarded-For line)."""
    found: dict[str, str] = {}
    for key, value in scope.get("headers", ()):
        name = key.decode("latin-1").lower()
        text = value.decode("latin-1")
        found[name] = f"{found[name]}, {text}" if name in found else text
    return found


def client_address(request: Request) -> str:
    """The client's address: the forwarded one behind a trusted proxy, else the socket's."""
    return request.client.host if request.client else "unknown"


def is_proxied(request: Request) -> bool:
    """Whether the request says it was forwarded (trusted or not, it is not local then)."""
    return any(name in request.headers for name in FORWARDING_HEADERS)


def is_local(request: Request) -> bool:
    """Whether the request comes from this machine itself: a loopback socket peer and no
    forwarding header. Never decided by what a header says the client is."""
    peer = request.scope.get(PEER, request.client.host if request.client else "")
    return bool(peer) and is_loopback(peer) and not is_proxied(request)
