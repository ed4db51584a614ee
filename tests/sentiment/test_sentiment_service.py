"""SentimentService: no I/O on construction, shared lazy resources, one scoring formula."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from aigc_apps import stamps
from aigc_apps.errors import DataError, NotFoundError
from aigc_apps.registry import ModelRegistry
from apps.sentiment.classifier import SentimentModel
from apps.sentiment.scoring import LexiconScorer, Prediction
from apps.sentiment.service import IngestOptions, SentimentService
from apps.sentiment.store import Record

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Every model the service loads (by requested name), served by the lexicon scorer."""
    seen: list[str | None] = []

    def load(cls: type, name: str | None = None, *args: object, **kwargs: object) -> object:
        seen.append(name)
        return LexiconScorer(name or "active-lexicon")

    monkeypatch.setattr(SentimentModel, "load", classmethod(load))
    return seen


def test_construction_does_no_io(tmp_path: Path, workspace: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'sentiment.db'}"
    service = SentimentService(url)
    assert not (tmp_path / "nested").exists() and not workspace.exists()
    assert SentimentService.from_settings().db_url is None  # the workspace store, when used
    assert service.topics() == []  # first use opens (and creates) the store
    assert (tmp_path / "nested" / "sentiment.db").is_file()
    service.close()


def test_model_encoder_and_matcher_load_once_and_follow_topic_changes(
    db_url: str, loads: list[str | None], hash_encoder: object
) -> None:
    with SentimentService(db_url, encoder=hash_encoder) as service:  # type: ignore[arg-type]
        service.add_topic("banking", "bank, lender")
        first = service.matcher()
        service.score(["Bank shares plunge"])
        service.ingest_records([{"id": "1", "text": "Lender profits rise"}])
        assert service.matcher() is first and loads == [None]  # one load, one matcher
        service.add_topic("energy", ["oil", "crude"])
        rebuilt = service.matcher()
        assert rebuilt is not first
        assert {h.topic for h in service.score(["Oil prices fall"])[0].topics} == {"energy"}
        service.score(["Bank up"], model="other")  # a named model is loaded once too
        service.score(["Bank up"], model="other")
        assert loads == [None, "other"]


def test_score_and_ingest_use_one_scoring_formula(db_url: str, loads: list[str | None]) -> None:
    text = "Bank profits rise despite a lawsuit"
    with SentimentService(db_url, embeddings=False) as service:
        report = service.ingest_records([{"id": "a", "text": text}, "not a record"])
        assert (report.stored, [s.reason for s in report.skipped]) == (1, ["not a JSON object"])
        scored = service.score([text])[0]
        with service.db.session() as s:
            record = s.scalars(select(Record)).one()
    p = scored.prediction
    assert (record.label, record.score) == (p.label, pytest.approx(p.score))
    assert record.score == pytest.approx(record.p_positive - record.p_negative)
    assert (record.p_negative, record.p_neutral) == (pytest.approx(p.p_negative),
                                                     pytest.approx(p.p_neutral))
    assert record.source == "api" and record.model == "active-lexicon"
    row = scored.to_dict()
    assert list(row) == ["text", "truncated", "label", "probabilities", "score", "topics"]


def test_prediction_from_probabilities() -> None:
    p = Prediction.from_probabilities([0.2, 0.3, 0.5])
    assert p.label == "positive" and p.score == pytest.approx(0.3)
    assert p.to_dict() == {"label": "positive", "score": 0.3,
                           "probabilities": {"negative": 0.2, "neutral": 0.3, "positive": 0.5}}


def test_ingest_options_name_the_source_and_model(
    tmp_path: Path, loads: list[str | None]
) -> None:
    feed = tmp_path / "wire.jsonl"
    feed.write_text('{"text": "Bank shares plunge"}\n{"text": "Oil rises", "source": "x"}\n')
    with SentimentService(f"sqlite:///{tmp_path / 's.db'}", embeddings=False) as service:
        service.ingest_file(feed)
        service.ingest_records([{"text": "Fed holds"}], IngestOptions(source="desk", model="m"))
        with service.db.session() as s:
            sources = sorted(s.scalars(select(Record.source)))
    assert sources == ["desk", "wire.jsonl", "x"] and loads == [None, "m"]


