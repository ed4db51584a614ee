"""The micro-batcher on the tiny random model: same text as Generator, real batching,
stops, lengths, seeds, disconnects and LoRA adapter switching."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import torch

from aigc_apps.engines.base import GenerationRequest
from aigc_apps.engines.batcher import BatchingEngine
from aigc_apps.errors import AdapterError, AigcError
from aigc_apps.generation import GenerationConfig, Generator
from tests.tiny import stop_in_middle

T = TypeVar("T")
PROMPTS = [
    "hello",
    "what is the price of the red book?",
    "my order is late, please help",
    "ok",
    "reset my password please, the login page says error and the app update is broken",
    "thanks",
]


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def generator(tiny_llm_dir: Path) -> Generator:
    return Generator.from_pretrained(str(tiny_llm_dir), device="cpu")


@pytest.fixture(scope="module")
def engine(tiny_llm_dir: Path) -> Iterator[BatchingEngine]:
    engine = BatchingEngine(str(tiny_llm_dir), max_batch=8, batch_wait_ms=20, device="cpu")
    run(engine.start())
    yield engine
    run(engine.close())


def greedy(n: int, **kw: Any) -> GenerationConfig:
    return GenerationConfig(max_new_tokens=n, **kw)


async def _gather(engine: BatchingEngine, requests: list[GenerationRequest]) -> list[Any]:
    return list(await asyncio.gather(*(engine.generate(r) for r in requests)))


def test_greedy_batch_equals_generator_alone(engine: BatchingEngine, generator: Generator) -> None:
    configs = [greedy(8 + 4 * i) for i in range(len(PROMPTS))]
    expected = [generator.generate(p, c) for p, c in zip(PROMPTS, configs, strict=True)]
    assert len(set(expected)) > 1
    before, prefills = engine.batch_sizes.copy(), engine.prefill_sizes.copy()
    requests = [GenerationRequest(p, c) for p, c in zip(PROMPTS, configs, strict=True)]

    async def held() -> list[Any]:
        """All six queued before the engine may start: one batch, not a race with the
        ``batch_wait_ms`` window."""
        with engine.hold():
            tasks = [asyncio.create_task(engine.generate(r)) for r in requests]
            while engine.queued < len(requests):
                await asyncio.sleep(0.005)
        return list(await asyncio.gather(*tasks))

    results = run(held())
    assert [r.text for r in results] == expected
    assert engine.prefill_sizes - prefills == {len(PROMPTS): 1}  # prefilled together
    steps = engine.batch_sizes - before
    assert max(steps) == len(PROMPTS)  # the prompts shared forward passes
    for result, config, prompt in zip(results, configs, PROMPTS, strict=True):
        assert result.completion_tokens <= config.max_new_tokens
        assert result.prompt_tokens == len(generator.prompt_ids(prompt, config))
        assert result.finish_reason in ("stop", "length")


def test_late_requests_join_a_running_batch(engine: BatchingEngine, generator: Generator) -> None:
    config = greedy(40)
    expected = [generator.generate(p, config) for p in PROMPTS]

    async def staggered() -> list[str]:
        def start(prompt: str) -> asyncio.Task[Any]:
            return asyncio.create_task(engine.generate(GenerationRequest(prompt, config)))

        early = [start(p) for p in PROMPTS[:3]]
        while sum(engine.batch_sizes.values()) < before + 5:  # the first batch is decoding
            await asyncio.sleep(0.005)
        late = [start(p) for p in PROMPTS[3:]]
        return [r.text for r in await asyncio.gather(*early, *late)]

    before = sum(engine.batch_sizes.values())
    prefills, steps = engine.prefill_sizes.copy(), engine.batch_sizes.copy()
    assert run(staggered()) == expected
    assert sum((engine.prefill_sizes - prefills).values()) >= 2  # two prefills...
    assert max(engine.batch_sizes - steps) > 3  # ...and steps with early and late rows


def test_stream_pieces_join_to_the_reply(engine: BatchingEngine) -> None:
    request = GenerationRequest(PROMPTS[1], greedy(30))

    async def both() -> tuple[list[Any], Any]:
        return [c async for c in engine.stream(request)], await engine.generate(request)

    chunks, result = run(both())
    assert len(chunks) > 1 and "".join(c.text for c in chunks) == result.text
    assert chunks[-1].finish_reason == result.finish_reason
    assert chunks[-1].completion_tokens == result.completion_tokens
    assert all(c.finish_reason is None for c in chunks[:-1])


def test_stop_strings_end_the_row(engine: BatchingEngine, generator: Generator) -> None:
    full = generator.generate(PROMPTS[2], greedy(40))
    stop = stop_in_middle(full)
    expected = full[: full.find(stop)]
    request = GenerationRequest(PROMPTS[2], greedy(40, stop=[stop, "never-appears-zz"]))

    async def both() -> tuple[Any, str]:
        result = await engine.generate(request)
        return result, "".join([c.text async for c in engine.stream(request)])

    result, streamed = run(both())
    assert result.text == expected == streamed
    assert result.finish_reason == "stop"
    assert result.completion_tokens < 40
    assert generator.generate(PROMPTS[2], request.config) == expected


def test_max_tokens_gives_length(engine: BatchingEngine) -> None:
    result = run(engine.generate(GenerationRequest(PROMPTS[0], greedy(3))))
    if result.finish_reason == "length":
        assert result.completion_tokens == 3
    else:  # the tiny model may pick EOS within 3 tokens
        assert result.completion_tokens <= 3


def test_plain_prompts_skip_the_chat_template(engine: BatchingEngine, generator: Generator) -> None:
    config = greedy(12)
    result = run(engine.generate(GenerationRequest("hello there", config, chat=False)))
    plain = config.replace(use_chat_template=False)
    assert result.text == generator.generate("hello there", plain)
    assert result.prompt_tokens == len(generator.prompt_ids("hello there", plain))


def test_seeded_sampling_repeats(engine: BatchingEngine) -> None:
    def sampled(seed: int) -> GenerationRequest:
        return GenerationRequest(PROMPTS[1], greedy(20, temperature=1.0, top_k=0, seed=seed))

    first = run(engine.generate(sampled(7))).text
    again = run(_gather(engine, [sampled(7), sampled(8), sampled(9), sampled(7)]))
    assert again[0].text == again[3].text == first  # alone or in a batch
    assert len({r.text for r in again}) > 1  # other seeds, other samples


def test_extreme_sampling_values_work(engine: BatchingEngine, generator: Generator) -> None:
    greedy_text = generator.generate(PROMPTS[1], greedy(12))
    tiny = GenerationRequest(PROMPTS[1], greedy(12, temperature=1e-60, seed=2**70))
    assert run(engine.generate(tiny)).text == greedy_text  # one-hot, not NaN
    odd = [greedy(12, temperature=2.0, top_k=10**12, top_p=1e-300, seed=-5),
           greedy(12, temperature=0.3, top_k=1, seed=0)]
    results = run(_gather(engine, [GenerationRequest(PROMPTS[1], c) for c in odd]))
    assert results[1].text == greedy_text  # top-k 1 is greedy
    assert all(r.completion_tokens > 0 for r in results)


def test_a_closed_stream_frees_its_slot(engine: BatchingEngine) -> None:
    request = GenerationRequest(PROMPTS[1], greedy(400))

    async def abandon() -> int:
        steps = sum(engine.batch_sizes.values())
        stream = engine.stream(request)
        await anext(stream)
        assert engine.queue_depth == 1
        await stream.aclose()  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10
        while engine.queue_depth and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return sum(engine.batch_sizes.values()) - steps

    steps = run(abandon())
    assert engine.queue_depth == 0
    assert steps < 100  # dropped long before its 400 tokens
    assert run(engine.generate(GenerationRequest(PROMPTS[0], greedy(4)))).completion_tokens > 0


def test_a_cancelled_consumer_frees_its_slot(engine: BatchingEngine) -> None:
    async def cancel() -> None:
        async def consume() -> None:
            async for _ in engine.stream(GenerationRequest(PROMPTS[3], greedy(400))):
                await asyncio.sleep(0)

        task = asyncio.create_task(consume())
        while engine.queue_depth == 0:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)
        task.cancel()
        deadline = time.monotonic() + 10
        while engine.queue_depth and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    run(cancel())
    assert engine.queue_depth == 0


def test_bad_requests_fail_alone(engine: BatchingEngine) -> None:
    with pytest.raises(AigcError, match="context"):
        run(engine.generate(GenerationRequest("hello " * 2100, greedy(8))))
    with pytest.raises(AdapterError, match="not loaded"):
        run(engine.generate(GenerationRequest("hello", greedy(8), adapter="nope")))
    with pytest.raises(AigcError, match="empty"):
        run(engine.generate(GenerationRequest("", greedy(8), chat=False)))
    assert engine.queue_depth == 0
    assert run(engine.generate(GenerationRequest("hello", greedy(4)))).completion_tokens > 0


# -- adapters -----------------------------------------------------------------------------


def build_lora(base: Path, out: Path, seed: int) -> Path:
    """A LoRA adapter with random non-zero B weights (so it changes the output)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                        task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def lora_dirs(tiny_llm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("loras")
    return [build_lora(tiny_llm_dir, root / f"lora{i}", seed=i) for i in range(2)]


def test_adapters_switch_per_request(
    tiny_llm_dir: Path, lora_dirs: list[Path], generator: Generator
) -> None:
    engine = BatchingEngine(str(tiny_llm_dir), max_batch=8, batch_wait_ms=20, device="cpu")
    config = greedy(24)

    async def scenario() -> list[str]:
        await engine.start()
        try:
            await engine.load_adapter("one", str(lora_dirs[0]))
            await engine.load_adapter("two", str(lora_dirs[1]))
            await engine.load_adapter("one", str(lora_dirs[0]))  # same folder: nothing to do
            assert engine.adapters == ["one", "two"]
            requests = [GenerationRequest(PROMPTS[1], config, adapter=a)
                        for a in (None, "one", "two", None, "one")]
            return [r.text for r in await _gather(engine, requests)]
        finally:
            await engine.close()

    base, one, two, base_again, one_again = run(scenario())
    assert base == base_again == generator.generate(PROMPTS[1], config)  # the bare base
    assert one == one_again and len({base, one, two}) == 3
    for adapter, text in ((lora_dirs[0], one), (lora_dirs[1], two)):
        alone = Generator.from_pretrained(str(tiny_llm_dir), adapter=adapter, device="cpu")
        assert alone.generate(PROMPTS[1], config) == text


def test_a_broken_adapter_is_refused(engine: BatchingEngine, tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(AdapterError):
        run(engine.load_adapter("broken", str(tmp_path)))
    assert "broken" not in engine.adapters


# -- transformers' continuous batching ------------------------------------------------------


@pytest.fixture(scope="module")
def continuous(tiny_llm_dir: Path) -> Iterator[Any]:
    from aigc_apps.engines.continuous import ContinuousEngine

    engine = ContinuousEngine(str(tiny_llm_dir), max_batch=8, device="cpu")
    run(engine.start())
    yield engine
    run(engine.close())


def test_continuous_greedy_equals_generator(continuous: Any, generator: Generator) -> None:
    configs = [greedy(8 + 4 * i) for i in range(len(PROMPTS))]
    expected = [generator.generate(p, c) for p, c in zip(PROMPTS, configs, strict=True)]
    requests = [GenerationRequest(p, c) for p, c in zip(PROMPTS, configs, strict=True)]

    async def both() -> tuple[list[Any], list[Any]]:
        chunks = [c async for c in continuous.stream(requests[1])]
        return list(await asyncio.gather(*(continuous.generate(r) for r in requests))), chunks

    results, chunks = run(both())
    assert [r.text for r in results] == expected
    assert "".join(c.text for c in chunks) == expected[1] and len(chunks) > 1
    assert continuous.refused_requests == 0 and continuous.queue_depth == 0


def test_continuous_stops_and_disconnects(continuous: Any, generator: Generator) -> None:
    full = generator.generate(PROMPTS[2], greedy(40))
    stop = stop_in_middle(full)
    stopped = GenerationRequest(PROMPTS[2], greedy(40, stop=[stop]))
    result = run(continuous.generate(stopped))
    assert result.text == full[: full.find(stop)] and result.finish_reason == "stop"

    async def abandon() -> None:
        stream = continuous.stream(GenerationRequest(PROMPTS[1], greedy(400)))
        await anext(stream)
        assert continuous.queue_depth == 1
        await stream.aclose()

    run(abandon())
    assert continuous.queue_depth == 0
    again = run(continuous.generate(GenerationRequest(PROMPTS[0], greedy(6))))
    assert again.text == generator.generate(PROMPTS[0], greedy(6))


def test_continuous_refuses_seeds_and_adapters_in_one_line(
    continuous: Any, lora_dirs: list[Path], generator: Generator
) -> None:
    """Its old fallback held a second copy of the weights; one copy per process is the
    rule, so what continuous batching cannot do is refused (the request's fault: a 400)."""
    from aigc_apps.engines.base import UnsupportedRequest

    seeded = GenerationRequest(PROMPTS[1], greedy(16, temperature=1.0, seed=3))
    with pytest.raises(UnsupportedRequest, match=r"seed.*--engine batch"):
        run(continuous.generate(seeded))
    with pytest.raises(UnsupportedRequest, match="cannot serve LoRA adapters"):
        run(continuous.load_adapter("one", str(lora_dirs[0])))
    adapted = GenerationRequest(PROMPTS[1], greedy(24), adapter="one")
    with pytest.raises(UnsupportedRequest, match="adapter 'one'"):
        run(continuous.generate(adapted))
    penalised = GenerationRequest(PROMPTS[1], greedy(8, repetition_penalty=1.3))
    with pytest.raises(UnsupportedRequest, match="repetition penalty"):
        run(continuous.generate(penalised))
    assert continuous.refused_requests == 3 and continuous.adapters == []
    assert isinstance(UnsupportedRequest("x"), AigcError)  # answered 400 by the routes
    base = run(continuous.generate(GenerationRequest(PROMPTS[1], greedy(24))))
    assert base.text == generator.generate(PROMPTS[1], greedy(24))
    assert continuous.queue_depth == 0
