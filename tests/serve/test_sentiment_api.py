"""/v1/sentiment: scoring, idempotent document ingest that fires alerts, trends per topic and
bucket, alerts since a time, the missing-model answer, and each route's errors as
OpenAI-shaped JSON. Scoring uses the lexicon scorer (the app tests' stand-in for a trained
model) except in one test that trains a tiny classifier and scores with it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aigc_apps.embeddings import Encoder
from aigc_apps.serve import create_app
from apps.sentiment.classifier import FitOptions, SentimentModel
from apps.sentiment.scoring import LexiconScorer
from apps.sentiment.service import SentimentService
from tests.sentiment.conftest import HashEncoder
from tests.serve.checks import assert_documented, assert_error, error

DATA = Path(__file__).resolve().parents[2] / "data" / "sentiment" / "headlines.csv"
T0 = datetime(2024, 5, 6, tzinfo=timezone.utc)
POS, NEG, NEU = "Lender profits rise", "Lender shares plunge", "Lender holds meeting"


def feed(hours: int = 36, per_hour: int = 10) -> list[dict[str, Any]]:
    """``per_hour`` documents an hour (1 in 5 negative), hours 30 and 31 a negative surge."""
    docs, n = [], 0
    for h in range(hours):
        count, neg = {30: (30, 25), 31: (30, 25)}.get(h, (per_hour, per_hour // 5))
        for i in range(count):
            n += 1
            text = NEG if i < neg else (POS if i % 2 else NEU)
            at = T0 + timedelta(hours=h, minutes=i * 50 // count)
            docs.append(
                {
                    "id": str(n),
                    "source": "wire",
                    "text": f"{text} #{n}",
                    "published_at": at.isoformat(),
                }
            )
    return docs


@pytest.fixture
def lexicon(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every model the service loads is the lexicon scorer; topic embeddings hash words."""

    def load(cls: type, name: str | None = None, *args: object, **kwargs: object) -> object:
        return LexiconScorer(name or "lexicon")

    monkeypatch.setattr(SentimentModel, "load", classmethod(load))
    monkeypatch.setattr(Encoder, "cached", classmethod(lambda cls, *a, **k: HashEncoder()))


@pytest.fixture
def topics(lexicon: None) -> None:
    with SentimentService.from_settings() as service:
        service.add_topic("banking", "lender, bank")
        service.add_topic("energy", "oil, crude")


@pytest.fixture
def client(topics: None) -> Iterator[TestClient]:
    with TestClient(create_app()) as c:
        yield c


def test_score(client: TestClient) -> None:
    texts = ["Bank shares plunge after a fraud probe", "Crude oil profits rise to a record"]
    resp = client.post("/v1/sentiment/score", json={"texts": texts})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["model"] == "lexicon" and [r["text"] for r in body["results"]] == texts
    first, second = body["results"]
    assert (first["label"], second["label"]) == ("negative", "positive")
    p = first["probabilities"]
    assert sum(p.values()) == pytest.approx(1.0, abs=1e-3)
    assert first["score"] == pytest.approx(p["positive"] - p["negative"], abs=1e-3)
    assert [t["topic"] for t in first["topics"]] == ["banking"]
    assert [t["topic"] for t in second["topics"]] == ["energy"] and not first["truncated"]


def test_score_errors(client: TestClient) -> None:
    resp = client.post("/v1/sentiment/score", json={"texts": ["fine", "   "]})
    assert "text 2 is empty" in error(resp, 400, "invalid_request_error")
    bodies: list[dict[str, Any]] = [
        {"texts": []},
        {"texts": ["a"] * 257},
        {"texts": "one string"},
        {},
        {"texts": [1, 2]},
        {"texts": ["x" * 100_001]},
    ]
    for body in bodies:
        error(client.post("/v1/sentiment/score", json=body), 422, "invalid_request_error")
    assert client.post("/v1/sentiment/score", json={"texts": ["a"] * 256}).status_code == 200


