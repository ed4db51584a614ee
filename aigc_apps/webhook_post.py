"""The HTTP POST of one webhook event, with a deadline for the whole exchange.

A socket timeout bounds each read, not the call: a receiver that sends its status line and
then one header every few seconds never trips it and could hold a delivery (and the thread
that makes it) for as long as it likes. So each POST also gets a total deadline; when it
passes, a timer shuts the connection's socket down, which ends whatever read or write is
blocked, and the POST fails as "no complete answer" (a cut answer is never a delivery,
even if its status line said 200). urllib still does the rest (proxies, TLS, redirects).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from types import TracebackType
from typing import Any

from aigc_apps.webhook_targets import (
    NoRedirect,
    WebhookTargetError,
    check_target,
    connect,
    vetted,
)

TIMEOUT_S = 5.0  # the longest silence on the socket (connect, or any one read)
DEADLINE_S = 10.0  # connect + send + the answer's status and headers, in all


class _Deadline:
    """Shuts down every socket a request opens once ``seconds`` have passed."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self.expired = False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def left(self) -> float:
        return max(self.end - time.monotonic(), 0.001)

    def watch(self, sock: socket.socket) -> None:
        """Cut ``sock`` at the deadline. A duplicate descriptor is kept: a TLS wrapper
        detaches the original object, and a shutdown through either reaches the socket."""
        dup = sock.dup()
        with self._lock:
            self._socks.append(dup)
            expired = self.expired
        if expired:
            _shut(dup)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            socks = list(self._socks)
        for sock in socks:
            _shut(sock)

    def opener(self) -> urllib.request.OpenerDirector:
        """A urllib opener whose HTTP and HTTPS connections are watched by this deadline."""
        deadline = self

        def create(address: tuple[str, int], timeout: Any = TIMEOUT_S,
                   source_address: Any = None, *args: Any) -> socket.socket:
            limit = timeout if isinstance(timeout, int | float) else TIMEOUT_S
            host, port = address
            # only addresses webhooks may reach, resolved again now (a DNS answer changes)
            sock = connect(vetted(host, port), min(limit, deadline.left()), source_address)
            deadline.watch(sock)
            return sock

        def watched(base: type[http.client.HTTPConnection]) -> type[http.client.HTTPConnection]:
            class Watched(base):  # type: ignore[valid-type,misc]
                def __init__(self, *a: Any, **kw: Any) -> None:
                    super().__init__(*a, **kw)
                    self._create_connection = create

            return Watched

        class HTTP(urllib.request.HTTPHandler):
            def do_open(self, http_class: Any, req: Any, **kw: Any) -> Any:
                return super().do_open(watched(http_class), req, **kw)

        class HTTPS(urllib.request.HTTPSHandler):
            def do_open(self, http_class: Any, req: Any, **kw: Any) -> Any:
                return super().do_open(watched(http_class), req, **kw)

        return urllib.request.build_opener(HTTP, HTTPS, NoRedirect)

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._timer.cancel()
        with self._lock:
            socks, self._socks = self._socks, []
        for sock in socks:
            sock.close()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def post_json(url: str, event: dict[str, Any], timeout: float = TIMEOUT_S,
              deadline: float = DEADLINE_S) -> int:
    """POST the event and return the HTTP status; any answer but 2xx, ``timeout`` seconds
    of silence, or no complete answer (status line and headers) in ``deadline`` seconds
    raises :class:`OSError`."""
    request = urllib.request.Request(
        url, data=json.dumps(event, default=str).encode(), method="POST",
        headers={"Content-Type": "application/json", "X-Aigc-Event-Id": str(event["id"]),
                 "User-Agent": "aigc-apps-webhook"},
    )
    late = f"webhook gave no complete answer in {deadline:g} s"
    try:
        check_target(url)  # the URL's own host, even through a proxy
    except WebhookTargetError as exc:
        raise OSError(str(exc)) from None
    with _Deadline(deadline) as limit:
        try:
            with limit.opener().open(request, timeout=timeout) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:  # a clearer line than the exception's repr
            if limit.expired:
                raise TimeoutError(late) from None
            raise OSError(f"webhook answered HTTP {exc.code}") from None
        except (OSError, http.client.HTTPException) as exc:
            if limit.expired:
                raise TimeoutError(late) from None
            if isinstance(exc, OSError):
                raise
            raise OSError(f"webhook answer is not HTTP: {exc!r}") from None
        if limit.expired:  # the headers ended because the socket was shut, not by the receiver
            raise TimeoutError(late)
    if not 200 <= status < 300:
        raise OSError(f"webhook answered {status}")
    return status
