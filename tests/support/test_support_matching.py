"""Matching that uses everything the FAQ says: answer texts, the lexical head reading them,
a handoff threshold chosen on labelled questions, and an encoder change in one step."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from aigc_apps.settings import Settings
from apps.support import RetrievalConfig, SupportService
from apps.support.edges.cli import app
from apps.support.quality.outcomes import OOS, Scored, choose_threshold, score_questions, shares
from tests.support.conftest import BowEncoder

FAQ = [
    ("opening_hours", "When are you open? | What time do you close?",
     "Our shops open Monday to Saturday from 9 am to 8 pm, Sunday from 10 am to 6 pm."),
    ("returns", "Can I return an item? | How do I send something back?",
     "Return unused gear within 30 days of delivery for a full refund."),
    ("shipping_cost", "How much is delivery? | Is postage free?",
     "Standard postage is free over $75, otherwise it costs $6.95."),
]


@pytest.fixture
def faq_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "faq"
    folder.mkdir()
    with (folder / "templates.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["intent", "text", "answer"])
        w.writerows(FAQ)
    return folder


@pytest.fixture
def faq_bot(db_url: str, faq_dir: Path, tiny_llm_dir: Path) -> SupportService:
    bot = SupportService(db_url, encoder=BowEncoder(), llm=str(tiny_llm_dir))  # type: ignore[arg-type]
    bot.ingest([faq_dir])
    yield bot
    bot.close()


def test_a_question_in_the_answers_words_matches_that_answer(faq_bot: SupportService) -> None:
    """No example question says "Monday" or "Saturday"; the opening-hours answer does."""
    vec = faq_bot.encoder.encode(["Monday to Saturday?"])[0]
    faq_bot.kb.config = RetrievalConfig(k=10, answer_weight=0.0, lexical_weight=0.0)
    plain = faq_bot.kb.rank(vec)
    faq_bot.kb.config = RetrievalConfig(k=10, answer_weight=1.0, lexical_weight=0.0)
    with_answers = faq_bot.kb.rank(vec)
    assert with_answers.keys[0] == "opening_hours"
    sims = faq_bot.kb.answer_similarities(vec)
    assert sims["opening_hours"] > 0.25 > max(sims["returns"], sims["shipping_cost"])
    gain = with_answers.scores[0] - dict(zip(plain.keys, plain.scores, strict=True))[
        "opening_hours"
    ]
    assert gain == pytest.approx(sims["opening_hours"], abs=1e-5)


def test_answer_vectors_follow_answer_changes_and_are_cached(faq_bot: SupportService) -> None:
    vec = faq_bot.encoder.encode(["kayak rental"])[0]
    assert faq_bot.kb.answer_similarities(vec)["returns"] < 0.2
    faq_bot.set_answers({"returns": "Kayak rental returns go to the Portland store."})
    assert faq_bot.kb.answer_similarities(vec)["returns"] > 0.5
    cached = np.load(faq_bot.index_dir / "answers.npz")
    assert "returns" in [str(k) for k in cached["keys"]]


def test_the_lexical_head_reads_the_answers(faq_bot: SupportService) -> None:
    faq_bot.kb.fit_head()
    assert faq_bot.kb.lexical is not None
    lp = faq_bot.kb.lexical.log_proba("saturday sunday")
    assert max(lp, key=lp.__getitem__) == "opening_hours"


def _scored(label: str, conf: float, correct: bool, fallback: str = "handoff") -> Scored:
    return Scored(label, conf, template=True, correct=correct, fallback=fallback, top_key=None)


def test_outcomes_and_the_threshold_that_keeps_wrong_answers_rare() -> None:
    scored = [
        _scored("a", 0.9, True),
        _scored("a", 0.8, True),
        _scored("b", 0.7, False),  # the first wrong answer
        _scored("b", 0.6, True),
        _scored("c", 0.5, False, fallback="generated"),
        _scored(OOS, 0.65, False),
        _scored(OOS, 0.2, False, fallback="generated"),
    ]
    at = shares(scored, 0.75)
    assert (at.right, at.wrong, at.handoff) == (0.4, 0.0, 0.4)
    assert at.generated == 0.2 and at.wrong_or_generated == 0.2
    assert at.oos_handoff == 0.5  # one handed off, one answered from documents
    # Wrong answers at most 0%: the best threshold is above the first wrong one.
    assert choose_threshold(scored, 0.0).threshold == 0.8
    # A budget of one wrong in five takes it: three right.
    loose = choose_threshold(scored, 0.2)
    assert loose.threshold == 0.6 and loose.right == 0.6 and loose.wrong == 0.2
    assert choose_threshold([_scored("a", 0.9, False)], 0.0).threshold == float("inf")


def test_calibrate_on_labelled_questions_is_stored(faq_bot: SupportService, db_url: str) -> None:
    texts = ["When do you close on Saturday?", "Send my boots back", "free postage?",
             "What is the capital of France?"]
    labels = ["opening_hours", "returns", "shipping_cost", OOS]
    scored = score_questions(faq_bot, texts, labels)
    assert [s.correct for s in scored[:3]] == [True, True, True]
    chosen = faq_bot.calibrate_on(texts, labels, max_wrong=0.0)
    assert chosen.wrong == 0.0 and chosen.right > 0
    assert "labelled questions" in faq_bot.calibration.method
    again = SupportService(db_url, encoder=BowEncoder())  # type: ignore[arg-type]
    assert again.calibration.threshold == pytest.approx(chosen.threshold)
    again.close()


def test_cli_calibrate(faq_bot: SupportService, db_url: str, tmp_path: Path, env: None) -> None:
    questions = tmp_path / "questions.csv"
    questions.write_text(
        "text,intent\nWhen do you close on Saturday?,opening_hours\n"
        "Send my boots back,returns\nWhat is the capital of France?,oos\n,returns\n"
    )
    faq_bot.close()
    runner = CliRunner()
    res = runner.invoke(app, ["calibrate", str(questions), "--db", db_url, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["n_in_scope"] == 2 and out["n_oos"] == 1 and len(out["skipped"]) == 1
    bad = runner.invoke(app, ["calibrate", str(questions), "--max-wrong", "2", "--db", db_url])
    assert bad.exit_code == 2
    halves = tmp_path / "halves.csv"
    halves.write_text(
        "text,intent,split\nWhen do you close on Saturday?,opening_hours,validation\n"
        "Send my boots back,returns,test\nWhat is the capital of France?,oos,validation\n"
    )
    res = runner.invoke(
        app, ["calibrate", str(halves), "--split", "validation", "--db", db_url, "--json"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["n_in_scope"] == 1


class Bow128(BowEncoder):
    name = "bow-128"
    dim = 128


def test_a_new_encoder_reembeds_and_recalibrates_in_one_step(
    db_url: str, faq_dir: Path
) -> None:
    first = SupportService(db_url, encoder=BowEncoder())  # type: ignore[arg-type]
    first.ingest([faq_dir])
    first.calibration = replace(first.calibration, bias=123.0)  # not fitted on any encoder
    first.close()
    second = SupportService(db_url, encoder=Bow128())  # type: ignore[arg-type]
    assert second.kb.encoder_changed
    assert second.kb.questions.ids().size + second.kb.chunks.ids().size == len(second.kb.meta)
    assert second.calibration.bias != 123.0
    assert second.ask("How much is delivery to my house?").intent == "shipping_cost"
    second.close()
    third = SupportService(db_url, encoder=Bow128())  # type: ignore[arg-type]
    assert not third.kb.encoder_changed  # one step: the next open finds it done
    third.close()


def test_support_encoder_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AIGC_SUPPORT_ENCODER", "AIGC_ENCODER"):
        monkeypatch.delenv(var, raising=False)
    assert Settings.from_env().support_encoder_name == "mpnet-base"
    assert Settings.from_env().default_encoder == "minilm-l6"  # the other apps keep MiniLM
    monkeypatch.setenv("AIGC_ENCODER", "minilm-l6")  # chosen explicitly: every app uses it
    assert Settings.from_env().support_encoder_name == "minilm-l6"
    monkeypatch.setenv("AIGC_SUPPORT_ENCODER", "support-only")
    assert Settings.from_env().support_encoder_name == "support-only"
    assert Settings(default_encoder="mine").support_encoder_name == "mine"