def test_documents_are_idempotent_and_fire_alerts_then_trends_and_alerts(
    db_url: str, monkeypatch: pytest.MonkeyPatch, lexicon: None
) -> None:
    monkeypatch.setenv("AIGC_SENTIMENT_DB_URL", db_url)
    with SentimentService.from_settings() as service:
        service.add_topic("banking", "lender")
    docs = feed()
    with TestClient(create_app()) as client:
        resp = client.post("/v1/sentiment/documents", json={"documents": docs})
        assert resp.status_code == 200, resp.text
        report = resp.json()
        assert (report["received"], report["stored"], report["duplicates"]) == (400, 400, 0)
        [alert] = report["alerts"]
        assert alert["topic"] == "banking" and "negative_share" in alert["signals"]
        assert datetime.fromisoformat(alert["bucket_start"]) == T0 + timedelta(hours=30)
    with TestClient(create_app()) as other:  # another worker, the same store
        again = other.post("/v1/sentiment/documents", json={"documents": docs[:50]}).json()
        assert (again["stored"], again["duplicates"], again["alerts"]) == (0, 50, [])
        params = {
            "topic": "banking",
            "bucket": "1h",
            "since": T0.isoformat(),
            "until": (T0 + timedelta(hours=32)).isoformat(),
        }
        trends = other.get("/v1/sentiment/trends", params=params).json()
        assert trends["bucket_seconds"] == 3600 and list(trends["series"]) == ["banking"]
        series = trends["series"]["banking"]
        assert len(series) == 32 and series[30]["count"] == 30 and series[30]["negative"] == 25
        assert series[0]["count"] == 10 and series[0]["share_negative"] == pytest.approx(0.2)
        daily = other.get("/v1/sentiment/trends", params={"topic": "all", "bucket": "1d"}).json()
        assert [b["count"] for b in daily["series"]["all"]] == [240, 160]
        since = (T0 + timedelta(hours=29)).isoformat()
        found = other.get("/v1/sentiment/alerts", params={"since": since}).json()["alerts"]
        assert [a["id"] for a in found] == [alert["id"]]
        later = (T0 + timedelta(hours=31)).isoformat()
        assert other.get("/v1/sentiment/alerts", params={"since": later}).json()["alerts"] == []
        assert (
            len(other.get("/v1/sentiment/alerts", params={"topic": "banking"}).json()["alerts"])
            == 1
        )


def _published(docs: list[dict[str, Any]]) -> list[datetime]:
    return [datetime.fromisoformat(d["published_at"]) for d in docs]


def test_stored_documents_and_the_documents_behind_an_alert(
    db_url: str, monkeypatch: pytest.MonkeyPatch, lexicon: None
) -> None:
    monkeypatch.setenv("AIGC_SENTIMENT_DB_URL", db_url)
    with SentimentService.from_settings() as service:
        service.add_topic("banking", "lender")
        service.add_topic("energy", "oil")
    oil = {"id": "oil-1", "source": "desk", "text": "Oil shares plunge", "url": "https://x.test/1",
           "published_at": (T0 + timedelta(hours=35, minutes=59)).isoformat()}
    docs = [*feed(), oil]
    with TestClient(create_app()) as client:
        report = client.post("/v1/sentiment/documents", json={"documents": docs}).json()
        [alert] = report["alerts"]
        get = client.get

        latest = get("/v1/sentiment/documents").json()["documents"]
        assert len(latest) == 20 and latest[0]["id"] == "oil-1"
        first = latest[0]
        assert (first["source"], first["text"], first["url"]) == (
            "desk", "Oil shares plunge", "https://x.test/1")
        assert first["label"] == "negative" and first["topics"] == ["energy"]
        p = first["probabilities"]
        assert first["score"] == pytest.approx(p["positive"] - p["negative"], abs=1e-3)
        assert _published(latest) == sorted(_published(latest), reverse=True)
        assert [d["id"] for d in latest[1:]] == [str(n) for n in range(400, 381, -1)]

        params = {"label": "negative", "topic": "banking", "limit": "200"}
        negatives = get("/v1/sentiment/documents", params=params).json()["documents"]
        # 1 in 5 of 10 an hour for 34 hours, plus 25 in each surge hour
        assert len(negatives) == 34 * 2 + 50
        assert {d["label"] for d in negatives} == {"negative"}
        assert all(d["topics"] == ["banking"] for d in negatives)
        hour30 = {"since": (T0 + timedelta(hours=30)).isoformat(),
                  "until": (T0 + timedelta(hours=31)).isoformat(), "limit": "200"}
        in_hour = get("/v1/sentiment/documents", params=hour30).json()["documents"]
        assert len(in_hour) == 30
        assert get("/v1/sentiment/documents", params={"topic": "energy"}).json()[
            "documents"] == [first]
        assert len(get("/v1/sentiment/documents", params={"topic": "all", "limit": "200"})
                   .json()["documents"]) == 200

        behind = get(f"/v1/sentiment/alerts/{alert['id']}/documents",
                     params={"limit": "200"}).json()["documents"]
        assert sorted(d["id"] for d in behind) == sorted(d["id"] for d in in_hour)
        assert [d["label"] for d in behind[:25]] == ["negative"] * 25
        assert "negative" not in {d["label"] for d in behind[25:]}
        assert _published(behind[:25]) == sorted(_published(behind[:25]), reverse=True)
        top = get(f"/v1/sentiment/alerts/{alert['id']}/documents").json()["documents"]
        assert top == behind[:20]


