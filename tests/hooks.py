"""One local webhook receiver for the tests, so each file need not hand-roll its own server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import TracebackType
from typing import Any, NamedTuple


class Call(NamedTuple):
    """One POST as the receiver saw it."""

    event_id: str | None
    body: Any
    path: str
    status: int


class WebhookReceiver:
    """HTTP server on 127.0.0.1 (free port, daemon thread) that records every JSON POST.

    ``status`` is the answer: an int, or a callable ``status(path) -> int`` for tests that
    answer by path. It may be changed while the server runs (e.g. to bring a "down" receiver up).
    """

    def __init__(self, status: int | Callable[[str], int] = 200) -> None:
        self.status = status
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        receiver = self

        class _Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                code = receiver.status_for(self.path)
                with receiver._lock:
                    receiver.calls.append(
                        Call(self.headers.get("X-Aigc-Event-Id"), body, self.path, code))
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = HTTPServer(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def status_for(self, path: str) -> int:
        """The status code answered to a POST on ``path``."""
        status = self.status
        return status(path) if callable(status) else status

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self._server.server_port}{path}"

    @property
    def seen(self) -> list[tuple[str | None, Any]]:
        """Every POST as ``(event id header, body)``, failed ones included."""
        with self._lock:
            return [(c.event_id, c.body) for c in self.calls]

    @property
    def bodies(self) -> list[Any]:
        """Every POSTed body, failed ones included."""
        with self._lock:
            return [c.body for c in self.calls]

    @property
    def delivered(self) -> list[Any]:
        """Bodies of the POSTs answered 2xx: what the receiver accepted."""
        with self._lock:
            return [c.body for c in self.calls if 200 <= c.status < 300]

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class SlowReceiver:
    """A webhook receiver on 127.0.0.1 that takes a POST and never finishes its answer.

    With ``trickle_s`` it sends a status line, then one header every ``trickle_s`` seconds,
    so no single read of the client ever times out; without it, it sends nothing at all.
    Each connection is dropped after ``give_up_s`` (or when the receiver closes), so a client
    with no deadline of its own makes a test fail slowly instead of hanging it.
    ``connections`` counts the POSTs begun; ``most_at_once`` is the most held open together.
    """

    def __init__(self, trickle_s: float | None = None, give_up_s: float = 60.0) -> None:
        import socket

        self.trickle_s, self.give_up_s = trickle_s, give_up_s
        self.connections = self.open_now = self.most_at_once = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}{path}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:  # a timeout, or the listener closed
                continue
            threading.Thread(target=self._hold, args=(client,), daemon=True).start()

    def _hold(self, client: Any) -> None:
        import contextlib
        import time

        with self._lock:
            self.connections += 1
            self.open_now += 1
            self.most_at_once = max(self.most_at_once, self.open_now)
        started = next_header = time.monotonic()
        sent = 0
        client.settimeout(0.05)
        try:
            while not self._closed.is_set() and time.monotonic() - started < self.give_up_s:
                if self.trickle_s is not None and time.monotonic() >= next_header:
                    client.sendall(b"HTTP/1.1 200 OK\r\n" if sent == 0
                                   else f"X-Wait-{sent}: 1\r\n".encode())
                    sent += 1
                    next_header += self.trickle_s
                try:
                    if client.recv(65536) == b"":  # the client hung up
                        break
                except TimeoutError:
                    pass
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                client.close()
            with self._lock:
                self.open_now -= 1

    def __enter__(self) -> SlowReceiver:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._closed.set()
        self._listener.close()
