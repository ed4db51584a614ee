"""The live pipeline on NATS JetStream: the same worker, another broker behind the interface.

Skipped when NATS does not answer at ``AIGC_NATS_URL`` (default nats://127.0.0.1:4222),
unless ``AIGC_REQUIRE_NATS=1``. Each test uses its own stream names and deletes them.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.sentiment.broker import BrokerError, RedisStreamsBroker, open_broker
from apps.sentiment.classifier import SentimentModel
from apps.sentiment.nats_broker import NatsJetStreamBroker
from apps.sentiment.scoring import LexiconScorer
from apps.sentiment.service import SentimentService
from apps.sentiment.worker import StreamWorker
from tests.sentiment.test_stream import POISON, _doc, _ids, _ok
from tests.services import unavailable

NATS_URL = os.environ.get("AIGC_NATS_URL", "nats://127.0.0.1:4222")


def _nats_answers() -> bool:
    try:
        broker = NatsJetStreamBroker(NATS_URL, retries=1, timeout=2.0)
    except Exception:
        return False
    try:
        broker.ping()
        return True
    except BrokerError:
        return False
    finally:
        broker.close()


@pytest.fixture(scope="module", autouse=True)
def nats_required() -> None:
    if not _nats_answers():
        unavailable("nats", f"NATS JetStream not reachable at {NATS_URL}")


@pytest.fixture
def broker() -> Iterator[NatsJetStreamBroker]:
    b = open_broker(NATS_URL, claim_idle_ms=1000)
    assert isinstance(b, NatsJetStreamBroker)
    yield b
    b.close()


@pytest.fixture
def stream(broker: NatsJetStreamBroker) -> Iterator[str]:
    name = f"test-sentiment-{uuid.uuid4().hex[:10]}"
    yield name
    broker.delete(name)


def test_the_broker_contract_on_jetstream(broker: NatsJetStreamBroker, stream: str) -> None:
    ids = broker.publish(stream, [f"m{i}".encode() for i in range(5)])
    assert ids == ["1", "2", "3", "4", "5"]
    broker.ensure_group(stream, "g")
    broker.ensure_group(stream, "g")  # idempotent
    first = broker.read(stream, "g", "c1", 3, 500)
    assert [(m.id, m.payload, m.deliveries) for m in first] == [
        ("1", b"m0", 1), ("2", b"m1", 1), ("3", b"m2", 1)]
    assert broker.ack(stream, "g", ["1", "2"]) == 2
    info = broker.info(stream, "g")
    assert (info.length, info.pending, info.lag, info.dead_letters) == (5, 1, 2, 0)

    # "3" is held by a consumer that died: after ack_wait it is delivered again, counted
    rest = broker.read(stream, "g", "c2", 10, 500)
    assert [m.id for m in rest] == ["4", "5"]
    assert broker.ack(stream, "g", ["4", "5"]) == 2
    assert broker.claim(stream, "g", "c2", 0, 10) == []  # JetStream redelivers by itself
    time.sleep(1.2)
    again = broker.read(stream, "g", "c2", 10, 2000)
    assert [(m.id, m.payload, m.deliveries) for m in again] == [("3", b"m2", 2)]

    broker.dead_letter(stream, "g", "c2", [(again[0], "scorer blew up\nsecond line")])
    [dead] = broker.dead_letters(stream)
    assert (dead.original_id, dead.payload, dead.deliveries, dead.consumer) == (
        "3", b"m2", 2, "c2")
    assert dead.error == "scorer blew up second line" and dead.failed_at
    info = broker.info(stream, "g")
    assert (info.pending, info.lag, info.dead_letters) == (0, 0, 1)
    assert broker.remove_dead(stream, [dead.id]) == 1
    assert broker.dead_letters(stream) == [] and broker.info(stream).dead_letters == 0
    assert broker.info("never-published-" + stream).length == 0


def test_worker_on_jetstream_stores_each_document_once_and_dead_letters_poison(
    db_url: str, broker: NatsJetStreamBroker, stream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SentimentModel, "load", classmethod(lambda cls, *a, **k: LexiconScorer()))
    valid = [_doc(i) for i in range(60)]
    broker.publish(stream, [*valid[:30], *POISON, valid[3], valid[40], *valid[30:]])
    with SentimentService(db_url, embeddings=False) as service:
        # a first worker takes a batch and dies without acknowledging it
        doomed = StreamWorker(service, broker, stream, group="g", consumer="w1",
                              batch_size=16, block_ms=200)
        doomed.broker.ensure_group(stream, "g")
        taken = broker.read(stream, "g", "w1", 16, 500)
        assert len(taken) == 16
        survivor = StreamWorker(service, broker, stream, group="g", consumer="w2",
                                batch_size=16, block_ms=200)
        report = survivor.run(idle_timeout=2.5)  # longer than ack_wait: the 16 come back
    assert report.stored == 60 and report.duplicates == 2
    assert report.dead_lettered == len(POISON)
    assert sorted(_ids(db_url)) == sorted(f"d{i}" for i in range(60))
    info = broker.info(stream, "g")
    assert info.pending == 0 and info.lag == 0 and info.dead_letters == len(POISON)
    letters = {d.payload: d.error for d in broker.dead_letters(stream)}
    assert set(letters) == set(POISON)
    for payload, reason in POISON.items():
        assert reason in letters[payload]
    alerts = broker.info(stream + ":alerts").length
    assert alerts == len(report.alerts)
    assert all(json.loads(json.dumps(a))["topic"] for a in report.alerts)


def test_nats_down_is_one_clear_line() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    broker = open_broker(f"nats://127.0.0.1:{port}", retries=2)
    try:
        with pytest.raises(BrokerError, match=r"NATS at .* does not answer \(publish, 2 "
                                              r"attempts\)") as err:
            broker.publish("s", [b"{}"])
        assert "\n" not in str(err.value)
    finally:
        broker.close()
    with pytest.raises(BrokerError, match="cannot tell the broker"):
        open_broker("kafka://127.0.0.1:9092")


def test_aigc_broker_url_selects_the_broker_of_every_command(
    broker: NatsJetStreamBroker, stream: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: pass ``--broker nats://...`` "(or set ``AIGC_BROKER_URL``)" to any of the
    commands; it comes before ``AIGC_REDIS_URL``, and ``--broker`` before both."""
    monkeypatch.setenv("AIGC_REDIS_URL", "redis://127.0.0.1:1/0")  # nothing there
    monkeypatch.delenv("AIGC_BROKER_URL", raising=False)
    redis = open_broker()
    assert isinstance(redis, RedisStreamsBroker)
    redis.close()
    monkeypatch.setenv("AIGC_BROKER_URL", NATS_URL)
    chosen = open_broker()
    assert isinstance(chosen, NatsJetStreamBroker) and chosen.url == NATS_URL
    chosen.close()
    assert isinstance(open_broker("redis://127.0.0.1:1/0"), RedisStreamsBroker)

    feed = tmp_path / "feed.jsonl"
    feed.write_text("".join(_doc(i).decode() + "\n" for i in range(3)))
    assert _ok(["publish", str(feed), "--stream", stream, "--json"])["published"] == 3
    assert broker.info(stream).length == 3  # on NATS, not on the Redis of AIGC_REDIS_URL
    assert _ok(["status", "--stream", stream, "--json"])["length"] == 3
