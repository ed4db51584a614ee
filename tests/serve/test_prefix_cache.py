"""The decoder's prompt-head cache: rows after a stored head give the same greedy text."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aigc_apps.engines.decoder import BatchDecoder, Row
from aigc_apps.engines.prefix import Prefix, PrefixStore
from aigc_apps.generation import GenerationConfig, Generator

SYSTEM = (
    "you are the customer support service of the red book shop. answer the question with "
    "only what the excerpts say and please help the customer with their order"
)
QUESTIONS = [
    "what is the price of the red book?",
    "my order is late, please help",
    "ok",
    "reset my password please, the login page says error and the app update is broken",
]


@pytest.fixture(scope="module")
def generator(tiny_llm_dir: Path) -> Generator:
    return Generator.from_pretrained(str(tiny_llm_dir), device="cpu")


def messages(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


def answer(decoder: BatchDecoder, prompts: list[list[int]], config: GenerationConfig,
           *, together: bool) -> list[str]:
    rows = [Row(list(p), config) for p in prompts]
    for batch in [rows] if together else [[r] for r in rows]:
        decoder.add(batch)
        while decoder.rows and not together:
            decoder.step()
    while decoder.rows:
        decoder.step()
    return [r.text for r in rows]


@pytest.mark.parametrize("together", [False, True], ids=["one-by-one", "batched"])
def test_rows_after_a_stored_head_give_the_same_greedy_text(
    generator: Generator, together: bool
) -> None:
    config = GenerationConfig(max_new_tokens=24)
    prompts = [generator.prompt_ids(messages(q), config) for q in QUESTIONS]
    expected = [generator.generate(messages(q), config) for q in QUESTIONS]
    assert len(set(expected)) > 1

    plain = BatchDecoder(generator, prefix_cache=False)
    assert answer(plain, prompts, config, together=together) == expected
    assert plain.prefix_reused == 0

    cached = BatchDecoder(generator)
    assert answer(cached, prompts, config, together=together) == expected
    head = cached.prefix_computed
    assert head >= 20  # the system message and the template around it, computed once
    assert prompts[0][:head] == prompts[1][:head] and prompts[0][head] != prompts[1][head]
    # every row after the first (one by one: it taught the head) started after it
    rows_after = len(prompts) - (0 if together else 1)
    assert cached.prefix_reused == head * rows_after
    # and again, nothing more to compute
    assert answer(cached, prompts, config, together=together) == expected
    assert cached.prefix_computed == head


def head(ids: tuple[int, ...]) -> Prefix:
    return Prefix(ids, [(torch.zeros(1, 2, len(ids), 4), torch.ones(1, 2, len(ids), 4))])


def test_store_learns_shares_cuts_and_keeps_adapters_apart() -> None:
    store = PrefixStore(min_tokens=4)
    first, second = (1, 2, 3, 4, 5, 6, 7), (1, 2, 3, 4, 5, 9, 9)
    assert store.wanted(None, first) is None  # nothing to share with yet
    assert store.wanted(None, second) == (1, 2, 3, 4, 5)
    store.put(None, head((1, 2, 3, 4, 5)))
    assert store.wanted(None, (1, 2, 3, 4, 5, 8)) is None  # the stored head fits
    found = store.find(None, (1, 2, 3, 4, 5, 8))
    assert found is not None and found.ids == (1, 2, 3, 4, 5)
    # a prompt sharing part of it: the head is cut (keys and values too), not recomputed
    cut = store.find(None, (1, 2, 3, 4, 0, 0))
    assert cut is not None and cut.ids == (1, 2, 3, 4) and cut.layers[0][0].shape[2] == 4
    assert store.find(None, (1, 2, 3, 0, 0)) is None  # shorter than min_tokens
    assert store.find(None, (1, 2, 3, 4)) is None  # a row keeps one token of its own
    assert store.find("lora", (1, 2, 3, 4, 5, 8)) is None  # an adapter changes the keys
    assert store.wanted("lora", first) is None


def test_store_forgets_the_least_recently_used_adapter() -> None:
    store = PrefixStore(min_tokens=2, size=2)
    for name in ("a", "b", "c"):
        store.put(name, head((1, 2, 3)))
    assert store.find("a", (1, 2, 3, 4)) is None
    assert store.find("b", (1, 2, 3, 4)) is not None
    assert store.find("c", (1, 2, 3, 4)) is not None