def test_document_errors(client: TestClient) -> None:
    assert "crypto" in error(
        client.get("/v1/sentiment/documents", params={"topic": "crypto"}), 404, "not_found_error"
    )
    assert "12345" in error(client.get("/v1/sentiment/alerts/12345/documents"), 404,
                            "not_found_error")
    for params in ({"since": "last tuesday"}, {"until": "soon"},
                   {"since": "2024-05-02", "until": "2024-05-01"}):
        error(client.get("/v1/sentiment/documents", params=params), 400, "invalid_request_error")
    for params in ({"limit": "0"}, {"limit": "201"}, {"limit": "many"}, {"label": "angry"}):
        error(client.get("/v1/sentiment/documents", params=params), 422, "invalid_request_error")
    for path in ("0", "-1", str(2**31), "99999999999999999999", "x"):
        error(client.get(f"/v1/sentiment/alerts/{path}/documents"), 422, "invalid_request_error")
    error(client.get("/v1/sentiment/alerts/1/documents", params={"limit": "201"}), 422)
    assert client.get("/v1/sentiment/documents").json() == {"documents": []}


def test_texts_that_are_not_strings_are_refused(client: TestClient) -> None:
    """Issue 24: a text sent as a JSON object must never be stored as its Python repr."""
    for bad in ({"body": "Lender fined"}, ["Lender", "fined"], True):
        resp = client.post("/v1/sentiment/documents",
                           json={"documents": [{"id": "1", "text": bad}]})
        assert assert_error(resp, 422, "invalid_request_error")["param"] == "documents.0.text"
        resp = client.post("/v1/sentiment/score", json={"texts": [bad]})
        assert assert_error(resp, 422, "invalid_request_error")["param"] == "texts.0"
    assert client.get("/v1/sentiment/documents").json() == {"documents": []}


def test_a_bad_document_refuses_the_whole_batch(client: TestClient) -> None:
    good = {"id": "1", "text": "Lender profits rise"}
    empty = [good, {"id": "2", "text": "\x00\x01"}]  # nothing left once control chars go
    resp = client.post("/v1/sentiment/documents", json={"documents": empty})
    assert "documents[1]" in error(resp, 400, "invalid_request_error", "invalid_document")
    surrogate = json.dumps({"documents": [good, {"text": "Oil slides \ud800"}]})  # escaped
    resp = client.post(
        "/v1/sentiment/documents", content=surrogate, headers={"Content-Type": "application/json"}
    )
    error(resp, 422, "invalid_request_error")
    for docs in (
        [good, {"id": "4"}],
        [good | {"published_at": "yesterday"}],
        [],
        [good | {"text": ""}],
        [good | {"id": ""}],
    ):
        error(client.post("/v1/sentiment/documents", json={"documents": docs}), 422)
    stored = client.post("/v1/sentiment/documents", json={"documents": [good]}).json()
    assert stored["stored"] == 1  # nothing of the refused batches was stored before


