"""A :class:`~apps.sentiment.broker_base.Broker` on NATS JetStream, for sites that run NATS.

How the Redis Streams terms map:

- a stream ``news`` is the JetStream stream ``news`` on subject ``aigc.news`` (created on
  first use, file storage); its dead letters and alerts are the streams ``news:dead`` and
  ``news:alerts``;
- a consumer group is a durable pull consumer named after the group (explicit acks); the
  members of a group are the processes fetching from it;
- a message's id is its stream sequence number;
- claiming is JetStream's own: a message not acknowledged within ``ack_wait`` seconds is
  delivered again to whichever member fetches next, with its delivery count, so
  :meth:`claim` has nothing to do. Set ``ack_wait`` like the worker's ``--claim-idle``.

nats-py is asynchronous; the adapter runs its own event loop on a daemon thread, so the
worker stays the same synchronous code for both brokers.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .broker_base import (
    DeadLetter,
    Message,
    StreamInfo,
    alert_stream,
    call_with_backoff,
    dead_stream,
)

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
T = TypeVar("T")


def from_url(url: str, *, retries: int = 5, claim_idle_ms: int = 60_000) -> NatsJetStreamBroker:
    """The broker factory :func:`~apps.sentiment.broker.open_broker` calls: JetStream
    redelivers a message not acknowledged within ``claim_idle_ms`` (at least 1 s)."""
    return NatsJetStreamBroker(url, retries=retries, ack_wait=max(claim_idle_ms / 1000, 1.0))


async def _quiet(exc: Exception) -> None:
    """Connection errors reach the caller as one BrokerError, not as logged tracebacks."""


def _subject(stream: str) -> str:
    return f"aigc.{stream}"


class NatsJetStreamBroker:
    """:class:`~apps.sentiment.broker_base.Broker` on NATS JetStream; ``retries`` attempts per
    command with doubling back-off from ``backoff`` seconds, then :class:`BrokerError`."""

    def __init__(self, url: str | None = None, *, retries: int = 5, backoff: float = 0.2,
                 timeout: float = 5.0, ack_wait: float = 60.0) -> None:
        self.url = url or DEFAULT_NATS_URL
        self.retries = max(1, retries)
        self.backoff = backoff
        self.timeout = timeout
        self.ack_wait = ack_wait
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="nats-broker")
        self._thread.start()
        self._nc: Any = None
        self._js: Any = None
        self._streams: set[str] = set()
        self._subs: dict[tuple[str, str], Any] = {}
        self._held: dict[tuple[str, str], dict[str, Any]] = {}  # fetched, not yet acked

    # -- plumbing -------------------------------------------------------------------------
    def _await(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result((timeout or self.timeout) + 5.0)

    async def _connect(self) -> None:
        import nats

        if self._nc is not None and self._nc.is_connected:
            return
        # nats-py keeps trying a refused address; a plain TCP connect fails at once
        parsed = urlsplit(self.url)
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(parsed.hostname or "127.0.0.1", parsed.port or 4222),
            self.timeout)
        writer.close()
        self._nc = await asyncio.wait_for(nats.connect(
            self.url, connect_timeout=self.timeout, allow_reconnect=False,
            max_reconnect_attempts=0, error_cb=_quiet), self.timeout)
        self._js = self._nc.jetstream(timeout=self.timeout)
        self._streams.clear()
        self._subs.clear()
        self._held.clear()  # their acks would go to a dead connection; JetStream redelivers

    def _call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        from nats.errors import ConnectionClosedError, NoServersError
        from nats.errors import TimeoutError as NatsTimeout
        from nats.js.errors import APIError, ServiceUnavailableError

        async def attempt() -> T:
            await self._connect()
            return await fn()

        def forget_connection() -> None:
            self._nc = None

        return call_with_backoff(
            lambda: self._await(attempt()), what, server=f"NATS at {self.url}",
            retries=self.retries, backoff=self.backoff,
            transient=(OSError, NoServersError, ConnectionClosedError, NatsTimeout,
                       ServiceUnavailableError, asyncio.TimeoutError),
            refused=(APIError,), refused_by="NATS JetStream", on_transient=forget_connection)

    async def _stream(self, stream: str) -> None:
        from nats.js.errors import NotFoundError

        if stream in self._streams:
            return
        try:
            await self._js.stream_info(stream)
        except NotFoundError:
            await self._js.add_stream(name=stream, subjects=[_subject(stream)])
        self._streams.add(stream)

    async def _sub(self, stream: str, group: str) -> Any:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        key = (stream, group)
        if key not in self._subs:
            await self._stream(stream)
            config = ConsumerConfig(durable_name=group, ack_policy=AckPolicy.EXPLICIT,
                                    deliver_policy=DeliverPolicy.ALL, ack_wait=self.ack_wait)
            self._subs[key] = await self._js.pull_subscribe(
                _subject(stream), durable=group, stream=stream, config=config)
        return self._subs[key]

    async def _publish(self, stream: str, payloads: Sequence[bytes],
                       headers: Sequence[dict[str, str] | None] | None = None) -> list[str]:
        await self._stream(stream)
        acks = await asyncio.gather(*(
            self._js.publish(_subject(stream), payload,
                             headers=headers[i] if headers else None)
            for i, payload in enumerate(payloads)))
        return [str(a.seq) for a in acks]

    # -- the Broker interface -------------------------------------------------------------
    def ping(self) -> None:
        async def run() -> None:
            await self._js.account_info()

        self._call("account info", run)

    def publish(self, stream: str, payloads: Sequence[bytes]) -> list[str]:
        if not payloads:
            return []
        return self._call("publish", lambda: self._publish(stream, payloads))

    def ensure_group(self, stream: str, group: str) -> None:
        self._call("add consumer", lambda: self._sub(stream, group))

    def read(self, stream: str, group: str, consumer: str, count: int,
             block_ms: int) -> list[Message]:
        from nats.errors import TimeoutError as NatsTimeout

        async def run() -> list[Message]:
            sub = await self._sub(stream, group)
            try:
                msgs = await sub.fetch(count, timeout=max(block_ms, 1) / 1000)
            except (NatsTimeout, asyncio.TimeoutError):
                return []
            held = self._held.setdefault((stream, group), {})
            out = []
            for msg in msgs:
                meta = msg.metadata
                message_id = str(meta.sequence.stream)
                held[message_id] = msg
                out.append(Message(message_id, msg.data, int(meta.num_delivered)))
            return out

        return self._call("fetch", run)

    def claim(self, stream: str, group: str, consumer: str, min_idle_ms: int,
              count: int) -> list[Message]:
        """Nothing: JetStream redelivers unacknowledged messages after ``ack_wait``."""
        return []

    def ack(self, stream: str, group: str, ids: Sequence[str]) -> int:
        held = self._held.get((stream, group), {})
        msgs = [held.pop(i) for i in ids if i in held]
        if not msgs:
            return 0

        async def run() -> int:
            await asyncio.gather(*(m.ack_sync(timeout=self.timeout) for m in msgs))
            return len(msgs)

        return self._call("ack", run)

    def dead_letter(self, stream: str, group: str, consumer: str,
                    failed: Sequence[tuple[Message, str]]) -> None:
        if not failed:
            return
        now = datetime.now(timezone.utc).isoformat()
        headers = [{"original_id": m.id, "error": error[:2000].replace("\n", " "),
                    "deliveries": str(m.deliveries), "consumer": consumer, "failed_at": now,
                    "has_payload": "0" if m.payload is None else "1"} for m, error in failed]
        self._call("dead-letter publish", lambda: self._publish(
            dead_stream(stream), [m.payload or b"" for m, _ in failed], headers))
        self.ack(stream, group, [m.id for m, _ in failed])

    def dead_letters(self, stream: str, count: int = 1000) -> list[DeadLetter]:
        from nats.js.errors import NotFoundError

        async def run() -> list[DeadLetter]:
            out: list[DeadLetter] = []
            seq = 1
            while len(out) < count:
                try:
                    raw = await self._js.get_msg(dead_stream(stream), seq, next=True,
                                                 subject=_subject(dead_stream(stream)))
                except NotFoundError:
                    break
                head = raw.headers or {}
                out.append(DeadLetter(
                    id=str(raw.seq), original_id=head.get("original_id", ""),
                    payload=raw.data if head.get("has_payload") != "0" else None,
                    error=head.get("error", ""), deliveries=int(head.get("deliveries") or 0),
                    consumer=head.get("consumer", ""), failed_at=head.get("failed_at", "")))
                seq = int(raw.seq) + 1
            return out

        return self._call("get dead letters", run)

    def remove_dead(self, stream: str, ids: Sequence[str]) -> int:
        async def run() -> int:
            done = await asyncio.gather(*(self._js.delete_msg(dead_stream(stream), int(i))
                                          for i in ids))
            return sum(bool(d) for d in done)

        return self._call("delete dead letters", run) if ids else 0

    def info(self, stream: str, group: str | None = None) -> StreamInfo:
        from nats.js.errors import NotFoundError

        async def length(name: str) -> int:
            try:
                return int((await self._js.stream_info(name)).state.messages)
            except NotFoundError:
                return 0

        async def run() -> StreamInfo:
            info = StreamInfo(stream, await length(stream), await length(dead_stream(stream)),
                              group)
            if group is None or not info.length:
                return info
            try:
                consumer = await self._js.consumer_info(stream, group)
            except NotFoundError:
                info.lag = info.length
                return info
            info.pending = int(consumer.num_ack_pending or 0)
            info.lag = int(consumer.num_pending or 0)
            return info

        return self._call("stream info", run)

    def delete(self, stream: str) -> None:
        from nats.js.errors import NotFoundError

        async def run() -> None:
            for name in (stream, dead_stream(stream), alert_stream(stream)):
                with contextlib.suppress(NotFoundError):
                    await self._js.delete_stream(name)
                self._streams.discard(name)
            for key in [k for k in self._subs if k[0] == stream]:
                self._subs.pop(key)
                self._held.pop(key, None)

        self._call("delete stream", run)

    def close(self) -> None:
        async def drain() -> None:
            if self._nc is not None:  # acks were synchronous: nothing left to drain
                await self._nc.close()
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            for task in tasks:  # a failed connect leaves the client's readers behind
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):  # a broken connection must not mask the error
            self._await(drain())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()
