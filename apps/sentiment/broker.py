"""The message broker behind the live sentiment pipeline, and its Redis Streams adapter.

The worker talks to :class:`Broker` only: publish a batch, read a batch as one consumer of a
group, acknowledge, claim what dead consumers hold, dead-letter, and report lengths. The NATS
JetStream adapter (:mod:`apps.sentiment.nats_broker`) implements the same methods (a group
is a durable pull consumer there), as a Kafka one would; the worker does not change;
:func:`open_broker` picks one by the URL's scheme. Payloads are bytes, so a producer that
sends something that is not UTF-8 costs one dead letter, never a crashed read.

An unreachable broker is retried with back-off, then one :class:`BrokerUnavailable` line
(a :class:`BrokerError`; a stream worker that has reached its broker waits it out instead).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import Any, Protocol, TypeVar

from aigc_apps.errors import AigcError

DEFAULT_URL = "redis://127.0.0.1:6379/0"
URL_ENV = "AIGC_REDIS_URL"
BROKER_ENV = "AIGC_BROKER_URL"  # redis://... or nats://...; before AIGC_REDIS_URL
PAYLOAD = b"data"
T = TypeVar("T")


class BrokerError(AigcError):
    """The broker does not answer (after retries) or refused a command."""


class BrokerUnavailable(BrokerError):
    """The broker does not answer (after retries): an outage, which may end, unlike a
    refused command."""


@dataclass(frozen=True)
class Message:
    """One delivery: the broker's id, the payload (``None`` when the entry has none) and how
    many times it was delivered (1 the first time)."""

    id: str
    payload: bytes | None
    deliveries: int = 1


@dataclass(frozen=True)
class DeadLetter:
    """A message set aside with the reason it could not be stored."""

    id: str  # id in the dead-letter stream
    original_id: str
    payload: bytes | None
    error: str
    deliveries: int
    consumer: str
    failed_at: str

    def to_dict(self) -> dict[str, Any]:
        text = None if self.payload is None else self.payload.decode("utf-8", "replace")
        return {"id": self.id, "original_id": self.original_id, "payload": text,
                "error": self.error, "deliveries": self.deliveries,
                "consumer": self.consumer, "failed_at": self.failed_at}


@dataclass
class StreamInfo:
    """Where a stream and one of its groups stand."""

    stream: str
    length: int
    dead_letters: int
    group: str | None = None
    pending: int = 0
    pending_per_consumer: dict[str, int] = field(default_factory=dict)
    lag: int | None = None  # entries not yet delivered to the group (None: unknown)

    def to_dict(self) -> dict[str, Any]:
        return {"stream": self.stream, "length": self.length, "group": self.group,
                "pending": self.pending, "pending_per_consumer": self.pending_per_consumer,
                "lag": self.lag, "dead_letters": self.dead_letters}


class Broker(Protocol):
    """What the stream worker and the CLI need from a broker."""

    url: str

    def publish(self, stream: str, payloads: Sequence[bytes]) -> list[str]: ...

    def ensure_group(self, stream: str, group: str) -> None:
        """Create ``group`` at the start of ``stream`` when missing (a new group reads all)."""

    def read(self, stream: str, group: str, consumer: str, count: int,
             block_ms: int) -> list[Message]:
        """Up to ``count`` messages never delivered to the group, waiting ``block_ms``."""

    def claim(self, stream: str, group: str, consumer: str, min_idle_ms: int,
              count: int) -> list[Message]:
        """Messages another (dead) consumer held for over ``min_idle_ms``, now ours."""

    def ack(self, stream: str, group: str, ids: Sequence[str]) -> int: ...

    def dead_letter(self, stream: str, group: str, consumer: str,
                    failed: Sequence[tuple[Message, str]]) -> None:
        """Set each message aside with its error and acknowledge it, in one step."""

    def dead_letters(self, stream: str, count: int = 1000) -> list[DeadLetter]: ...

    def remove_dead(self, stream: str, ids: Sequence[str]) -> int: ...

    def info(self, stream: str, group: str | None = None) -> StreamInfo: ...

    def delete(self, stream: str) -> None:
        """Drop ``stream``, its dead letters and its alerts."""

    def close(self) -> None: ...


def call_with_backoff(
    fn: Callable[[], T], what: str, *, server: str, retries: int, backoff: float,
    transient: tuple[type[BaseException], ...], refused: tuple[type[BaseException], ...],
    refused_by: str, on_transient: Callable[[], None] | None = None,
) -> T:
    """``fn()``, retried ``retries`` times with doubling back-off (at most 5 s) while the
    server cannot be reached; then, or when it refuses the command, one BrokerError line."""
    delay = backoff
    for attempt in range(1, retries + 1):
        try:
            return fn()
        except transient as exc:
            if on_transient is not None:
                on_transient()
            if attempt == retries:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise BrokerUnavailable(f"{server} does not answer ({what}, {retries} "
                                        f"attempts): {reason}") from None
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        except refused as exc:
            raise BrokerError(f"{refused_by} refused {what}: {exc}") from None
    raise AssertionError("unreachable")


def dead_stream(stream: str) -> str:
    return f"{stream}:dead"


def alert_stream(stream: str) -> str:
    return f"{stream}:alerts"


def redis_url(url: str | None = None) -> str:
    return url or os.environ.get(URL_ENV) or DEFAULT_URL


def broker_url(url: str | None = None) -> str:
    return url or os.environ.get(BROKER_ENV) or redis_url()


def open_broker(url: str | None = None, *, retries: int = 5,
                claim_idle_ms: int = 60_000) -> Broker:
    """The broker at ``url`` (default ``AIGC_BROKER_URL``, ``AIGC_REDIS_URL``, local Redis):
    ``redis://``/``rediss://``/``unix://`` is Redis Streams, ``nats://``/``tls://`` is NATS
    JetStream (whose redelivery timeout is ``claim_idle_ms``)."""
    url = broker_url(url)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("nats", "tls"):
        from .nats_broker import NatsJetStreamBroker

        return NatsJetStreamBroker(url, retries=retries,
                                   ack_wait=max(claim_idle_ms / 1000, 1.0))
    if scheme in ("redis", "rediss", "unix"):
        return RedisStreamsBroker(url, retries=retries)
    raise BrokerError(f"cannot tell the broker of {url!r}: use redis://HOST:PORT/DB or "
                      "nats://HOST:PORT")


def _text(value: object) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class RedisStreamsBroker:
    """:class:`Broker` on Redis Streams (XADD, XREADGROUP, XACK, XAUTOCLAIM, XPENDING).

    ``retries`` attempts per command with doubling back-off from ``backoff`` seconds when
    the server cannot be reached; then :class:`BrokerError`.
    """

    def __init__(self, url: str | None = None, *, retries: int = 5, backoff: float = 0.2,
                 timeout: float = 5.0) -> None:
        import redis

        self.url = redis_url(url)
        self.retries = max(1, retries)
        self.backoff = backoff
        try:
            self._redis = redis.Redis.from_url(self.url, socket_connect_timeout=timeout,
                                               decode_responses=False)
        except ValueError as exc:
            raise BrokerError(f"bad broker URL {self.url!r}: {exc}") from None
        self._errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        self._response_error = redis.exceptions.ResponseError

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        return call_with_backoff(fn, what, server=f"Redis at {self.url}", retries=self.retries,
                                 backoff=self.backoff, transient=self._errors,
                                 refused=(self._response_error,), refused_by="Redis")

    def ping(self) -> None:
        self._call("PING", self._redis.ping)

    def publish(self, stream: str, payloads: Sequence[bytes]) -> list[str]:
        def run() -> list[str]:
            pipe = self._redis.pipeline(transaction=False)
            for payload in payloads:
                pipe.xadd(stream, {PAYLOAD: payload})
            return [_text(i) for i in pipe.execute()]

        return self._call("XADD", run) if payloads else []

    def ensure_group(self, stream: str, group: str) -> None:
        try:
            self._call("XGROUP CREATE", lambda: self._redis.xgroup_create(
                stream, group, id="0", mkstream=True))
        except BrokerError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    @staticmethod
    def _message(entry_id: bytes | str, fields: dict[bytes, bytes] | None,
                 deliveries: int = 1) -> Message:
        return Message(_text(entry_id), (fields or {}).get(PAYLOAD), deliveries)

    def read(self, stream: str, group: str, consumer: str, count: int,
             block_ms: int) -> list[Message]:
        reply: Any = self._call("XREADGROUP", lambda: self._redis.xreadgroup(
            group, consumer, {stream: ">"}, count=count, block=block_ms or None))
        return [self._message(i, f) for _, entries in (reply or []) for i, f in entries]

    def claim(self, stream: str, group: str, consumer: str, min_idle_ms: int,
              count: int) -> list[Message]:
        entries: list[tuple[bytes, dict[bytes, bytes]]] = []
        cursor: Any = "0-0"
        for _ in range(10):  # each call scans a bounded part of the pending list
            reply: Any = self._call("XAUTOCLAIM", partial(
                self._redis.xautoclaim, stream, group, consumer, min_idle_ms,
                start_id=cursor, count=count - len(entries)))
            entries += [(i, f) for i, f in reply[1] if f is not None]  # deleted: None
            cursor = reply[0]
            if _text(cursor) == "0-0" or len(entries) >= count:
                break
        if not entries:
            return []
        ids = [_text(i) for i, _ in entries]
        pending: Any = self._call("XPENDING", lambda: self._redis.xpending_range(
            stream, group, min=ids[0], max=ids[-1], count=len(ids) + 100,
            consumername=consumer))
        counts = {_text(p["message_id"]): int(p["times_delivered"]) for p in pending}
        return [self._message(i, f, counts.get(_text(i), 2)) for i, f in entries]

    def ack(self, stream: str, group: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        return int(self._call("XACK", lambda: self._redis.xack(stream, group, *ids)))

    def dead_letter(self, stream: str, group: str, consumer: str,
                    failed: Sequence[tuple[Message, str]]) -> None:
        if not failed:
            return
        now = datetime.now(timezone.utc).isoformat()

        def run() -> None:
            pipe = self._redis.pipeline(transaction=True)
            for message, error in failed:
                entry: dict[bytes | str, bytes | str | int] = {
                    "original_id": message.id, "error": error[:2000],
                    "deliveries": message.deliveries, "consumer": consumer, "failed_at": now}
                if message.payload is not None:
                    entry[PAYLOAD] = message.payload
                pipe.xadd(dead_stream(stream), entry)  # type: ignore[arg-type]
            pipe.xack(stream, group, *[m.id for m, _ in failed])
            pipe.execute()

        self._call("dead-letter XADD/XACK", run)

    def dead_letters(self, stream: str, count: int = 1000) -> list[DeadLetter]:
        entries: Any = self._call("XRANGE", lambda: self._redis.xrange(
            dead_stream(stream), count=count))
        out = []
        for entry_id, fields in entries:
            get = {_text(k): v for k, v in fields.items()}
            out.append(DeadLetter(
                id=_text(entry_id), original_id=_text(get.get("original_id")),
                payload=get.get("data"), error=_text(get.get("error")),
                deliveries=int(_text(get.get("deliveries")) or 0),
                consumer=_text(get.get("consumer")), failed_at=_text(get.get("failed_at"))))
        return out

    def remove_dead(self, stream: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        return int(self._call("XDEL", lambda: self._redis.xdel(dead_stream(stream), *ids)))

    def info(self, stream: str, group: str | None = None) -> StreamInfo:
        length = int(self._call("XLEN", lambda: self._redis.xlen(stream)))
        dead = int(self._call("XLEN", lambda: self._redis.xlen(dead_stream(stream))))
        info = StreamInfo(stream, length, dead, group)
        if group is None or not length:
            return info
        groups = self._call("XINFO GROUPS", lambda: self._redis.xinfo_groups(stream))
        found = next((g for g in groups if _text(g.get("name")) == group), None)
        if found is None:
            info.lag = length
            return info
        info.pending = int(found.get("pending") or 0)
        lag = found.get("lag")
        info.lag = None if lag is None else int(lag)
        summary = self._call("XPENDING", lambda: self._redis.xpending(stream, group))
        info.pending_per_consumer = {_text(c["name"]): int(c["pending"])
                                     for c in summary.get("consumers") or []}
        return info

    def delete(self, stream: str) -> None:
        self._call("DEL", lambda: self._redis.delete(stream, dead_stream(stream),
                                                     alert_stream(stream)))

    def close(self) -> None:
        self._redis.close()