def test_trend_and_alert_errors(client: TestClient) -> None:
    for params in (
        {"since": "last tuesday"},
        {"until": "soon"},
        {"bucket": "fortnight"},
        {"bucket": "0h"},
        {"bucket": "0.001s"},
        {"bucket": "99999999999999d"},
        {"since": "999999d"},
        {"since": "2024-05-02", "until": "2024-05-01"},
    ):
        error(client.get("/v1/sentiment/trends", params=params), 400, "invalid_request_error")
    assert "since" in error(client.get("/v1/sentiment/alerts", params={"since": "x"}), 400)
    for path in ("/v1/sentiment/trends", "/v1/sentiment/alerts"):
        assert "crypto" in error(
            client.get(path, params={"topic": "crypto"}), 404, "not_found_error"
        )
    for limit in ("0", "1001", "many"):
        error(client.get("/v1/sentiment/alerts", params={"limit": limit}), 422)
    assert client.get("/v1/sentiment/trends").json()["series"] == {}  # nothing stored yet



@pytest.fixture
def on_db(db_url: str, monkeypatch: pytest.MonkeyPatch, topics: None) -> Iterator[TestClient]:
    """The API on ``db_url`` (SQLite, then PostgreSQL), with the banking and energy topics."""
    monkeypatch.setenv("AIGC_SENTIMENT_DB_URL", db_url)
    with SentimentService.from_settings() as service:
        service.add_topic("banking", "lender, bank")
    with TestClient(create_app()) as c:
        yield c


def _stored(db_url: str, docs: list[dict[str, Any]], now: datetime | None = None) -> int:
    """Store ``docs`` as an ingester whose clock reads ``now`` would (what an older version
    stored, or a host whose clock is wrong)."""
    from apps.sentiment.ingest import Ingester
    from apps.sentiment.store import open_db
    from apps.sentiment.topics import TopicMatcher, WatchTopic

    db = open_db(db_url)
    try:
        matcher = TopicMatcher([WatchTopic("banking", ["lender"])])
        ingester = Ingester(db, LexiconScorer(), matcher,
                            now=lambda: now or datetime.now(timezone.utc))
        return ingester.ingest_records(docs).stored
    finally:
        db.dispose()


def test_future_documents_are_refused_and_cannot_hide_the_present(
    db_url: str, on_db: TestClient
) -> None:
    """Issue 24: a document dated 9999 was accepted; ``since=48h`` then answered megabytes of
    empty buckets up to 9999, without the last hour's records."""
    now = datetime.now(timezone.utc)
    far = {"id": "far", "text": POS, "published_at": "9999-12-31T00:00:00Z"}
    recent = [{"id": f"r{i}", "text": f"{NEG} {i}",
               "published_at": (now - timedelta(minutes=10 * i)).isoformat()} for i in range(3)]
    resp = on_db.post("/v1/sentiment/documents", json={"documents": [*recent, far]})
    message = error(resp, 422, "invalid_request_error", "invalid_value")
    assert "documents.3.published_at" in message and "more than 24h in the future" in message
    assert resp.json()["error"]["param"] == "documents.3.published_at"
    ahead = {**far, "published_at": (now + timedelta(hours=25)).isoformat()}
    error(on_db.post("/v1/sentiment/documents", json={"documents": [ahead]}), 422)
    skewed = {**far, "id": "skew", "published_at": (now + timedelta(hours=1)).isoformat()}
    resp = on_db.post("/v1/sentiment/documents", json={"documents": [*recent, skewed]})
    assert resp.json()["stored"] == 4, resp.text

    assert _stored(db_url, [far], now=datetime(9999, 12, 30, tzinfo=timezone.utc)) == 1
    resp = on_db.get("/v1/sentiment/trends", params={"since": "48h", "topic": "banking"})
    series = resp.json()["series"]["banking"]
    assert len(resp.content) < 50_000 and sum(b["count"] for b in series) == 4
    last = datetime.fromisoformat(series[-1]["bucket_start"])
    assert now < last + timedelta(hours=1) and last <= now + timedelta(hours=24)



def test_trend_errors_name_query_parameters_not_cli_flags(db_url: str, on_db: TestClient
                                                          ) -> None:
    """Issue 24: the HTTP error of a too-long series said to pass ``--since``."""
    old = {"id": "old", "text": "Lender opens a branch", "published_at": 0}  # 1970
    assert _stored(db_url, [old, {"id": "new", "text": "Lender fined"}]) == 2
    for params in ({}, {"topic": "banking"}, {"until": "2099-01-01"}):
        resp = on_db.get("/v1/sentiment/trends", params=params)
        message = error(resp, 400, "invalid_request_error")
        assert "since=" in message and "bucket=" in message and "--" not in message, message
        assert resp.json()["error"]["param"] == "since"
    for params in ({"since": "last tuesday"}, {"until": "soon"}, {"bucket": "fortnight"}):
        message = error(on_db.get("/v1/sentiment/trends", params=params), 400)
        assert "--" not in message, message
    assert on_db.get("/v1/sentiment/trends", params={"bucket": "1w"}).status_code == 200



