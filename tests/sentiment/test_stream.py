"""The live pipeline on Redis Streams: publish, workers in a group, dead letters, status.

Skipped when Redis does not answer at ``AIGC_REDIS_URL`` (default 127.0.0.1:6379), unless
``AIGC_REQUIRE_REDIS=1``. Each test uses its own stream names and deletes them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from aigc_apps.store import Database
from apps.sentiment import cli
from apps.sentiment.broker import BrokerError, RedisStreamsBroker, alert_stream, redis_url
from apps.sentiment.classifier import SentimentModel
from apps.sentiment.reader import MAX_TEXT_CHARS
from apps.sentiment.scoring import LexiconScorer
from apps.sentiment.service import SentimentService
from apps.sentiment.store import Record, open_db
from apps.sentiment.worker import StreamWorker
from tests.services import unavailable

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "sentiment"
runner = CliRunner()


def _redis_answers() -> bool:
    try:
        broker = RedisStreamsBroker(retries=1)
        broker.ping()
        broker.close()
        return True
    except BrokerError:
        return False


@pytest.fixture(scope="module", autouse=True)
def redis_required() -> None:
    if not _redis_answers():
        unavailable("redis", f"Redis not reachable at {redis_url()}")


@pytest.fixture
def broker() -> Iterator[RedisStreamsBroker]:
    b = RedisStreamsBroker()
    yield b
    b.close()


@pytest.fixture
def stream(broker: RedisStreamsBroker) -> Iterator[str]:
    name = f"test-sentiment-{uuid.uuid4().hex[:10]}"
    yield name
    broker.delete(name)


@pytest.fixture
def lexicon_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SentimentModel, "load", classmethod(lambda cls, *a, **k: LexiconScorer()))


class ExplodingScorer(LexiconScorer):
    """Fails on any batch holding 'EXPLODE': a message that can never be processed."""

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if any("EXPLODE" in t for t in texts):
            raise RuntimeError("scorer blew up")
        return super().predict_proba(texts)


def _doc(i: int, **extra: object) -> bytes:
    record = {"id": f"d{i}", "source": "wire", "timestamp": "2024-05-08T10:00:00Z",
              "text": f"Company {i} shares rise after strong profit number {i}", **extra}
    return json.dumps(record).encode()


POISON = {
    b"this is not json": "invalid JSON",
    b"[1, 2, 3]": "not a JSON object",
    b'{"id": "p1", "source": "wire"}': "no text field",
    b'{"id": "p2", "source": "wire", "text": "   "}': "empty 'text'",
    b'{"id": "p3", "source": "wire", "text": "ok", "timestamp": "next tuesday"}':
        "as a timestamp",
    b'{"id": "p4", "source": "wire", "text": "bad \xff\xfe bytes"}': "not valid UTF-8",
}


def _ids(db_url: str) -> list[str]:
    db = open_db(db_url)
    try:
        with db.session() as s:
            return [str(i) for i in s.scalars(select(Record.ext_id))]
    finally:
        db.dispose()


def _worker(service: SentimentService, broker: RedisStreamsBroker, stream: str,
            **kwargs: object) -> StreamWorker:
    options: dict = {"group": "g", "consumer": "w1", "batch_size": 16, "block_ms": 100,
                     **kwargs}
    return StreamWorker(service, broker, stream, **options)


def test_worker_drains_dedupes_dead_letters_and_replays(
    db_url: str, broker: RedisStreamsBroker, stream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    valid = [_doc(i) for i in range(40)]
    dups = [valid[3], valid[7], _doc(5, source="wire"), valid[39]]  # redelivered copies
    big = _doc(100, text="x" * 1_000_000)  # a 1 MB text is cut to MAX_TEXT_CHARS
    extra = _doc(101, sector="banks", nested={"a": [1, 2]})  # unknown fields are ignored
    exploding = _doc(102, text="EXPLODE the scorer")
    broker.publish(stream, [*valid[:20], *POISON, *dups, big, extra, exploding, *valid[20:]])

    monkeypatch.setattr(SentimentModel, "load",
                        classmethod(lambda cls, *a, **k: ExplodingScorer()))
    with SentimentService(db_url, embeddings=False) as service:
        worker = _worker(service, broker, stream, claim_idle_ms=0, max_deliveries=2)
        report = worker.run(idle_timeout=1.0)
    assert report.stored == 42 and report.duplicates == len(dups)
    assert report.truncated == 1 and report.dead_lettered == len(POISON) + 1
    assert sorted(_ids(db_url)) == sorted([f"d{i}" for i in range(40)] + ["d100", "d101"])
    db = open_db(db_url)
    with db.session() as s:
        cut = s.scalars(select(Record).where(Record.ext_id == "d100")).one()
        assert cut.truncated and len(cut.text) == MAX_TEXT_CHARS
    db.dispose()

    letters = broker.dead_letters(stream)
    by_payload = {d.payload: d for d in letters}
    assert set(by_payload) == {*POISON, exploding}
    for payload, reason in POISON.items():
        assert reason in by_payload[payload].error, by_payload[payload].error
    assert "failed 2 deliveries" in by_payload[exploding].error
    assert "scorer blew up" in by_payload[exploding].error
    info = broker.info(stream, "g")
    assert info.pending == 0 and info.lag == 0 and info.dead_letters == len(POISON) + 1

    # the scorer is fixed: replay puts them back; the good one is stored, poison returns
    monkeypatch.setattr(SentimentModel, "load", classmethod(lambda cls, *a, **k: LexiconScorer()))
    out = runner.invoke(cli.app, ["dead-letters", "--stream", stream, "--replay", "--json"],
                        catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["replayed"] == len(POISON) + 1
    assert broker.dead_letters(stream) == []
    with SentimentService(db_url, embeddings=False) as service:
        again = _worker(service, broker, stream).run(idle_timeout=1.0)
    assert again.received == len(POISON) + 1 and again.stored == 1
    assert "d102" in _ids(db_url)
    assert {d.payload for d in broker.dead_letters(stream)} == set(POISON)

    status = runner.invoke(cli.app, ["status", "--stream", stream, "--group", "g",
                                     "--db", db_url, "--json"], catch_exceptions=False)
    got = json.loads(status.stdout)
    assert got["stored"] == 43 and got["pending"] == 0 and got["lag"] == 0
    published = len(valid) + len(POISON) + len(dups) + 3
    assert got["dead_letters"] == len(POISON) and got["length"] == published + len(POISON) + 1
    assert got["stored_last_minute"] == 43


def test_restarted_worker_resumes_from_group_position(
    broker: RedisStreamsBroker, stream: str, lexicon_model: None, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    broker.publish(stream, [_doc(i) for i in range(20)])
    with SentimentService(url, embeddings=False) as service:
        first = _worker(service, broker, stream, batch_size=8)
        assert first.step() == 8  # one batch, then the worker "stops"
    with SentimentService(url, embeddings=False) as service:
        second = _worker(service, broker, stream, batch_size=8).run(idle_timeout=0.5)
    assert second.received == 12 and second.stored == 12 and second.duplicates == 0
    broker.publish(stream, [_doc(i) for i in range(20, 25)])
    with SentimentService(url, embeddings=False) as service:
        third = _worker(service, broker, stream).run(idle_timeout=0.5)
    assert third.received == 5 and third.stored == 5 and third.claimed == 0
    assert len(_ids(url)) == 25 and broker.info(stream, "g").pending == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(home: Path) -> dict[str, str]:
    """A subprocess's environment on the test workspace (as tests/serve's ``serve_env``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGC_")}
    if "AIGC_MODELS_DIR" in os.environ:
        env["AIGC_MODELS_DIR"] = os.environ["AIGC_MODELS_DIR"]
    env.update({"AIGC_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "PYTHONUNBUFFERED": "1", "AIGC_REDIS_URL": redis_url()})
    return env


def test_broker_down_is_one_clear_line(tmp_path: Path, workspace: Path) -> None:
    dead = f"redis://127.0.0.1:{_free_port()}/0"
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "aigc_apps.cli", "sentiment", "work", "--stream", "s",
         "--broker", dead, "--retries", "3", "--db", f"sqlite:///{tmp_path / 'x.db'}"],
        env=_env(workspace), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("error: Redis at") and "does not answer" in lines[0]
    assert "3 attempts" in lines[0]
    broker = RedisStreamsBroker(dead, retries=3, backoff=0.3)
    t0 = time.monotonic()
    with pytest.raises(BrokerError, match="does not answer"):
        broker.publish("s", [b"{}"])
    assert time.monotonic() - t0 >= 0.9  # backed off 0.3 + 0.6 s between the attempts
    assert time.monotonic() - start < 120


def _stored(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Record)) or 0)


