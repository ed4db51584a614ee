"""The message broker behind the live sentiment pipeline: which adapter serves a URL.

The worker talks to :class:`Broker` only: publish a batch, read a batch as one consumer of a
group, acknowledge, claim what dead consumers hold, dead-letter, and report lengths. The NATS
JetStream adapter (:mod:`apps.sentiment.nats_broker`) implements the same methods (a group
is a durable pull consumer there), as a Kafka one would; the worker does not change;
:func:`open_broker` picks one by the URL's scheme from :data:`BROKERS` (scheme to
``"module:factory"``, the way Gorse picks a database backend by its URL's prefix) or, for a
scheme another package serves, from the ``aigc.brokers`` entry points; the factory's module
is imported only then. No adapter imports this module, nor this module the NATS one: the
adapters share :mod:`.broker_base` (``RedisStreamsBroker``, the default, is re-exported
here for the code that names it). Payloads are bytes, so a producer that sends something
that is not UTF-8 costs one dead letter, never a crashed read.

An unreachable broker is retried with back-off, then one :class:`BrokerUnavailable` line
(a :class:`BrokerError`; a stream worker that has reached its broker waits it out instead).
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from .broker_base import (
    BROKER_ENV,
    DEFAULT_URL,
    PAYLOAD,
    URL_ENV,
    Broker,
    BrokerError,
    BrokerUnavailable,
    DeadLetter,
    Message,
    StreamInfo,
    alert_stream,
    broker_url,
    call_with_backoff,
    dead_stream,
    redis_url,
)
from .redis_broker import RedisStreamsBroker

__all__ = [
    "BROKERS", "BROKER_ENV", "DEFAULT_URL", "PAYLOAD", "URL_ENV", "Broker", "BrokerError",
    "BrokerUnavailable", "DeadLetter", "Message", "RedisStreamsBroker", "StreamInfo",
    "alert_stream", "broker_url", "call_with_backoff", "dead_stream", "open_broker",
    "redis_url",
]

BROKERS_GROUP = "aigc.brokers"
_REDIS = "apps.sentiment.redis_broker:from_url"
_NATS = "apps.sentiment.nats_broker:from_url"
# scheme -> "module:factory"; a factory takes (url, *, retries, claim_idle_ms)
BROKERS = {"redis": _REDIS, "rediss": _REDIS, "unix": _REDIS, "nats": _NATS, "tls": _NATS}


def open_broker(url: str | None = None, *, retries: int = 5,
                claim_idle_ms: int = 60_000) -> Broker:
    """The broker at ``url`` (default ``AIGC_BROKER_URL``, ``AIGC_REDIS_URL``, local Redis):
    ``redis://``/``rediss://``/``unix://`` is Redis Streams, ``nats://``/``tls://`` is NATS
    JetStream (whose redelivery timeout is ``claim_idle_ms``); another scheme is served by
    the ``aigc.brokers`` entry point of that name, when a package provides one."""
    url = broker_url(url)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    factory = _factory(scheme)
    if factory is None:
        raise BrokerError(f"cannot tell the broker of {url!r}: use redis://HOST:PORT/DB or "
                          "nats://HOST:PORT")
    broker: Broker = factory.load()(url, retries=retries, claim_idle_ms=claim_idle_ms)
    return broker


def _factory(scheme: str) -> EntryPoint | None:
    if scheme in BROKERS:
        return EntryPoint(scheme, BROKERS[scheme], BROKERS_GROUP)
    if not scheme:
        return None
    found = entry_points(group=BROKERS_GROUP, name=scheme)
    return next(iter(found), None)
