"""Fine-tuning data preparation: config, masking, splitting, weighting, batching (no training)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from aigc_apps.errors import AigcError, DataError
from aigc_apps.finetune import LoraTrainingConfig
from aigc_apps.finetune import datasets as ds

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tokenizer(tiny_llm_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llm_dir)


def trained_text(tokenizer, example: dict) -> str:
    ids = [
        t for t, label in zip(example["input_ids"], example["labels"], strict=True) if label != -100
    ]
    return tokenizer.decode(ids)


# --- config -----------------------------------------------------------------------------


def test_config_round_trip(tmp_path: Path) -> None:
    cfg = LoraTrainingConfig(base="x", task="classify", lora_r=4, target_modules="query, value")
    assert cfg.target_modules == ["query", "value"]
    cfg.save_pretrained(tmp_path)
    again = LoraTrainingConfig.from_pretrained(tmp_path)
    assert again == cfg
    loaded = LoraTrainingConfig.from_dict({**cfg.to_dict(), "future_option": 3})
    assert loaded.extra == {"future_option": 3}
    with pytest.raises(AigcError, match="unknown task"):
        LoraTrainingConfig(task="summarize")
    with pytest.raises(AigcError, match="class_weight"):
        LoraTrainingConfig(class_weight="inverse")


def test_target_modules_by_model_type() -> None:
    cfg = LoraTrainingConfig()
    assert cfg.resolve_target_modules("llama") == ["q_proj", "v_proj"]
    assert cfg.resolve_target_modules("bert") == ["query", "value"]
    assert cfg.resolve_target_modules("t5") == ["q", "v"]  # from PEFT's table
    assert cfg.resolve_target_modules("no-such-arch") is None
    assert LoraTrainingConfig(target_modules=["o_proj"]).resolve_target_modules("llama") == [
        "o_proj"
    ]
    # PEFT's shorthand for every linear layer but the head must reach PEFT as the string
    assert LoraTrainingConfig(target_modules="all-linear").resolve_target_modules("bert") == (
        "all-linear"
    )


# --- SFT examples -------------------------------------------------------------------------


def test_prompt_tokens_are_masked(tokenizer) -> None:
    cfg = LoraTrainingConfig()
    messages = ds.to_messages({"prompt": "where is my order", "response": "it ships today"}, cfg)
    ex = ds.build_sft_example(tokenizer, messages, max_length=128)
    assert len(ex["input_ids"]) == len(ex["labels"]) == len(ex["attention_mask"])
    n_masked = ex["labels"].index(next(label for label in ex["labels"] if label != -100))
    prompt_ids = tokenizer(
        tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True),
        add_special_tokens=False,
    )["input_ids"]
    assert n_masked == len(prompt_ids)
    assert ex["input_ids"][:n_masked] == prompt_ids
    assert trained_text(tokenizer, ex) == "it ships today<|im_end|>\n"
    assert ex["labels"][n_masked:] == ex["input_ids"][n_masked:]


def test_every_assistant_turn_trained_in_chat_form(tokenizer) -> None:
    cfg = LoraTrainingConfig()
    record = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "refund please"},
            {"role": "assistant", "content": "sorry ok"},
        ]
    }
    ex = ds.build_sft_example(tokenizer, ds.to_messages(record, cfg), max_length=256)
    assert trained_text(tokenizer, ex) == "hello<|im_end|>\nsorry ok<|im_end|>\n"
    full = tokenizer.apply_chat_template(record["messages"], tokenize=False)
    assert tokenizer.decode(ex["input_ids"]) == full


def test_plain_format_without_chat_template(tiny_llm_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llm_dir)
    tok.chat_template = None
    cfg = LoraTrainingConfig(system_col="sys")
    record = {"prompt": "hello", "response": "good day", "sys": "be nice"}
    ex = ds.build_sft_example(tok, ds.to_messages(record, cfg), max_length=128)
    assert tok.decode(ex["input_ids"]).endswith("user: hello\nassistant: good day<|im_end|>")
    assert trained_text(tok, ex) == " good day<|im_end|>"


def test_truncation_and_unusable_rows(tokenizer) -> None:
    cfg = LoraTrainingConfig(max_length=24)
    records = [
        {"prompt": "hi", "response": "thanks " * 40},
        {"prompt": "help " * 40, "response": "ok"},
        {"messages": "not json"},
        {"messages": [{"role": "user", "content": "only a question"}]},
    ]
    examples, skipped = ds.build_sft_examples(records, tokenizer, cfg)
    assert len(examples) == 1 and len(examples[0]["input_ids"]) == 24
    assert [s.row for s in skipped] == [2, 3, 4]
    assert "max_length=24" in skipped[0].reason
    assert "no assistant turn" in skipped[2].reason


# --- classification, splits, weights ----------------------------------------------------------


def test_balanced_class_weights_match_sklearn() -> None:
    from sklearn.utils.class_weight import compute_class_weight

    labels = [0] * 10 + [1] * 3 + [2] * 1
    expected = compute_class_weight("balanced", classes=np.array([0, 1, 2]), y=np.array(labels))
    assert ds.balanced_class_weights(labels, 3) == pytest.approx(list(expected))
    assert ds.balanced_class_weights([0, 0, 2], 3)[1] == 0.0


def test_labels_sorted_and_split_stratified() -> None:
    cfg = LoraTrainingConfig(task="classify")
    rs = ds.load_records(REPO / "data/core/classify_sample.csv", cfg)
    id2label, label2id = ds.label_maps(rs.records, cfg)
    assert list(id2label.values()) == ["billing", "returns", "shipping"]
    assert label2id["shipping"] == 2
    strata = [ds.label_of(r, cfg) for r in rs.records]
    train, held = ds.split_eval(rs.records, 0.2, seed=1, strata=strata)
    assert len(held) == 18 and len(train) + len(held) == 90
    assert Counter(ds.label_of(r, cfg) for r in held) == {"billing": 6, "returns": 6, "shipping": 6}
    assert ds.split_eval(rs.records, 0.2, seed=1, strata=strata)[1] == held
    assert ds.split_eval(rs.records, 0.0, seed=1) == (rs.records, [])


def test_sample_sets_shape() -> None:
    sft = ds.load_records(REPO / "data/core/sft_sample.jsonl", LoraTrainingConfig())
    assert len(sft.records) >= 50 and not sft.skipped
    assert len({r["prompt"] for r in sft.records}) == len(sft.records)


# --- batching ----------------------------------------------------------------------------


def test_padding_collator() -> None:
    batch = ds.PaddingCollator(pad_token_id=7)(
        [
            {"input_ids": [1, 2, 3], "attention_mask": [1, 1, 1], "labels": [-100, 2, 3]},
            {"input_ids": [4], "attention_mask": [1], "labels": [4]},
        ]
    )
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 7, 7]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 2, 3], [4, -100, -100]]
    cls = ds.PaddingCollator(0, pad_to_multiple_of=4)([{"input_ids": [1], "labels": 2}])
    assert cls["input_ids"].shape == (1, 4) and cls["labels"].tolist() == [2]


def test_length_grouped_sampler_cuts_padding() -> None:
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(5, 200, (203,), generator=gen).tolist()
    sampler = ds.LengthGroupedSampler(lengths, batch_size=8, seed=3, window=4)
    order = list(sampler)
    assert sorted(order) == list(range(203))
    assert list(sampler) == order  # same epoch, same order (resume relies on it)
    sampler.set_epoch(1)
    assert list(sampler) != order

    def padded(indices: list[int]) -> int:
        batches = [indices[i : i + 8] for i in range(0, len(indices), 8)]
        return sum(max(lengths[j] for j in b) * len(b) for b in batches)

    random_order = torch.randperm(203, generator=gen).tolist()
    assert padded(order) < 0.8 * padded(random_order)
    assert len(set(order[-3:])) == 3 and len(order) % 8 == 3  # the short batch stays last


# --- reading errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("missing.jsonl", None, "file not found"),
        ("empty.jsonl", "", "empty"),
        ("data.txt", "prompt,response\n", "unknown format"),
        ("bad.csv", b"prompt,response\nhi,\xff\xfe\n", "not valid UTF-8"),
        ("cols.csv", "question,answer\nhi,ho\n", "missing column 'prompt'"),
    ],
)
def test_unreadable_data(tmp_path: Path, name: str, content: str | bytes | None, match: str):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=match) as err:
        ds.load_records(path, LoraTrainingConfig())
    assert "\n" not in str(err.value)


def test_rows_without_label_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("text,label\nwhere is it,shipping\nno label here,\nrefund,billing\n")
    rs = ds.load_records(path, LoraTrainingConfig(task="classify"))
    assert len(rs.records) == 2 and [(s.row, s.reason) for s in rs.skipped] == [
        (3, "empty 'label'")
    ]
    in_memory = ds.load_records(
        [{"text": "a", "label": "x"}, {"text": "b", "label": ""}],
        LoraTrainingConfig(task="classify"),
    )
    assert len(in_memory.skipped) == 1 and in_memory.data_hash
    with pytest.raises(DataError, match="missing column 'label'"):
        ds.load_records([{"text": "a"}], LoraTrainingConfig(task="classify"))


def test_lora_knobs_have_one_spelling_and_one_default_per_task() -> None:
    from aigc_apps.finetune.config import LORA_DEFAULTS

    sft = LoraTrainingConfig(base="x", task="sft")
    clf = LoraTrainingConfig(base="x", task="classify")
    assert (sft.lora_r, sft.lora_alpha, sft.lora_dropout) == (8, 16, 0.05)
    assert (clf.lora_r, clf.lora_alpha, clf.lora_dropout) == (16, 32, 0.1)
    assert LORA_DEFAULTS["classify"]["lora_r"] == clf.lora_r
    assert LoraTrainingConfig(base="x", lora_r=4).lora_alpha == 8  # 2 x rank, as 0.1.0's --r
    with pytest.warns(FutureWarning, match="use lora_r"):
        old = LoraTrainingConfig(base="x", r=4, alpha=8)  # 0.1.0 spelling still works
    assert (old.lora_r, old.lora_alpha) == (4, 8)
    # configs saved by 0.1.0 load with the new names
    saved = LoraTrainingConfig.from_dict({"base": "x", "task": "sft", "r": 32, "dropout": 0.2})
    assert (saved.lora_r, saved.lora_dropout) == (32, 0.2)
    with pytest.raises(AigcError, match="lora_dropout"):
        LoraTrainingConfig(base="x", lora_dropout=1.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_steps": 0}, "max_steps must be positive"),
        ({"max_steps": -5}, "max_steps must be positive"),
        ({"epochs": 0}, "epochs must be positive"),
        ({"epochs": -1.0}, "epochs must be positive"),
    ],
)
def test_settings_that_train_nothing_are_refused(kwargs: dict, message: str) -> None:
    """Issue 10 item 5: an untrained adapter must never be registered as if trained."""
    with pytest.raises(AigcError, match=message):
        LoraTrainingConfig(base="x", **kwargs)