def test_two_worker_processes_one_killed_exactly_once(
    db_url: str, broker: RedisStreamsBroker, stream: str, tiny_encoder_dir: Path,
    workspace: Path, tmp_path: Path,
) -> None:
    trained = runner.invoke(cli.app, [
        "train", "--data", str(DATA / "headlines.csv"), "--name", "tiny", "--base",
        str(tiny_encoder_dir), "--max-steps", "1", "--batch-size", "8", "--max-length", "32",
        "--json"], catch_exceptions=False)
    assert trained.exit_code == 0, trained.output
    n = 2000
    docs = [_doc(i) for i in range(n)]
    messages = [*docs, *docs[::40], *list(POISON)[:4] * 3]  # 50 duplicates, 12 poison
    broker.publish(stream, messages)

    def start(name: str, *extra: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "aigc_apps.cli", "sentiment", "work", "--stream", stream,
             "--group", "g", "--consumer", name, "--batch", "32", "--db", db_url,
             "--claim-idle", "2", "--no-embeddings", "--json", *extra],
            env=_env(workspace), stdout=subprocess.PIPE,
            stderr=open(tmp_path / f"{name}.log", "wb"), start_new_session=True)

    db = open_db(db_url)  # migrated before the workers start
    victim, survivor = start("victim"), start("survivor")
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # kill the victim while it holds a batch
            info = broker.info(stream, "g")
            if _stored(db) >= 200 and info.pending_per_consumer.get("victim", 0) > 0:
                break
            assert victim.poll() is None, (tmp_path / "victim.log").read_text()
            time.sleep(0.01)  # faster workers hold a batch briefly: look often
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        held = broker.info(stream, "g").pending_per_consumer.get("victim", 0)
        assert held > 0
        while time.monotonic() < deadline:
            info = broker.info(stream, "g")
            if info.lag == 0 and info.pending == 0:
                break
            assert survivor.poll() is None, (tmp_path / "survivor.log").read_text()
            time.sleep(0.2)
        survivor.send_signal(signal.SIGTERM)  # finish the batch in hand, ack, exit
        out, _ = survivor.communicate(timeout=60)
    finally:
        for proc in (victim, survivor):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        db.dispose()
    assert survivor.returncode == 0, (tmp_path / "survivor.log").read_text()
    report = json.loads(out)
    assert report["claimed"] >= held
    info = broker.info(stream, "g")
    assert info.pending == 0 and info.lag == 0 and info.pending_per_consumer == {}
    ids = _ids(db_url)
    assert len(ids) == n and set(ids) == {f"d{i}" for i in range(n)}  # each exactly once
    letters = broker.dead_letters(stream)
    assert len(letters) == 12 and {d.payload for d in letters} == set(list(POISON)[:4])


