"""``aigc sentiment alerts|trends --json`` print the models the HTTP API answers: the same
keys and values on both edges (the CLI prints the list the API wraps in an object, and
trends as one list of every topic's non-empty buckets); ``ingest --json`` reports the alerts
it fired in that shape too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aigc_apps.embeddings import Encoder
from aigc_apps.serve import create_app
from apps.sentiment.classifier import SentimentModel
from apps.sentiment.scoring import LexiconScorer
from apps.sentiment.service import SentimentService
from tests.sentiment.conftest import HashEncoder
from tests.sentiment.test_sentiment_cli import _ok
from tests.serve.checks import keys_of
from tests.serve.test_sentiment_api import feed

S = "/v1/sentiment"


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A SQLite store holding a 36-hour feed with a negative surge on banking (one alert);
    scoring is the lexicon scorer, topic embeddings hash words. The server reads it too."""
    url = f"sqlite:///{tmp_path / 'sentiment.db'}"
    monkeypatch.setenv("AIGC_SENTIMENT_DB_URL", url)
    monkeypatch.setattr(SentimentModel, "load", classmethod(lambda cls, *a, **k: LexiconScorer()))
    monkeypatch.setattr(Encoder, "cached", classmethod(lambda cls, *a, **k: HashEncoder()))
    with SentimentService(url) as service:
        service.add_topic("banking", "lender")
    return url


@pytest.fixture
def client(url: str) -> Iterator[TestClient]:
    with TestClient(create_app()) as c:
        yield c


def test_alerts_print_what_the_api_answers(
    url: str, client: TestClient, tmp_path: Path
) -> None:
    posted = client.post(f"{S}/documents", json={"documents": feed(hours=30)}).json()
    assert posted["stored"] == 300 and posted["alerts"] == []
    fed = tmp_path / "feed.jsonl"  # the surge's hours arrive by the CLI
    fed.write_text("".join(json.dumps(d) + "\n" for d in feed()[300:]))
    report = json.loads(_ok(["ingest", str(fed), "--no-embeddings", "--db", url, "--json"]))
    assert report["stored"] == 100 and len(report["alerts"]) == 1
    cli = json.loads(_ok(["alerts", "--db", url, "--json"]))
    http = client.get(f"{S}/alerts").json()["alerts"]
    assert len(cli) == 1 and cli[0]["topic"] == "banking"
    assert keys_of(cli) == keys_of(http) == keys_of(report["alerts"])
    assert cli == http == report["alerts"]


def test_trends_print_the_api_buckets(url: str, client: TestClient) -> None:
    assert client.post(f"{S}/documents", json={"documents": feed()}).json()["stored"] == 400
    cli = json.loads(_ok(["trends", "--bucket", "1h", "--db", url, "--json"]))
    series = client.get(f"{S}/trends", params={"bucket": "1h"}).json()["series"]
    assert list(series) == ["all", "banking"]
    http = [b for buckets in series.values() for b in buckets if b["count"]]
    assert [b["topic"] for b in cli] == ["all"] * 36 + ["banking"] * 36
    assert keys_of(cli) == keys_of(http) and cli == http
