"""Webhook targets inside the network are refused (issue 24, finding 16): when the URL is
set (support's webhook, sentiment's alert webhook) and again at delivery, since a DNS answer
may change; ``AIGC_WEBHOOK_ALLOW`` lets chosen networks or hosts through. Names are
answered by a fake resolver (``dns``), so nothing here needs the Internet."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from aigc_apps.errors import DataError
from aigc_apps.webhooks import post_json
from apps.sentiment.alerts import AlertEngine, post_webhook
from apps.support import SupportService
from apps.support.people.handoff import Conversations
from apps.support.people.webhooks import deliver_due, set_webhook_url, webhook_url
from apps.support.store import Transition
from tests.hooks import WebhookReceiver

PUBLIC = "93.184.216.34"
INSIDE = [  # (address, what the error calls it)
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("10.0.0.5", "private"), ("172.16.3.4", "private"), ("172.31.255.1", "private"),
    ("192.168.1.1", "private"), ("fc00::1", "private"), ("fd12:3456::7", "private"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("239.1.2.3", "multicast"), ("ff02::1", "multicast"),
    ("::ffff:10.0.0.5", "private"), ("100.64.0.1", "non-public"),
]


def _url(address: str, path: str = "/hook") -> str:
    return f"http://[{address}]{path}" if ":" in address else f"http://{address}{path}"


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """``dns[name] = [addresses]``: what ``name`` resolves to; other names as usual."""
    answers: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in answers:
            return real(host, port, *args, **kwargs)
        found = []
        for address in answers[host]:
            if ":" in address:
                found.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "",
                              (address, int(port or 80), 0, 0)))
            else:
                found.append((socket.AF_INET, socket.SOCK_STREAM, 6, "",
                              (address, int(port or 80))))
        return found

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    monkeypatch.delenv("AIGC_WEBHOOK_ALLOW", raising=False)
    return answers


@pytest.fixture
def support(db_url: str, dns: dict[str, list[str]]) -> Iterator[SupportService]:
    """A support store (SQLite, then PostgreSQL); no model loads for webhooks."""
    with SupportService(db_url) as service:
        yield service


def _transition(service: SupportService) -> None:
    """One transition to deliver; no delivery thread of the service's races the test's."""
    sid = service.create_session()["session_id"]
    Conversations(service.db).request_human(sid)


def _last_error(service: SupportService) -> str:
    with service.db.session() as s:
        return str(s.scalars(select(Transition.last_error).order_by(Transition.id)).all()[-1])


def test_inner_addresses_are_refused_when_set(support: SupportService) -> None:
    for address, kind in INSIDE:
        with pytest.raises(DataError) as refused:
            set_webhook_url(support.db, _url(address, "/hook?secret=s3"))
        message = str(refused.value)
        assert f"resolves to a {kind} address" in message or \
            f"resolves to an {kind} address" in message, message
        assert "AIGC_WEBHOOK_ALLOW" in message and "\n" not in message
        assert "s3" not in message  # the URL is shown without its path and query
        with pytest.raises(DataError, match="AIGC_WEBHOOK_ALLOW"):
            AlertEngine(webhook=_url(address))
        assert post_webhook(_url(address), {"a": 1}).startswith("error: webhook URL")
    assert webhook_url(support.db) is None
    with pytest.raises(DataError, match=r"^webhook URL http://10\.0\.0\.5/\.\.\. resolves to "
                       r"a private address 10\.0\.0\.5; allow it with AIGC_WEBHOOK_ALLOW"):
        set_webhook_url(support.db, "http://10.0.0.5/hooks/support")


def test_a_name_is_refused_if_any_of_its_addresses_is_inside(
    support: SupportService, dns: dict[str, list[str]]
) -> None:
    dns["hooks.example.com"] = [PUBLIC, "10.1.2.3"]
    with pytest.raises(DataError, match=r"hooks\.example\.com.* private address 10\.1\.2\.3"):
        set_webhook_url(support.db, "https://hooks.example.com/support")
    with pytest.raises(DataError, match=r"private address 10\.1\.2\.3"):
        AlertEngine(webhook="https://hooks.example.com/alerts")
    dns["hooks.example.com"] = [PUBLIC, "2606:2800:220:1::1"]
    set_webhook_url(support.db, "https://hooks.example.com/support")
    assert webhook_url(support.db) == "https://hooks.example.com/support"
    assert AlertEngine(webhook="https://hooks.example.com/alerts").webhook


def test_delivery_checks_the_address_again(
    support: SupportService, dns: dict[str, list[str]]
) -> None:
    """A name that resolved outside when it was set but points inside now (DNS rebinding)
    is not posted to: the event fails and waits, and nothing reaches the inner service."""
    with WebhookReceiver(200) as inner:
        port = inner.url().split(":")[2].split("/")[0]
        dns["hooks.example.com"] = [PUBLIC]
        set_webhook_url(support.db, f"http://hooks.example.com:{port}/hook")
        dns["hooks.example.com"] = ["127.0.0.1"]  # the answer changed since
        _transition(support)
        report = deliver_due(support.db)
        assert inner.calls == [] and report.delivered == 0 and report.failed == 1
        assert "loopback address 127.0.0.1" in _last_error(support)
        with pytest.raises(OSError, match=r"loopback address 127\.0\.0\.1"):
            post_json(f"http://hooks.example.com:{port}/hook", {"id": 1})
        assert inner.calls == []


def test_the_allow_list_lets_chosen_networks_and_hosts_through(
    support: SupportService, dns: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    dns["hooks.internal"] = ["192.168.7.7"]
    monkeypatch.setenv("AIGC_WEBHOOK_ALLOW", " 10.0.0.0/8, hooks.internal ,127.0.0.1")
    set_webhook_url(support.db, "http://10.0.0.5/hook")
    set_webhook_url(support.db, "http://hooks.internal/hook")
    assert AlertEngine(webhook="http://10.20.30.40/alerts").webhook
    with pytest.raises(DataError, match=r"private address 172\.16\.0\.1"):
        set_webhook_url(support.db, "http://172.16.0.1/hook")
    with WebhookReceiver(204) as hook:
        set_webhook_url(support.db, hook.url())
        _transition(support)
        assert deliver_due(support.db).delivered == 1 and len(hook.delivered) == 1
        monkeypatch.delenv("AIGC_WEBHOOK_ALLOW")  # the stored URL is checked again
        _transition(support)
        assert deliver_due(support.db).failed == 1 and len(hook.calls) == 1
    monkeypatch.setenv("AIGC_WEBHOOK_ALLOW", "10.0.0.0/33")
    with pytest.raises(DataError, match=r"AIGC_WEBHOOK_ALLOW.*10\.0\.0\.0/33"):
        set_webhook_url(support.db, "http://10.0.0.5/hook")


def test_a_redirect_is_not_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A webhook that answers with a redirect fails: it cannot send the POST elsewhere."""
    monkeypatch.setenv("AIGC_WEBHOOK_ALLOW", "127.0.0.1")
    with WebhookReceiver(200) as target:
        class Redirect(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.send_response(302)
                self.send_header("Location", target.url("/elsewhere"))
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        server = HTTPServer(("127.0.0.1", 0), Redirect)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            with pytest.raises(OSError, match="302"):
                post_json(f"http://127.0.0.1:{server.server_port}/hook", {"id": 1})
        finally:
            server.shutdown()
            server.server_close()
        assert target.calls == []
