from __future__ import annotations

import json
from pathlib import Path

from aigc_apps.registry import ModelRegistry
from apps.support import SupportService
from apps.support.quality.tuning import (
    calibration_split,
    retriever_pairs,
    tune_generator,
    tune_retriever,
)
from apps.support.store import get_setting, load_settings


def test_pairs_exclude_the_calibration_split(bot: SupportService) -> None:
    held = calibration_split(bot.kb, 0.25, seed=1)
    assert held and all(bot.kb.meta[i].kind == "example" for i in held)
    pairs, groups = retriever_pairs(bot.kb, set(held))
    held_texts = {bot.kb.meta[i].text for i in held}
    assert not held_texts & {q for q, _ in pairs}
    by_text = {m.text: m.key for m in bot.kb.meta.values() if m.kind == "example"}
    for (q, p), g in zip(pairs, groups, strict=True):
        if q in by_text and p in by_text:
            assert by_text[q] == by_text[p] == g  # positives share the intent
    # every example is paired with its own intent's answer text too (SetFit-style tuning
    # that uses everything the FAQ says)
    answer_pairs = {(q, g) for (q, p), g in zip(pairs, groups, strict=True)
                    if p == bot.kb.answers.get(g)}
    assert {(q, by_text[q]) for q, _ in pairs if q in by_text} <= answer_pairs


def test_finetune_registers_and_activates_its_models(
    db_url: str, kb_dir: Path, tiny_encoder_dir: Path, tiny_llm_dir: Path
) -> None:
    bot = SupportService(
        db_url, encoder=str(tiny_encoder_dir), llm=str(tiny_llm_dir), max_new_tokens=4
    )
    bot.ingest([kb_dir])
    report = tune_retriever(bot, batch_size=8, max_steps=2)
    assert report.encoder_dir and Path(report.encoder_dir).is_dir()
    assert report.calibration_examples > 0
    gen = tune_generator(bot, max_steps=1, batch_size=2)
    assert gen.generator_adapter and Path(gen.generator_adapter).is_dir()
    assert gen.sft_records > 40

    registry = ModelRegistry()
    encoder = registry.active("support", "encoder")
    generator = registry.active("support", "generator")
    assert encoder is not None and encoder.name == report.encoder_model
    assert encoder.path == Path(report.encoder_dir).resolve()
    assert encoder.base == str(tiny_encoder_dir)  # a re-tune starts from the base again
    assert generator is not None and generator.name == gen.generator_model
    assert generator.path == Path(gen.generator_adapter).resolve()
    assert generator.base == str(tiny_llm_dir)
    stored = load_settings(bot.db)
    assert not {"active_encoder", "generator_adapter", "generator_base"} & set(stored)
    with bot.db.session() as s:
        assert get_setting(s, "calibration_ids")
    # the tuning service itself switched to what it trained
    assert bot.encoder_name == str(encoder.path) and bot.adapter == str(generator.path)

    reopened = SupportService(db_url)  # picks the active encoder and adapter from the registry
    assert reopened.encoder_name == str(encoder.path)
    assert reopened.adapter == str(generator.path) and reopened.llm == str(tiny_llm_dir)
    assert len(reopened.kb.questions) + len(reopened.kb.chunks) == len(reopened.kb.meta)
    assert reopened.ask("Where is my order?").answer
    registry.close()
    bot.close()
    reopened.close()


def test_the_lora_shape_reaches_both_adapters(
    tmp_path: Path, kb_dir: Path, tiny_encoder_dir: Path, tiny_llm_dir: Path
) -> None:
    service = SupportService(
        f"sqlite:///{tmp_path / 's.db'}", encoder=str(tiny_encoder_dir), llm=str(tiny_llm_dir)
    )
    service.ingest([kb_dir])
    report = service.tune(
        batch_size=8, lora=True, max_steps=1, lora_r=4, lora_dropout=0.0,
        target_modules="q_proj,v_proj",
    )
    assert report.encoder_dir and report.generator_adapter
    encoder = json.loads((Path(report.encoder_dir) / "adapter_config.json").read_text())
    generator = json.loads((Path(report.generator_adapter) / "adapter_config.json").read_text())
    for config in (encoder, generator):  # alpha follows the rank when not given
        assert (config["r"], config["lora_alpha"], config["lora_dropout"]) == (4, 8, 0.0)
    assert sorted(generator["target_modules"]) == ["q_proj", "v_proj"]
    assert report.encoder_model and report.generator_model
    service.close()
