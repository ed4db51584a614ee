"""A :class:`~apps.sentiment.broker_base.Broker` on Redis Streams, the default broker
(``redis://``, ``rediss://`` and ``unix://`` URLs; see :func:`apps.sentiment.broker.open_broker`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from functools import partial
from typing import Any, TypeVar

from .broker_base import (
    PAYLOAD,
    BrokerError,
    DeadLetter,
    Message,
    StreamInfo,
    alert_stream,
    call_with_backoff,
    dead_stream,
    redis_url,
)

T = TypeVar("T")


def from_url(url: str, *, retries: int = 5, claim_idle_ms: int = 60_000) -> RedisStreamsBroker:
    """The broker factory :func:`~apps.sentiment.broker.open_broker` calls; Redis claims
    idle messages when the worker asks (XAUTOCLAIM), so ``claim_idle_ms`` is the worker's."""
    return RedisStreamsBroker(url, retries=retries)


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
