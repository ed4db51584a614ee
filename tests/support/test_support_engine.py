"""The support bot generates through the process's shared engine: no weights of its own,
its answers streamed from the engine through the sentence gate, its adapter by name."""

from __future__ import annotations

from pathlib import Path

from aigc_apps.engines.chat_model import EngineGenerator
from aigc_apps.engines.pool import engine_pool
from aigc_apps.generation import Generator
from apps.support import SupportService

QUESTION = "kayaks canoes paddleboards freight carrier delivery window"


def test_a_support_answer_streams_through_the_shared_engine(
    bot: SupportService, tiny_llm_dir: Path
) -> None:
    assert isinstance(bot.generator, EngineGenerator)
    streamed: list[str] = []
    reply = bot.ask(QUESTION, on_token=streamed.append)
    assert reply.path == "generated" and reply.answer
    assert "".join(streamed).strip().startswith(reply.answer)  # the gate's sentences, sent
    engine = engine_pool().running(str(tiny_llm_dir))
    assert engine is not None and sum(engine.prefill_sizes.values()) >= 1  # it ran there
    assert not any(isinstance(v, Generator) for v in vars(bot.models).values())
    other = SupportService(bot.db_url, encoder=bot.encoder, llm=str(tiny_llm_dir))
    assert other.generator.generate([{"role": "user", "content": "hi"}], max_new_tokens=2)
    assert engine_pool().running(str(tiny_llm_dir)) is engine  # one engine for both bots
    other.close()
    assert engine_pool().running(str(tiny_llm_dir)) is engine  # still held by ``bot``
    bot.close()
    assert engine_pool().running(str(tiny_llm_dir)) is None  # the last holder let go


def test_the_active_adapter_is_loaded_on_the_engine_by_its_registry_name(
    bot: SupportService, tiny_llm_dir: Path, tmp_path: Path
) -> None:
    from tests.serve.test_engine import build_lora

    lora = build_lora(tiny_llm_dir, tmp_path / "gen-lora", seed=5)
    entry = bot.registry.register("support-gen", lora, app="support", role="generator",
                                  base=str(tiny_llm_dir), activate=True)
    bot.reload_models("generator")
    messages = [{"role": "user", "content": "hi"}]
    adapted = bot.generator.generate(messages, max_new_tokens=8)
    alone = Generator.from_pretrained(str(tiny_llm_dir), adapter=lora, device="cpu")
    assert adapted == alone.generate(messages, max_new_tokens=8)
    engine = engine_pool().running(str(tiny_llm_dir))
    assert engine is not None and entry.name in engine.adapters
