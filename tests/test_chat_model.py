"""ChatModel and the engine pool on the tiny model: sync and async calls give the generator's
text, one engine per base however it is named, adapters by name, engines closed when the
last holder lets go."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from aigc_apps import ChatModel
from aigc_apps.engines.pool import EngineOptions, EnginePool
from aigc_apps.errors import AigcError
from aigc_apps.generation import GenerationConfig, Generator

MESSAGES = [{"role": "user", "content": "where is my order?"}]


@pytest.fixture(scope="module")
def generator(tiny_llm_dir: Path) -> Generator:
    return Generator.from_pretrained(str(tiny_llm_dir), device="cpu")


@pytest.fixture
def pool() -> EnginePool:
    return EnginePool(EngineOptions(device="cpu", batch_wait_ms=1))


def test_sync_and_async_calls_give_the_generators_text(
    tiny_llm_dir: Path, generator: Generator, pool: EnginePool
) -> None:
    config = GenerationConfig(max_new_tokens=12)
    model = ChatModel(str(tiny_llm_dir), config=config, pool=pool)
    expected = generator.generate(MESSAGES, config)
    reply = model.chat(MESSAGES)
    assert reply.text == expected and reply.completion_tokens > 0
    assert "".join(model.stream_chat(MESSAGES)) == expected
    plain = generator.generate("once upon", config, use_chat_template=False)
    assert model.generate("once upon").text == plain
    assert model.chat(MESSAGES, max_new_tokens=3).completion_tokens <= 3  # per-call override

    async def both() -> tuple[str, str, str]:
        chat = await model.achat(MESSAGES)
        pieces = [p async for p in model.astream_chat(MESSAGES)]
        completion = await model.agenerate("once upon")
        return chat.text, "".join(pieces), completion.text

    assert asyncio.run(both()) == (expected, expected, plain)  # a loop of the caller's own
    assert len(pool.engines) == 1  # every call above: one engine
    model.close()
    assert pool.engines == {}  # its only holder let go


def test_one_engine_per_base_across_threads_and_loops(
    tiny_llm_dir: Path, pool: EnginePool, tmp_path: Path
) -> None:
    link = tmp_path / "same-model"
    link.symlink_to(tiny_llm_dir, target_is_directory=True)
    engines: list[object] = []

    def grab(name: str) -> None:
        engines.append(asyncio.run(pool.engine(name)))

    threads = [threading.Thread(target=grab, args=(n,))
               for n in (str(tiny_llm_dir), str(link), str(tiny_llm_dir))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engines.append(pool.engine_sync(str(link)))
    assert len({id(e) for e in engines}) == 1 and len(pool.engines) == 1
    asyncio.run(pool.close())


def test_an_early_stop_frees_the_row(tiny_llm_dir: Path, pool: EnginePool) -> None:
    model = ChatModel(str(tiny_llm_dir), config=GenerationConfig(max_new_tokens=200),
                      pool=pool)
    stream = model.stream_chat(MESSAGES)
    next(stream)
    engine = next(iter(pool.engines.values()))
    assert engine.queue_depth == 1
    stream.close()  # the row is marked; the worker drops it at its next step
    deadline = time.monotonic() + 10
    while engine.queue_depth and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engine.queue_depth == 0
    model.close()


def test_adapters_by_folder_and_by_registered_name(
    tiny_llm_dir: Path, pool: EnginePool, tmp_path: Path
) -> None:
    from aigc_apps.registry import ModelRegistry
    from tests.serve.test_engine import build_lora

    lora = build_lora(tiny_llm_dir, tmp_path / "lora", seed=4)
    config = GenerationConfig(max_new_tokens=16)
    alone = Generator.from_pretrained(str(tiny_llm_dir), adapter=lora, device="cpu")
    expected = alone.generate(MESSAGES, config)
    registry = ModelRegistry()
    registry.register("tiny-lora", lora, app="core", role="sft", base=str(tiny_llm_dir))
    model = ChatModel(config=config, pool=pool, registry=registry)
    assert model.chat(MESSAGES, adapter=str(lora)).text == expected  # the folder's own base
    assert model.chat(MESSAGES, adapter="tiny-lora").text == expected
    assert model.chat(MESSAGES, model=str(tiny_llm_dir)).text != expected  # the bare base
    engine = next(iter(pool.engines.values()))
    assert len(pool.engines) == 1 and "tiny-lora" in engine.adapters
    with pytest.raises(AigcError, match="neither a folder nor a registered model"):
        model.chat(MESSAGES, adapter="no-such-adapter")
    model.close()
    registry.close()


def test_an_adapter_under_a_dotted_folder_or_with_a_dotted_name(
    tiny_llm_dir: Path, pool: EnginePool, tmp_path: Path
) -> None:
    """README's `aigc generate --adapter .aigc/adapters/faq`: PEFT refuses "." in its adapter
    names, so the engine must not hand it the folder (or a registry name like "v1.2")."""
    from aigc_apps.registry import ModelRegistry
    from tests.serve.test_engine import build_lora

    lora = build_lora(tiny_llm_dir, tmp_path / ".aigc" / "adapters" / "faq", seed=4)
    config = GenerationConfig(max_new_tokens=16)
    expected = Generator.from_pretrained(str(tiny_llm_dir), adapter=lora, device="cpu").generate(
        MESSAGES, config
    )
    registry = ModelRegistry()
    registry.register("faq-v1.2", lora, app="core", role="sft", base=str(tiny_llm_dir))
    model = ChatModel(config=config, pool=pool, registry=registry)
    assert model.chat(MESSAGES, adapter=str(lora)).text == expected
    assert model.chat(MESSAGES, adapter="faq-v1.2").text == expected
    model.close()
    registry.close()
