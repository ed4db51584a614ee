"""Where a webhook may post: public addresses only, unless ``AIGC_WEBHOOK_ALLOW`` says so.

A webhook URL is chosen by whoever configures the service, but the POST leaves from the
server, inside its network: a URL on a loopback, private, link-local (the cloud metadata
service at 169.254.169.254), unspecified or multicast address would let that person reach
services nobody meant to expose (SSRF). So a URL is checked when it is set (every address
its host name resolves to must be public) and again when each event is posted, since a DNS
answer may change meanwhile (DNS rebinding): the connection is made to the addresses just
checked, not to a second lookup, and redirects are not followed.

``AIGC_WEBHOOK_ALLOW`` lists what may be posted to anyway, comma-separated: networks in
CIDR notation or single addresses (``10.0.0.0/8``, ``127.0.0.1``), and host names
(``hooks.internal``: any address it resolves to). It is read on each check, so a change
applies to URLs already stored.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import urllib.request
from http.client import HTTPConnection, HTTPSConnection
from typing import Any
from urllib.parse import urlsplit

from aigc_apps.errors import DataError

ALLOW_ENV = "AIGC_WEBHOOK_ALLOW"
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class WebhookTargetError(DataError):
    """A webhook URL whose host is, or resolves to, an address webhooks may not reach."""


def allowed() -> tuple[list[Network], set[str]]:
    """The networks and host names of ``AIGC_WEBHOOK_ALLOW``; DataError on a bad entry."""
    networks: list[Network] = []
    hosts: set[str] = set()
    for entry in os.environ.get(ALLOW_ENV, "").split(","):
        entry = entry.strip().lower().rstrip(".")
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        if "/" in entry or any(c.isspace() for c in entry) or entry.replace(".", "").isdigit():
            raise DataError(f"{ALLOW_ENV}: bad entry {entry!r}; use networks (10.0.0.0/8), "
                            "addresses or host names, separated by commas")
        hosts.add(entry)
    return networks, hosts


def refusal(address: Address) -> str | None:
    """Why webhooks may not post to ``address`` ("a private address"), None if public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:10.0.0.5 is 10.0.0.5
    for kind, test in (("an unspecified", address.is_unspecified),
                       ("a loopback", address.is_loopback),
                       ("a link-local", address.is_link_local),
                       ("a multicast", address.is_multicast),
                       ("a private", address.is_private),
                       ("a reserved", address.is_reserved),
                       ("a non-public", not address.is_global)):
        if test:
            return f"{kind} address"
    return None


def shown(url: str) -> str:
    """The URL as an error shows it: scheme and host, never credentials, path or query
    (a webhook's path often carries its secret)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    rest = "/..." if (parts.path not in ("", "/") or parts.query) else "/"
    return f"{parts.scheme}://{host}{port}{rest}"


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise DataError(f"webhook URL {shown(url)} has a bad port") from None
    if not parts.hostname:
        raise DataError(f"webhook URL {shown(url)} names no host")
    return parts.hostname, port


def vetted(host: str, port: int, url: str | None = None) -> list[tuple[Any, ...]]:
    """``getaddrinfo`` answers for ``host``, each one allowed; WebhookTargetError naming the
    first address that is not (one is enough: a client may use any of them)."""
    networks, hosts = allowed()
    name = host.lower().rstrip(".")
    what = f"webhook URL {shown(url)}" if url else f"webhook host {host}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise WebhookTargetError(f"{what}: host {host} does not resolve ({exc})") from None
    if name in hosts:
        return infos
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if any(address in network for network in networks):
            continue
        why = refusal(address)
        if why is not None:
            raise WebhookTargetError(
                f"{what} resolves to {why} {address}; allow it with {ALLOW_ENV}")
    return infos


def check_target(url: str) -> str:
    """``url`` if its host resolves to allowed addresses only; WebhookTargetError if not."""
    host, port = _host_port(url)
    vetted(host, port, url)
    return url


def connect(infos: list[tuple[Any, ...]], timeout: Any,
             source: tuple[str, int] | None) -> socket.socket:
    """A TCP connection to the first of ``infos`` that answers (what
    ``socket.create_connection`` does, on addresses already vetted)."""
    failure: OSError | None = None
    for family, kind, proto, _name, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:  # type: ignore[attr-defined]
                sock.settimeout(timeout)
            if source:
                sock.bind(source)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            failure = exc
    raise failure or OSError("no address to connect to")


class _Vetted:
    """Connects only to addresses that :func:`vetted` let through, resolved once."""

    host: str
    port: int

    def _vetted_connection(self, address: tuple[str, int], timeout: Any = None,
                           source_address: tuple[str, int] | None = None) -> socket.socket:
        host, port = address
        return connect(vetted(host, port), timeout, source_address)


class _HTTPConnection(_Vetted, HTTPConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = self._vetted_connection


class _HTTPSConnection(_Vetted, HTTPSConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = self._vetted_connection


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_HTTPConnection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_HTTPSConnection, req, context=self._context)  # type: ignore[attr-defined]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer (an HTTPError), not a second request somewhere else."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def opener() -> urllib.request.OpenerDirector:
    """A urllib opener that posts to vetted addresses only and follows no redirect. Through
    a proxy (``http_proxy``) it is the proxy's address that is connected to, so checked."""
    return urllib.request.build_opener(_HTTPHandler, _HTTPSHandler, NoRedirect)
