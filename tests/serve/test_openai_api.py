"""The OpenAI-compatible routes through the official ``openai`` client against a real
uvicorn server, with the tiny models (and a tiny LoRA adapter from the registry)."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from aigc_apps.embeddings import Encoder
from aigc_apps.generation import GenerationConfig, Generator
from aigc_apps.registry import ModelRegistry
from aigc_apps.serve.app import create_app
from aigc_apps.serve.config import ServeConfig
from tests.serve.test_engine import build_lora

CHAT = "tiny-chat"
MESSAGES: Any = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "where is my order"},
]


@pytest.fixture(scope="module")
def generator(tiny_llm_dir: Path) -> Generator:
    return Generator.from_pretrained(str(tiny_llm_dir), device="cpu")


@pytest.fixture(scope="module")
def loras(tiny_llm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("api-loras")
    return [build_lora(tiny_llm_dir, root / f"lora{i}", seed=10 + i) for i in range(2)]


@pytest.fixture
def server(
    live_server: Callable[[object], str], tiny_llm_dir: Path, tiny_encoder_dir: Path,
    workspace: Path, monkeypatch: pytest.MonkeyPatch, loras: list[Path],
) -> tuple[str, Any]:
    """(base URL, app): chat model ``tiny-chat`` (a folder of that name), the tiny encoder
    as the default encoder, and adapter ``tiny-sft`` in the registry."""
    chat = workspace.parent / CHAT
    chat.symlink_to(tiny_llm_dir, target_is_directory=True)
    monkeypatch.setenv("AIGC_ENCODER", str(tiny_encoder_dir))
    registry = ModelRegistry()
    registry.register("tiny-sft", loras[0], app="core", role="sft", base=str(chat))
    registry.close()
    app = create_app(ServeConfig(llm=str(chat), max_tokens_cap=256, engine="batch",
                                 batch_wait_ms=20))
    if not any(getattr(r, "path", "") == "/v1/models" for r in app.routes):
        from aigc_apps.serve.openai_api import router

        app.include_router(router)
    return live_server(app), app


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)


def test_models_lists_aliases_defaults_and_adapters(server: tuple[str, Any],
                                                    tiny_encoder_dir: Path) -> None:
    api = client(server[0])
    ids = {m.id for m in api.models.list().data}
    assert {CHAT, tiny_encoder_dir.name, "tiny-sft"} <= ids
    model = api.models.retrieve("tiny-sft")
    assert model.id == "tiny-sft" and model.owned_by == "core" and model.object == "model"
    with pytest.raises(openai.NotFoundError) as err:
        api.models.retrieve("no-such-model")
    assert err.value.code == "model_not_found"


def test_chat_plain_and_streamed(server: tuple[str, Any], generator: Generator) -> None:
    api = client(server[0])
    expected = generator.generate(MESSAGES, GenerationConfig(max_new_tokens=12))
    reply = api.chat.completions.create(model=CHAT, messages=MESSAGES, max_tokens=12,
                                        temperature=0)
    choice = reply.choices[0]
    assert choice.message.content == expected and choice.message.role == "assistant"
    assert choice.finish_reason in ("stop", "length") and reply.object == "chat.completion"
    usage = reply.usage
    assert usage is not None and usage.completion_tokens <= 12
    assert usage.prompt_tokens == len(generator.prompt_ids(MESSAGES))
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    chunks = list(api.chat.completions.create(
        model=CHAT, messages=MESSAGES, max_tokens=12, temperature=0, stream=True,
        stream_options={"include_usage": True},
    ))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected and len(chunks) > 3
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == choice.finish_reason and set(finishes[:-1]) == {None}
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == usage.total_tokens


def test_chat_stop_and_seed(server: tuple[str, Any]) -> None:
    api = client(server[0])
    full = api.chat.completions.create(model=CHAT, messages=MESSAGES, max_tokens=30,
                                       temperature=0).choices[0].message.content or ""
    stop = next(full[i : i + 2] for i in range(len(full) // 2, len(full) - 1)
                if full[i : i + 2].isascii() and full[i : i + 2].strip())
    cut = api.chat.completions.create(model=CHAT, messages=MESSAGES, max_tokens=30,
                                      temperature=0, stop=stop)
    assert cut.choices[0].message.content == full[: full.find(stop)]
    assert cut.choices[0].finish_reason == "stop"

    def sampled(seed: int) -> str:
        return api.chat.completions.create(model=CHAT, messages=MESSAGES, max_tokens=16,
                                           seed=seed).choices[0].message.content or ""

    assert sampled(5) == sampled(5)  # the same seed, the same sample
    others = {sampled(seed) for seed in (6, 7, 8)}
    assert others - {sampled(5)}, "every seed gave seed 5's sample: the seed is ignored"


def test_completions_one_choice_per_prompt(server: tuple[str, Any], generator: Generator) -> None:
    api = client(server[0])
    prompts = ["hello there", "the red book is"]
    plain = GenerationConfig(max_new_tokens=10, use_chat_template=False)
    reply = api.completions.create(model=CHAT, prompt=prompts, max_tokens=10, temperature=0)
    assert [c.index for c in reply.choices] == [0, 1]
    assert [c.text for c in reply.choices] == [generator.generate(p, plain) for p in prompts]
    stream = api.completions.create(model=CHAT, prompt=prompts, max_tokens=10, temperature=0,
                                    stream=True)
    texts = ["", ""]
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.text
    assert texts == [c.text for c in reply.choices]


def test_embeddings(server: tuple[str, Any], tiny_encoder_dir: Path) -> None:
    api = client(server[0])
    texts = ["refund please", "my order is late"]
    expected = Encoder.from_pretrained(str(tiny_encoder_dir), device="cpu").encode(texts)
    name = tiny_encoder_dir.name
    # the client asks for base64 and decodes it unless told a format
    for reply in (api.embeddings.create(model=name, input=texts),
                  api.embeddings.create(model=name, input=texts, encoding_format="float")):
        got = np.array([d.embedding for d in reply.data], dtype=np.float32)
        assert np.allclose(got, expected, atol=1e-5)
        assert reply.usage.prompt_tokens > 0 and [d.index for d in reply.data] == [0, 1]
    raw = api.embeddings.create(model=name, input=texts[0], encoding_format="base64")
    vector = np.frombuffer(base64.b64decode(str(raw.data[0].embedding)), dtype="<f4")
    assert np.allclose(vector, expected[0], atol=1e-5)
    with pytest.raises(openai.BadRequestError):
        api.embeddings.create(model=CHAT, input="hello")


def test_an_adapter_answers_differently_and_new_ones_appear(
    server: tuple[str, Any], loras: list[Path], generator: Generator
) -> None:
    api = client(server[0])

    def ask(model: str) -> str:
        return api.chat.completions.create(model=model, messages=MESSAGES, max_tokens=16,
                                           temperature=0).choices[0].message.content or ""

    base, adapted = ask(CHAT), ask("tiny-sft")
    assert base == generator.generate(MESSAGES, GenerationConfig(max_new_tokens=16)) != adapted
    with pytest.raises(openai.NotFoundError):
        ask("tiny-sft-2")
    registry = ModelRegistry()  # as `aigc finetune` in another process would
    base_folder = str(server[1].state.config.llm)
    registry.register("tiny-sft-2", loras[1], app="core", role="sft", base=base_folder)
    registry.close()
    second = ask("tiny-sft-2")
    assert second not in (base, adapted)
    assert ask("tiny-sft") == adapted and ask(CHAT) == base


def test_errors_are_openai_shaped(server: tuple[str, Any]) -> None:
    url = server[0]
    api = client(url)
    with pytest.raises(openai.BadRequestError, match="at least one message"):
        api.chat.completions.create(model=CHAT, messages=[])
    with pytest.raises(openai.BadRequestError) as err:
        api.chat.completions.create(model=CHAT, messages=MESSAGES, max_tokens=257)
    assert err.value.code == "max_tokens_too_large"
    with pytest.raises(openai.BadRequestError):
        api.chat.completions.create(model=CHAT, messages=MESSAGES, n=2)
    with pytest.raises(openai.NotFoundError) as missing:
        api.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert missing.value.code == "model_not_found"
    for body in (
        {"model": CHAT, "messages": MESSAGES, "max_tokens": 0},
        {"model": CHAT, "messages": MESSAGES, "temperature": "hot"},
        {"model": CHAT, "messages": MESSAGES, "temperature": -1},
        {"model": CHAT, "messages": "hello"},
        {"messages": MESSAGES},
    ):
        answer = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
        assert answer.status_code == 422, body
        assert set(answer.json()["error"]) >= {"message", "type", "code"}
    long_prompt = "hello " * 2100
    answer = httpx.post(f"{url}/v1/completions", timeout=30,
                        json={"model": CHAT, "prompt": long_prompt, "max_tokens": 8})
    assert answer.status_code == 400 and "context" in answer.json()["error"]["message"]
    streamed = httpx.post(f"{url}/v1/completions", timeout=30, json={
        "model": CHAT, "prompt": long_prompt, "max_tokens": 8, "stream": True})
    assert streamed.status_code == 400  # refused before the stream starts
    assert api.models.list().data  # still serving


def test_a_client_leaving_mid_stream_frees_its_slot(server: tuple[str, Any]) -> None:
    url, app = server
    body = {"model": CHAT, "messages": MESSAGES, "max_tokens": 256, "stream": True,
            "temperature": 0}
    client(url).models.retrieve(CHAT)
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as answer:
        assert answer.status_code == 200
        lines = answer.iter_lines()
        assert next(lines).startswith("data: ")
        engines = list(app.state.catalog.engines.values())
        assert len(engines) == 1 and engines[0].queue_depth == 1
        steps = sum(engines[0].batch_sizes.values())
    deadline = time.monotonic() + 10
    while engines[0].queue_depth and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engines[0].queue_depth == 0
    assert sum(engines[0].batch_sizes.values()) - steps < 200  # dropped, not run to the end
    reply = client(url).chat.completions.create(model=CHAT, messages=MESSAGES, max_tokens=4)
    assert reply.choices[0].message.content is not None


def test_concurrent_clients_share_forward_passes(server: tuple[str, Any]) -> None:
    """Eight requests sent while the engine is held start as one batch of eight: no reliance
    on them landing inside one ``batch_wait_ms`` window (the speed-up is a benchmark's,
    ``serve_load.py``)."""
    url, app = server
    client(url).chat.completions.create(model=CHAT, messages=MESSAGES, max_tokens=2)
    engine = next(iter(app.state.catalog.engines.values()))
    before, steps = engine.prefill_sizes[8], sum(engine.batch_sizes.values())

    async def many() -> list[str]:
        api = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        replies = await asyncio.gather(*(
            api.chat.completions.create(model=CHAT, max_tokens=24, temperature=0,
                                        messages=[{"role": "user", "content": f"order {i}"}])
            for i in range(8)
        ))
        await api.close()
        return [r.choices[0].message.content or "" for r in replies]

    with ThreadPoolExecutor(1) as pool:
        with engine.hold():
            sent = pool.submit(asyncio.run, many())
            deadline = time.monotonic() + 60
            while engine.queued < 8:  # all eight reached the engine, none started
                assert not sent.done(), sent.result()
                assert time.monotonic() < deadline, f"only {engine.queued} queued"
                time.sleep(0.01)
            assert sum(engine.batch_sizes.values()) == steps  # held: nothing ran
        assert len(sent.result(timeout=300)) == 8
    assert engine.prefill_sizes[8] == before + 1  # one prefill pass for all eight
    assert max(engine.batch_sizes) == 8  # and decoding steps of eight rows


def test_a_failing_model_is_an_error_not_a_crash(
    server: tuple[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from aigc_apps.engines.decoder import BatchDecoder

    url, _ = server
    api = client(url)
    api.chat.completions.create(model=CHAT, messages=MESSAGES, max_tokens=2)  # engine started

    def broken(self: BatchDecoder) -> Any:
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(BatchDecoder, "step", broken)
    with pytest.raises(openai.InternalServerError) as err:
        api.chat.completions.create(model=CHAT, messages=MESSAGES, max_tokens=8)
    assert "out of memory" not in str(err.value.body)  # details stay in the server log
    with pytest.raises(openai.APIError, match="generation failed"):
        for _ in api.chat.completions.create(model=CHAT, messages=MESSAGES, max_tokens=8,
                                             stream=True):
            pass
    monkeypatch.undo()
    reply = api.chat.completions.create(model=CHAT, messages=MESSAGES, max_tokens=4)
    assert reply.choices[0].message.content is not None
    assert all(e.queue_depth == 0 for e in server[1].state.catalog.engines.values())


@pytest.mark.slow
def test_bundled_models_through_the_client(live_server: Callable[[object], str]) -> None:
    """SmolLM2 and MiniLM as shipped: the aliases are listed and answer (8 tokens)."""
    url = live_server(create_app(ServeConfig(engine="batch")))
    api = client(url)
    ids = {m.id for m in api.models.list().data}
    assert {"smollm2-135m-instruct", "minilm-l6"} <= ids
    question = [{"role": "user", "content": "What is the capital of France?"}]
    reply = api.chat.completions.create(model="smollm2-135m-instruct", messages=question,
                                        max_tokens=8, temperature=0)
    expected = Generator.from_pretrained("smollm2-135m-instruct", device="cpu").generate(
        question, GenerationConfig(max_new_tokens=8))
    assert reply.choices[0].message.content == expected and expected.strip()
    vectors = api.embeddings.create(model="minilm-l6", input=["refund", "money back"])
    assert len(vectors.data[0].embedding) == 384
