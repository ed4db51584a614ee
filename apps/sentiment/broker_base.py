"""What every broker adapter of the live sentiment pipeline shares: the :class:`Broker`
protocol the worker talks to, its messages and reports, its errors, the retry loop and the
names of a stream's companions (dead letters, alerts).

The adapters (:mod:`.redis_broker`, :mod:`.nats_broker`) build on this module and
:mod:`.broker` picks one by the URL's scheme; none of them imports another.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