def _rows(db_url: str) -> set[tuple[object, ...]]:
    db = open_db(db_url)
    try:
        with db.session() as s:
            return set(s.execute(select(Record.source, Record.ext_id, Record.text_hash,
                                        Record.label, Record.truncated)))
    finally:
        db.dispose()


def _ok(args: list[str]) -> dict:
    result = runner.invoke(cli.app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_publish_then_work_stores_what_ingest_stores(
    stream: str, lexicon_model: None, tmp_path: Path
) -> None:
    feed = tmp_path / "feed.jsonl"
    lines = (DATA / "stream.jsonl").read_text().splitlines()[:300]
    lines[10:10] = ["{broken json", '{"id": "z1", "text": "ok", "timestamp": "soonish"}',
                    '{"id": "z2", "headline": ""}', lines[20], json.dumps({"text": "y" * 30_000})]
    feed.write_text("\n".join(lines) + "\n")
    by_file, by_stream = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    ingest = _ok(["ingest", str(feed), "--no-embeddings", "--json", "--db", by_file])
    published = _ok(["publish", str(feed), "--stream", stream, "--json"])
    worked = _ok(["work", "--stream", stream, "--group", "g", "--db", by_stream,
                  "--no-embeddings", "--idle-timeout", "1", "--json"])
    assert published["published"] + len(published["skipped"]) == ingest["lines"] == 305
    assert [s["reason"] for s in published["skipped"]] == ["invalid JSON (Expecting property "
                                                           "name enclosed in double quotes)"]
    assert worked["stored"] == ingest["stored"] and worked["duplicates"] == ingest["duplicates"]
    assert worked["truncated"] == len(ingest["truncated_lines"]) == 1
    assert len(published["skipped"]) + worked["dead_lettered"] == len(ingest["skipped"]) == 4
    assert _rows(by_file) == _rows(by_stream)  # same records, sources, ids and labels
    status = _ok(["status", "--stream", stream, "--group", "g", "--db", by_stream, "--json"])
    assert status["stored"] == ingest["stored"] and status["dead_letters"] == 3
    assert status["pending"] == 0 and status["length"] == 304


class _Proxy:
    """A TCP relay to Redis that can be cut and restored: a real outage mid-run."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = _free_port()
        self._socks: list[socket.socket] = []
        self._up = threading.Event()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        listener.settimeout(0.05)
        self._socks = [listener]
        self._up.set()
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        self._up.clear()
        for sock in self._socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while self._up.is_set():
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            upstream = socket.create_connection(self.target)
            self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def test_broker_outage_mid_run_is_retried_and_loses_nothing(
    broker: RedisStreamsBroker, stream: str, lexicon_model: None, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    broker.publish(stream, [_doc(i) for i in range(60)])
    target = urlparse(redis_url())
    proxy = _Proxy(target.hostname or "127.0.0.1", target.port or 6379)
    proxy.start()
    flaky = RedisStreamsBroker(f"redis://127.0.0.1:{proxy.port}{target.path or '/0'}",
                               retries=20, backoff=0.05)
    with SentimentService(url, embeddings=False) as service:
        worker = _worker(service, flaky, stream, batch_size=10, claim_idle_ms=1000)
        assert worker.step() == 10
        proxy.stop()  # Redis is gone for a second, mid-run
        probe = RedisStreamsBroker(flaky.url, retries=1)
        with pytest.raises(BrokerError, match="does not answer"):
            probe.ping()
        probe.close()
        done: list[object] = []
        thread = threading.Thread(target=lambda: done.append(worker.run(idle_timeout=3)))
        thread.start()
        time.sleep(1.0)
        assert thread.is_alive() and not done  # retrying, not crashed
        proxy.start()
        thread.join(timeout=60)
    flaky.close()
    proxy.stop()
    assert done and sorted(_ids(url)) == sorted(f"d{i}" for i in range(60))
    info = broker.info(stream, "g")
    assert info.pending == 0 and info.lag == 0 and info.dead_letters == 0


def test_a_worker_process_outlives_a_broker_outage_and_stops_on_sigterm(
    stream: str, tiny_encoder_dir: Path, workspace: Path, tmp_path: Path
) -> None:
    """Issue 24: `work` exited 6 s after Redis went away. A worker that has reached its
    broker waits through an outage (back-off, one log line, not one per retry), goes on when
    the broker is back, and stops on SIGTERM only."""
    trained = runner.invoke(cli.app, [
        "train", "--data", str(DATA / "headlines.csv"), "--name", "tiny", "--base",
        str(tiny_encoder_dir), "--max-steps", "1", "--batch-size", "8", "--max-length", "32",
        "--json"], catch_exceptions=False)
    assert trained.exit_code == 0, trained.output
    target = urlparse(redis_url())
    proxy = _Proxy(target.hostname or "127.0.0.1", target.port or 6379)
    proxy.start()
    publisher = RedisStreamsBroker()
    db = open_db(f"sqlite:///{tmp_path / 'outage.db'}")
    log = tmp_path / "worker.log"
    with open(log, "wb") as stderr:  # the worker keeps its own copy
        worker = subprocess.Popen(
            [sys.executable, "-m", "aigc_apps.cli", "sentiment", "work", "--stream", stream,
             "--group", "g", "--db", str(db.engine.url), "--no-embeddings", "--json",
             "--threads", "1",  # a worker sharing its machine: its own torch thread count
             "--broker", f"redis://127.0.0.1:{proxy.port}{target.path or '/0'}"],
            env=_env(workspace), stdout=subprocess.PIPE, stderr=stderr,
            start_new_session=True)

    def wait_stored(n: int) -> None:
        deadline = time.monotonic() + 120
        while _stored(db) < n and time.monotonic() < deadline:
            assert worker.poll() is None, log.read_text()
            time.sleep(0.1)
        assert _stored(db) == n, log.read_text()

    try:
        publisher.publish(stream, [_doc(i) for i in range(5)])
        wait_stored(5)
        proxy.stop()  # Redis is unreachable for 10 s: the old worker gave up after 6
        cut = time.monotonic()
        while time.monotonic() - cut < 10:
            assert worker.poll() is None, log.read_text()
            time.sleep(0.1)
        proxy.start()
        publisher.publish(stream, [_doc(i) for i in range(5, 10)])
        wait_stored(10)  # reconnected (back-off at most 30 s) and worked on
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        proxy.stop()
        publisher.close()
        db.dispose()
    assert worker.returncode == 0, log.read_text()
    assert json.loads(out)["stored"] == 10
    lines = log.read_text().splitlines()
    down = [line for line in lines if "does not answer" in line]
    assert 1 <= len(down) <= 2, lines  # rate-limited: not a line per retry
    assert any("answers again" in line for line in lines), lines


def test_worker_alerts_are_stored_and_published(
    stream: str, lexicon_model: None, tmp_path: Path
) -> None:
    import redis

    db = ["--db", f"sqlite:///{tmp_path / 'alerts.db'}"]
    runner.invoke(cli.app, ["topics", "load", str(DATA / "topics.txt"), *db],
                  catch_exceptions=False)
    _ok(["publish", str(DATA / "stream.jsonl"), "--stream", stream, "--json"])
    worked = _ok(["work", "--stream", stream, "--batch", "64", "--no-embeddings",
                  "--idle-timeout", "1", "--json", *db])
    banking = [a for a in worked["alerts"] if a["topic"] == "banking"]
    # the injected surge runs 10:00-13:00 on May 8: one alert, as `ingest` fires it
    assert [a["bucket_start"][:13] for a in banking] in (["2024-05-08T10"], ["2024-05-08T11"])
    stored = json.loads(runner.invoke(cli.app, ["alerts", "--json", *db]).stdout)
    assert sorted(a["id"] for a in stored) == sorted(a["id"] for a in worked["alerts"])
    client = redis.Redis.from_url(redis_url())
    entries: Any = client.xrange(alert_stream(stream))
    published = [json.loads(fields[b"data"]) for _, fields in entries]
    client.close()
    assert published == worked["alerts"]


def test_stop_mid_batch_finishes_and_acks_the_batch_in_hand(
    broker: RedisStreamsBroker, stream: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stop = threading.Event()

    class StopWhileScoring(LexiconScorer):  # SIGTERM arrives while the batch is scored
        def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
            stop.set()
            return super().predict_proba(texts)

    monkeypatch.setattr(SentimentModel, "load",
                        classmethod(lambda cls, *a, **k: StopWhileScoring()))
    url = f"sqlite:///{tmp_path / 'stop.db'}"
    broker.publish(stream, [_doc(i) for i in range(30)])
    with SentimentService(url, embeddings=False) as service:
        report = _worker(service, broker, stream, batch_size=12).run(stop)
    assert report.received == report.stored == report.acked == 12
    assert sorted(_ids(url)) == sorted(f"d{i}" for i in range(12))
    info = broker.info(stream, "g")
    assert info.pending == 0 and info.lag == 18



def _refuses(db_url: str, broker: RedisStreamsBroker, stream: str,
             refused: dict[bytes, str], good: list[bytes]) -> list[str]:
    """Work ``refused`` and ``good`` messages: each refused one is dead-lettered, counted,
    with its reason; the good ones are stored (their ids returned)."""
    broker.publish(stream, [*refused, *good])
    with SentimentService(db_url, embeddings=False) as service:
        report = _worker(service, broker, stream).run(idle_timeout=1.0)
    assert (report.stored, report.duplicates) == (len(good), 0)
    assert report.dead_lettered == len(refused) == broker.info(stream, "g").dead_letters
    letters = {d.payload: d.error for d in broker.dead_letters(stream)}
    assert set(letters) == set(refused)
    for payload, reason in refused.items():
        assert reason in letters[payload], letters[payload]
    return sorted(_ids(db_url))


def test_long_ids_are_dead_lettered_not_cut(
    db_url: str, broker: RedisStreamsBroker, stream: str, lexicon_model: None
) -> None:
    """Issue 24: ids were cut to 500 characters, so two documents became one."""
    long_a, long_b = "x" * 500 + "-a", "x" * 500 + "-b"  # equal in their first 500
    refused = {_doc(1, id=long_a): "'id' is longer than 500 characters",
               _doc(2, id=long_b): "'id' is longer than 500 characters"}
    good = [_doc(3, id="y" * 500)]
    assert _refuses(db_url, broker, stream, refused, good) == ["y" * 500]


def test_future_timestamps_are_dead_lettered(
    db_url: str, broker: RedisStreamsBroker, stream: str, lexicon_model: None
) -> None:
    """Issue 24: a record dated 9999 was stored and hid the present from trends."""
    now = datetime.now(timezone.utc)
    refused = {_doc(1, timestamp="9999-12-31T00:00:00Z"): "in the future",
               _doc(2, timestamp=(now + timedelta(hours=25)).isoformat()): "in the future"}
    good = [_doc(3, timestamp=(now + timedelta(hours=1)).isoformat()), _doc(4)]  # clock skew
    assert _refuses(db_url, broker, stream, refused, good) == ["d3", "d4"]


def test_ids_that_are_not_strings_or_integers_are_dead_lettered(
    db_url: str, broker: RedisStreamsBroker, stream: str, lexicon_model: None
) -> None:
    """Issue 24: an id sent as a JSON object was stored as its Python repr."""
    kind = "must be a string or an integer, not"
    refused = {_doc(1, id={"a": 1}): f"'id' {kind} an object",
               _doc(2, id=["d2"]): f"'id' {kind} an array",
               _doc(3, id=True): f"'id' {kind} a boolean",
               _doc(4, id=None, guid=1.5): f"'guid' {kind} a decimal number",
               _doc(5, source={"feed": "wire"}): f"'source' {kind} an object",
               _doc(6, id=None, url=["https://x"]): f"'url' {kind} an array"}
    good = [_doc(7, id=7), _doc(8)]
    assert _refuses(db_url, broker, stream, refused, good) == ["7", "d8"]


def test_texts_that_are_not_text_are_dead_lettered(
    db_url: str, broker: RedisStreamsBroker, stream: str, lexicon_model: None
) -> None:
    """Issue 24: a text sent as a JSON object was stored (and scored) as its Python repr."""
    refused = {_doc(1, text={"body": "Shares plunge"}): "'text' must be text, not an object",
               _doc(2, text=["Shares", "plunge"]): "'text' must be text, not an array",
               _doc(3, text=None, headline=True): "'headline' must be text, not a boolean"}
    good = [_doc(4), _doc(5, text=2024)]  # a number is its digits, as in a CSV file
    assert _refuses(db_url, broker, stream, refused, good) == ["d4", "d5"]