def test_ids_are_strings_or_integers(on_db: TestClient) -> None:
    """Issue 24: an id may be a string or an integer on every path; an object (stored as its
    Python repr from the stream) or another kind is refused."""
    for bad in ({"a": 1}, ["7"], True, 1.5):
        resp = on_db.post("/v1/sentiment/documents",
                          json={"documents": [{"id": bad, "text": "Lender fined"}]})
        assert assert_error(resp, 422, "invalid_request_error")["param"] == "documents.0.id"
    resp = on_db.post("/v1/sentiment/documents", json={"documents": [{"id": 7, "text": POS}]})
    assert resp.json()["stored"] == 1, resp.text
    again = on_db.post("/v1/sentiment/documents", json={"documents": [{"id": "7", "text": POS}]})
    assert again.json()["duplicates"] == 1, again.text  # the same id
    assert [d["id"] for d in on_db.get("/v1/sentiment/documents").json()["documents"]] == ["7"]


def test_no_model_names_the_train_command(tmp_path: Path) -> None:
    with TestClient(create_app()) as client:
        resp = client.post("/v1/sentiment/score", json={"texts": ["Oil rises"]})
        message = error(resp, 404, "not_found_error", "model_not_found")
        assert "aigc sentiment train" in message
        docs = {"documents": [{"text": "Oil rises"}]}
        error(client.post("/v1/sentiment/documents", json=docs), 404, code="model_not_found")
        resp = client.post("/v1/sentiment/score", json={"texts": ["a"], "model": "nope"})
        assert "nope" in error(resp, 404, code="model_not_found")
        assert client.get("/v1/sentiment/trends").status_code == 200  # needs no model


def test_scores_with_a_trained_tiny_classifier(tiny_encoder_dir: Path) -> None:
    opts = FitOptions(
        base=str(tiny_encoder_dir),
        epochs=1,
        max_steps=2,
        batch_size=8,
        max_length=32,
        progress=False,
    )
    with SentimentService.from_settings() as service:
        service.train(service.read_labelled(DATA), "tiny", opts)
    with TestClient(create_app()) as client:
        body = client.post("/v1/sentiment/score", json={"texts": ["Oil rises", "Bank fails"]})
        assert body.status_code == 200, body.text
        results = body.json()["results"]
        assert body.json()["model"] == "tiny" and len(results) == 2
        for r in results:
            assert r["label"] in {"negative", "neutral", "positive"}
            assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)


def test_scopes(client: TestClient, token_store: Any) -> None:
    _, reader = token_store.create("risk-dashboard", ["sentiment:read"])
    _, other = token_store.create("help-desk", ["support"])
    with TestClient(create_app()) as c:
        error(c.post("/v1/sentiment/score", json={"texts": ["a"]}), 401, "authentication_error")
        as_reader = {"Authorization": f"Bearer {reader}"}
        assert c.post("/v1/sentiment/score", json={"texts": ["a"]}, headers=as_reader).json()
        docs = {"documents": [{"text": "Oil rises"}]}
        resp = c.post("/v1/sentiment/documents", json=docs, headers=as_reader)
        assert "sentiment:write" in error(resp, 403, "permission_error", "insufficient_scope")
        resp = c.get("/v1/sentiment/alerts", headers={"Authorization": f"Bearer {other}"})
        assert "sentiment:read" in error(resp, 403, "permission_error")


def test_openapi_documents_every_route() -> None:
    routes = {
        ("post", "/v1/sentiment/score"),
        ("post", "/v1/sentiment/documents"),
        ("get", "/v1/sentiment/trends"),
        ("get", "/v1/sentiment/alerts"),
        ("get", "/v1/sentiment/documents"),
        ("get", "/v1/sentiment/alerts/{alert_id}/documents"),
    }
    assert_documented(create_app().openapi(), "sentiment", routes)
