"""Workers of ``aigc serve --workers N`` answer alike: a model trained, activated or deleted
by another process (the CLI, another worker) is seen by every worker on its next answer,
without a restart, on SQLite and PostgreSQL (the registry's generation stamp)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aigc_apps.cli import main
from aigc_apps.registry import ModelRegistry
from aigc_apps.serve import create_app
from apps.sentiment.classifier import SentimentModel
from apps.sentiment.scoring import LexiconScorer
from apps.sentiment.service import SentimentService

DATA = Path(__file__).resolve().parents[2] / "data" / "sentiment" / "headlines.csv"
TEXTS = ["Lender profits rise", "Oil shares plunge"]


@pytest.fixture
def shared(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every store (the registry's and the app's) on one database, as a deployment shares."""
    monkeypatch.setenv("AIGC_DATABASE_URL", db_url)
    return db_url


def _cli(*args: str) -> None:
    try:
        main(list(args))
    except SystemExit as exc:
        assert not exc.code, f"aigc {' '.join(args)} exited {exc.code}"


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Every model the services load (by requested name), served by the lexicon scorer."""
    seen: list[str | None] = []

    def load(cls: type, name: str | None = None, *args: object, **kwargs: object) -> object:
        seen.append(name)
        return LexiconScorer(name or "lexicon")

    monkeypatch.setattr(SentimentModel, "load", classmethod(load))
    return seen


def test_a_worker_reloads_a_model_retrained_or_deleted_elsewhere(
    shared: str, tmp_path: Path, loads: list[str | None]
) -> None:
    registry = ModelRegistry()
    registry.register("m", tmp_path / "m", app="sentiment", role="sentiment", base="minilm-l6")
    with SentimentService(embeddings=False) as worker:
        worker.score(TEXTS, "m")
        worker.score(TEXTS, "m")
        assert loads == ["m"]  # kept between requests
        # another process retrains "m" under its name: new files, one registry write
        registry.register("m", tmp_path / "m2", app="sentiment", role="sentiment",
                          base="minilm-l6", activate=False)
        worker.score(TEXTS, "m")
        assert loads == ["m", "m"]
        registry.register("other", tmp_path / "o", app="recommender", role="model", base="x")
        worker.score(TEXTS, "m")
        assert loads == ["m", "m"]  # another app's models are not this worker's concern
    registry.close()


def test_a_followed_feed_scores_each_batch_with_the_model_and_topics_of_its_time(
    shared: str, tmp_path: Path, loads: list[str | None]
) -> None:
    """``aigc sentiment ingest --follow`` runs for days: it follows the registry too."""
    registry = ModelRegistry()
    registry.register("a", tmp_path / "a", app="sentiment", role="sentiment", base="minilm-l6")
    feed, stop = tmp_path / "live.jsonl", threading.Event()
    feed.write_text(json.dumps({"id": "1", "text": "Oil profits rise"}) + "\n")
    with SentimentService(embeddings=False) as follower, \
            SentimentService(embeddings=False) as elsewhere:
        thread = threading.Thread(target=follower.follow, args=(feed,),
                                  kwargs={"stop": stop})
        thread.start()
        try:
            _wait_for(elsewhere, 1)
            registry.register("b", tmp_path / "b", app="sentiment", role="sentiment",
                              base="minilm-l6")  # trained and activated meanwhile
            elsewhere.add_topic("energy", "oil")
            with feed.open("a") as handle:
                handle.write(json.dumps({"id": "2", "text": "Oil shares plunge"}) + "\n")
            _wait_for(elsewhere, 2)
        finally:
            stop.set()
            thread.join()
        docs = {d.id: d for d in elsewhere.documents()}
    assert (docs["1"].model, docs["2"].model) == ("a", "b")
    assert docs["1"].topics == [] and docs["2"].topics == ["energy"]
    registry.close()


def _wait_for(service: SentimentService, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(service.documents()) < count:
        assert time.monotonic() < deadline, "the followed feed was not ingested"
        time.sleep(0.05)


@pytest.fixture
def tiny_opts(tiny_encoder_dir: Path) -> list[str]:
    return ["--base", str(tiny_encoder_dir), "--max-steps", "4", "--lr", "0.05",
            "--batch-size", "8", "--max-length", "32", "--data", str(DATA), "--json"]


@pytest.fixture
def workers(shared: str) -> Iterator[tuple[TestClient, TestClient]]:
    """Two ``aigc serve`` workers: two apps, each with its own services, one database."""
    with TestClient(create_app()) as one, TestClient(create_app()) as two:
        yield one, two


def _score(worker: TestClient, model: str | None = None) -> tuple[str, list[float]]:
    body: dict[str, Any] = {"texts": TEXTS} | ({"model": model} if model else {})
    resp = worker.post("/v1/sentiment/score", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()["model"], [r["score"] for r in resp.json()["results"]]


def test_workers_see_what_the_cli_trains_activates_and_deletes(
    workers: tuple[TestClient, TestClient], tiny_opts: list[str],
    capsys: pytest.CaptureFixture[str]
) -> None:
    one, two = workers
    _cli("sentiment", "train", "--name", "a", "--seed", "1", *tiny_opts)
    first = _score(one, "a")
    assert _score(two, "a") == first and _score(two) == first  # "a" is active
    _cli("sentiment", "train", "--name", "a", "--seed", "2", *tiny_opts)  # retrained
    second = _score(two, "a")
    assert second[1] != pytest.approx(first[1], abs=1e-6)
    assert _score(one, "a") == second and _score(one) == second

    _cli("sentiment", "train", "--name", "b", "--seed", "3", *tiny_opts)  # the new active one
    assert _score(one)[0] == _score(two)[0] == "b"
    _cli("models", "activate", "a")
    assert _score(one) == _score(two) == second
    _cli("models", "delete", "b", "--yes")
    for worker in workers:
        resp = worker.post("/v1/sentiment/score", json={"texts": TEXTS, "model": "b"})
        assert resp.status_code == 404, resp.text
    capsys.readouterr()