def test_topic_rule_overrides_are_typed_and_checked(tmp_path: Path) -> None:
    with SentimentService(f"sqlite:///{tmp_path / 's.db'}") as service:
        topic = service.add_topic("rates", "Fed, ECB", {"min_volume": "5", "z_threshold": 2.5,
                                                        "bucket": " 2h "})
        assert topic.rule == {"min_volume": 5, "z_threshold": 2.5, "bucket": "2h"}
        with pytest.raises(DataError, match="min_volume='many': not a number"):
            service.add_topic("bad", "x", {"min_volume": "many"})
        with pytest.raises(DataError, match="unknown alert rule setting 'nope'"):
            service.add_topic("bad", "x", {"nope": "abc"})
        with pytest.raises(DataError, match="duration"):
            service.add_topic("bad", "x", {"bucket": "often"})
        assert [t.name for t in service.topics()] == ["rates"]  # nothing bad was stored
        assert service.topics()[0].rule["min_volume"] == 5
        with pytest.raises(NotFoundError, match="unknown topic 'nope'"):
            service.check_alerts("nope")


def test_the_service_follows_the_active_entry(tmp_path: Path, loads: list[str | None]) -> None:
    registry = ModelRegistry()
    registry.register("a", tmp_path / "a", app="sentiment", role="sentiment", base="minilm-l6")
    with SentimentService(f"sqlite:///{tmp_path / 's.db'}", embeddings=False) as service:
        assert service.model().name == "a" and service.model().name == "a"
        elsewhere = ModelRegistry()  # another process activates another model
        elsewhere.register("b", tmp_path / "b", app="sentiment", role="sentiment",
                           base="minilm-l6")
        elsewhere.close()
        assert service.score(["Bank profits rise"])[0].prediction.label == "positive"
        assert service.model().name == "b"
        service.activate("a")
        assert service.model().name == "a" and loads == ["a", "b", "a"]


def test_one_stamp_read_per_score_or_ingester(
    tmp_path: Path, loads: list[str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request reads one counter (a primary-key SELECT); the active entry is looked up
    only when the counter moved."""
    registry = ModelRegistry()
    registry.register("a", tmp_path / "a", app="sentiment", role="sentiment", base="minilm-l6")
    reads: list[str] = []
    real_active, real_current = ModelRegistry.active, stamps.current

    def active(self: ModelRegistry, *args: object, **kwargs: object) -> object:
        reads.append("active")
        return real_active(self, *args, **kwargs)  # type: ignore[arg-type]

    def current(*args: object, **kwargs: object) -> int:
        reads.append("stamp")
        return real_current(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ModelRegistry, "active", active)
    monkeypatch.setattr(stamps, "current", current)
    with SentimentService(f"sqlite:///{tmp_path / 's.db'}", embeddings=False) as service:
        scorer = service.model()
        assert reads == ["stamp", "active"]
        service.score(["Bank profits rise"], scorer)  # a model in hand: no lookup
        assert reads == ["stamp", "active"]
        service.score(["Bank profits rise"])
        service.ingester()
        assert reads == ["stamp", "active", "stamp", "stamp"] and loads == ["a"]


def test_active_model_comes_from_the_registry_not_the_newest(tmp_path: Path) -> None:
    registry = ModelRegistry()
    registry.register("only-entry", tmp_path / "a", app="sentiment", role="sentiment",
                      base="minilm-l6", activate=False)
    with pytest.raises(NotFoundError, match="no active sentiment model"):
        SentimentModel.load(registry=registry)
    registry.register("core-clf", tmp_path / "b", app="core", role="classify", base="minilm-l6")
    with SentimentService(registry=registry) as service:
        with pytest.raises(NotFoundError, match="not a sentiment model"):
            service.activate("core-clf")
        assert [m.name for m in service.models()] == ["only-entry"]


def _modules_after(statement: str) -> set[str]:
    """Top-level modules (and this app's modules) a fresh interpreter has after ``statement``."""
    script = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, check=True).stdout
    names = json.loads(out.strip().splitlines()[-1])
    return {n.split(".")[0] for n in names} | {n for n in names if n.startswith("apps.")}


def test_cli_module_imports_no_database_layer_and_demo_no_cli() -> None:
    assert not {"sqlalchemy", "numpy"} & _modules_after("import apps.sentiment.cli")
    assert "apps.sentiment.cli" not in _modules_after("import apps.sentiment.demo")
