"""The lexical (TF-IDF) intent head: what dense matching misses, persistence, selection."""

from __future__ import annotations

import math

from apps.support import SupportService
from apps.support.knowledge.lexical import LexicalHead, fit_lexical_head
from apps.support.knowledge.retrieval import Ranking, RetrievalConfig
from apps.support.quality.tuning import MISS_LOSS, ranking_log_loss, select_retrieval

TYPO = "pasword reseting, i cant log in"  # no whole word in common with reset_password's answer


def test_character_ngrams_catch_misspellings(tmp_path) -> None:
    head = fit_lexical_head(
        ["I forgot my password", "How do I reset my password?", "Where is my order?",
         "Track my package", "Cancel my order", "I want to cancel a purchase"],
        ["reset_password", "reset_password", "order_status", "order_status", "cancel", "cancel"],
    )
    assert head is not None and head.labels == ["cancel", "order_status", "reset_password"]
    lp = head.log_proba("pasword resett")
    assert max(lp, key=lp.__getitem__) == "reset_password"
    loaded = LexicalHead.load(head.save(tmp_path / "lexical.pkl"))
    assert loaded is not None and loaded.log_proba("pasword resett") == lp
    assert LexicalHead.load(tmp_path / "missing.pkl") is None
    assert fit_lexical_head(["a", "b"], ["x", "x"]) is None  # one intent: nothing to learn


def test_lexical_weight_changes_the_ranking_and_ingest_drops_the_head(bot: SupportService) -> None:
    bot.kb.fit_head()
    assert bot.kb.lexical is not None and (bot.kb.index_dir / "lexical_head.pkl").is_file()
    vec = bot.embed_query(TYPO)
    bot.kb.config = RetrievalConfig(k=10, answer_weight=0.0, lexical_weight=0.0)
    dense_only = bot.kb.rank(vec, text=TYPO).keys[0]
    bot.kb.config = RetrievalConfig(k=10, answer_weight=0.0, lexical_weight=1.0)
    assert bot.kb.rank(vec, text=TYPO).keys[0] == "reset_password" != dense_only
    assert bot.kb.rank(vec).keys[0] == dense_only  # no text: the lexical head is not used

    extra = bot.kb.index_dir.parent / "extra.csv"
    extra.write_text("intent,text,answer\nstore_hours,When are you open?,9 to 5\n")
    bot.ingest([extra])  # new knowledge: the heads are refitted on it (the scoring weighs them)
    assert bot.kb.lexical is not None and "store_hours" in bot.kb.lexical.labels
    bot.kb.config = RetrievalConfig(k=10, answer_weight=0.0, lexical_weight=0.0)
    extra.write_text("intent,text,answer\nstore_hours,When do you open?,9 to 5\n")
    bot.ingest([extra])  # a scoring without heads: they are dropped, not refitted
    assert bot.kb.lexical is None and not (bot.kb.index_dir / "lexical_head.pkl").exists()


def test_selection_keys_name_every_weight(bot: SupportService) -> None:
    ids = [i for i, m in bot.kb.meta.items() if m.kind == "example"][::3]
    chosen, grid = select_retrieval(bot, ids)
    assert any("lexical=0.03" in name for name in grid)
    assert chosen.lexical_weight in {0.0, 0.01, 0.03, 0.1}
    name = (
        f"vote={chosen.vote_weight},head={chosen.head_weight},lexical={chosen.lexical_weight},"
        f"answer={chosen.answer_weight}"
    )
    assert grid[name]["log_loss"] == min(g["log_loss"] for g in grid.values())
    assert all(0.0 <= g["top1"] <= 1.0 and g["log_loss"] >= 0.0 for g in grid.values())
    assert bot.kb.config == chosen


def test_ranking_log_loss_rewards_confident_right_answers() -> None:
    right = [Ranking(["a", "b"], [0.9, 0.1])]
    assert ranking_log_loss(right, ["a"]) < ranking_log_loss(right, ["b"])
    # two candidates with equal scores: log 2 at any temperature
    assert abs(ranking_log_loss([Ranking(["a", "b"], [0.5, 0.5])], ["a"]) - math.log(2)) < 1e-9
    assert ranking_log_loss(right, ["c"]) == MISS_LOSS  # not among the candidates
