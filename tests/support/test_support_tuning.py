from __future__ import annotations

from pathlib import Path

from apps.support import SupportBot
from apps.support.store import get_setting
from apps.support.tuning import calibration_split, retriever_pairs, tune_generator, tune_retriever


def test_pairs_exclude_the_calibration_split(bot: SupportBot) -> None:
    held = calibration_split(bot.kb, 0.25, seed=1)
    assert held and all(bot.kb.meta[i].kind == "example" for i in held)
    pairs, groups = retriever_pairs(bot.kb, set(held))
    held_texts = {bot.kb.meta[i].text for i in held}
    assert not held_texts & {q for q, _ in pairs}
    by_text = {m.text: m.key for m in bot.kb.meta.values() if m.kind == "example"}
    for (q, p), g in zip(pairs, groups, strict=True):
        if q in by_text and p in by_text:
            assert by_text[q] == by_text[p] == g  # positives share the intent


def test_finetune_records_active_models(
    db_url: str, kb_dir: Path, tiny_encoder_dir: Path, tiny_llm_dir: Path
) -> None:
    bot = SupportBot(db_url, encoder=str(tiny_encoder_dir), llm=str(tiny_llm_dir), max_new_tokens=4)
    bot.ingest([kb_dir])
    report = tune_retriever(bot, batch_size=8, max_steps=2)
    assert Path(report.encoder_dir).is_dir() and report.calibration_examples > 0
    gen = tune_generator(bot, max_steps=1, batch_size=2)
    assert Path(gen.generator_adapter).is_dir() and gen.sft_records > 40
    with bot.db.session() as s:
        assert get_setting(s, "active_encoder") == report.encoder_dir
        assert get_setting(s, "generator_adapter") == gen.generator_adapter
        assert get_setting(s, "calibration_ids")
    reopened = SupportBot(db_url)  # picks the active encoder and adapter from the database
    assert reopened.encoder_name == report.encoder_dir
    assert reopened.adapter == gen.generator_adapter
    assert len(reopened.kb.questions) + len(reopened.kb.chunks) == len(reopened.kb.meta)
    assert reopened.ask("Where is my order?").answer
    bot.db.dispose()
    reopened.db.dispose()
