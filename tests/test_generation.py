"""Generator on the tiny random model: determinism, batching, streaming, stops, chat input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from aigc_apps.errors import AdapterError, AigcError
from aigc_apps.generation import GenerationConfig, Generator, cut_at_stop
from tests.tiny import stop_in_middle

PROMPTS = [
    "hello",
    "what is the price of the red book?",
    "my order is late, please help",
    "ok",
]


@pytest.fixture(scope="module")
def generator(tiny_llm_dir: Path) -> Generator:
    return Generator.from_pretrained(str(tiny_llm_dir), device="cpu")


def test_greedy_is_deterministic(generator: Generator) -> None:
    config = GenerationConfig(max_new_tokens=24)
    first = generator.generate(PROMPTS[1], config)
    assert isinstance(first, str) and first
    assert generator.generate(PROMPTS[1], config) == first


def test_batch_equals_single(generator: Generator) -> None:
    config = GenerationConfig(max_new_tokens=20)
    singles = [generator.generate(p, config) for p in PROMPTS]
    assert len(set(singles)) > 1  # prompts of different lengths, different answers
    assert generator.generate_batch(PROMPTS, config) == singles
    assert generator.generate_batch(PROMPTS, config, batch_size=3) == singles
    with pytest.raises(TypeError):
        generator.generate_batch("hello", config)


@pytest.mark.parametrize("prompt", PROMPTS[:3])
def test_stream_joins_to_generate(generator: Generator, prompt: str) -> None:
    config = GenerationConfig(max_new_tokens=24)
    pieces = list(generator.stream(prompt, config))
    assert len(pieces) >= 1
    assert "".join(pieces) == generator.generate(prompt, config)


def test_stop_strings_cut_output_and_end_generation(
    generator: Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = GenerationConfig(max_new_tokens=40)
    full = generator.generate(PROMPTS[2], config)
    stop = stop_in_middle(full)
    expected = full[: full.find(stop)]
    assert len(expected) < len(full)

    generated: list[int] = []
    run = generator._run

    def counting_run(*args: Any, **kwargs: Any) -> Any:
        ids = run(*args, **kwargs)
        generated.append(ids.shape[1])
        return ids

    monkeypatch.setattr(generator, "_run", counting_run)
    stopped = config.replace(stop=[stop, "never-appears-zz"])
    assert generator.generate(PROMPTS[2], stopped) == expected
    assert generator.generate(PROMPTS[2], max_new_tokens=40, stop=[stop]) == expected
    assert generated[0] < 40  # generation ended early, not just the text cut
    assert "".join(generator.stream(PROMPTS[2], stopped)) == expected


def test_stop_strings_in_batch(generator: Generator) -> None:
    config = GenerationConfig(max_new_tokens=30)
    fulls = generator.generate_batch(PROMPTS, config)
    stop = stop_in_middle(fulls[0])
    got = generator.generate_batch(PROMPTS, config.replace(stop=[stop]))
    assert got == [cut_at_stop(t, [stop]) for t in fulls]


def test_cut_at_stop_takes_earliest() -> None:
    assert cut_at_stop("abc xyz def", ["def", "xy"]) == "abc "
    assert cut_at_stop("abc", ["zz"]) == "abc"
    assert cut_at_stop("abc", []) == "abc"


def test_chat_messages_and_system_prompt(generator: Generator) -> None:
    config = GenerationConfig(max_new_tokens=16)
    as_messages = [{"role": "user", "content": "hello"}]
    assert generator.generate(as_messages, config) == generator.generate("hello", config)

    with_system = config.replace(system_prompt="be brief")
    text = generator.format_prompt("hello", with_system)
    assert text == (
        "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    own_system = [{"role": "system", "content": "be kind"}, *as_messages]
    assert generator.format_prompt(own_system, with_system).count("system") == 1
    multi_turn = [*as_messages, {"role": "assistant", "content": "hi"},
                  {"role": "user", "content": "refund please"}]
    assert isinstance(generator.generate(multi_turn, config), str)


def test_raw_prompt_skips_chat_template(generator: Generator) -> None:
    raw = GenerationConfig(use_chat_template=False, system_prompt="sys")
    assert generator.format_prompt("hello", raw) == "sys\n\nhello"
    assert generator.format_prompt([{"role": "user", "content": "hi"}], raw) == (
        "system: sys\nuser: hi\nassistant:"
    )
    assert isinstance(generator.generate("hello", raw.replace(max_new_tokens=8)), str)


def test_bad_messages_and_config_are_rejected(generator: Generator) -> None:
    with pytest.raises(AigcError, match="chat message 0"):
        generator.generate([{"text": "hello"}])
    for bad in ({"max_new_tokens": 0}, {"temperature": -1.0}, {"top_p": 0.0}):
        with pytest.raises(AigcError):
            GenerationConfig(**bad)


def test_seeded_sampling_repeats_and_keeps_global_rng(generator: Generator) -> None:
    config = GenerationConfig(max_new_tokens=16, temperature=1.0, seed=7)
    state = torch.get_rng_state()
    first = generator.generate(PROMPTS[0], config)
    assert torch.equal(state, torch.get_rng_state())
    assert generator.generate(PROMPTS[0], config) == first
    others = {generator.generate(PROMPTS[0], config, seed=s) for s in range(1, 5)}
    assert others - {first}  # the seed matters


def test_count_tokens(generator: Generator) -> None:
    assert generator.count_tokens("") == 0
    assert generator.count_tokens("hello hello") > generator.count_tokens("hello") > 0


def test_from_pretrained_with_corrupt_adapter(tiny_llm_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "adapter"
    bad.mkdir()
    (bad / "adapter_config.json").write_text("[")
    with pytest.raises(AdapterError, match="adapter config"):
        Generator.from_pretrained(str(tiny_llm_dir), adapter=str(bad))


def test_an_adapter_brings_its_base_and_a_conflicting_model_is_refused(
    tiny_llm_dir: Path, tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    import shutil

    from aigc_apps.finetune import LoraTrainer, LoraTrainingConfig

    rows = [{"prompt": f"q{i}", "response": f"a{i}"} for i in range(8)]
    config = LoraTrainingConfig(base=str(tiny_llm_dir), max_steps=1, batch_size=4,
                                max_length=32, eval_fraction=0.0)
    adapter = LoraTrainer(config, progress=False, register=False).fit(rows, tmp_path / "a")
    alone = Generator.from_pretrained(adapter=adapter.adapter_dir, device="cpu")
    same = Generator.from_pretrained(str(tiny_llm_dir), adapter=adapter.adapter_dir, device="cpu")
    assert alone.generate("q1", GenerationConfig(max_new_tokens=4)) == same.generate(
        "q1", GenerationConfig(max_new_tokens=4))

    other = tmp_path / "other-base"
    shutil.copytree(tiny_llm_dir, other)
    with pytest.raises(AdapterError, match="was trained on"):
        Generator.from_pretrained(str(other), adapter=adapter.adapter_dir)
    with pytest.raises(AigcError, match="is an encoder, not a text generator"):
        Generator.from_pretrained(str(tiny_encoder_dir))
