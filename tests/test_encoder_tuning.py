from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from aigc_apps.embeddings import Encoder
from aigc_apps.encoder_tuning import (
    ContrastiveTuningConfig,
    _excluded_in_batch,
    contrastive_loss,
    group_batches,
    tune_encoder,
)
from aigc_apps.errors import DataError

# A small intent task in the tiny encoder's vocabulary: query -> label text.
LABELS = {
    "refund": "refund payment",
    "password": "password reset login",
    "delivery": "shipping delivery order",
    "broken": "broken product fix",
    "thanks": "thank you good service",
    "music": "music song listen",
    "movie": "movie film watch",
    "account": "account user open",
}
QUERIES = {
    "refund": ["i want my money back", "can i get a refund", "return the card payment",
               "refund please", "price was bad refund it"],
    "password": ["i can not login", "reset my password", "forgot password help",
                 "login error on the app", "password is not working"],
    "delivery": ["where is my order", "shipping is very slow", "when will delivery be",
                 "order not here today", "how many days for shipping"],
    "broken": ["the item is broken", "product does not work", "it is broken please fix",
               "my item stopped working", "fix this problem"],
    "thanks": ["thanks a lot", "great service thank you", "you are very good",
               "thank you for the help", "happy with the support"],
    "music": ["recommend a song", "i love this music", "what should i listen to",
              "song for today", "music like this one"],
    "movie": ["recommend a film", "which movie to watch", "i like this film",
              "watch a movie today", "good movie please"],
    "account": ["open a new account", "my user account", "close my account",
                "new user here", "account question"],
}
PAIRS = [(q, LABELS[g]) for g, qs in QUERIES.items() for q in qs]
GROUPS = [g for g, qs in QUERIES.items() for _ in qs]


def _accuracy(encoder: Encoder) -> float:
    names = list(LABELS)
    label_vecs = encoder.encode([LABELS[n] for n in names])
    scores = encoder.encode([q for q, _ in PAIRS]) @ label_vecs.T
    return float(np.mean([names[i] == g for i, g in zip(scores.argmax(1), GROUPS, strict=True)]))


def test_group_batches_keep_groups_apart_and_cover_everything() -> None:
    groups = [i % 10 for i in range(95)]
    batches = group_batches(groups, 8, np.random.default_rng(0))
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(95))
    assert all(len({groups[i] for i in b}) == len(b) for b in batches)
    assert batches == group_batches(groups, 8, np.random.default_rng(0))
    assert batches != group_batches(groups, 8, np.random.default_rng(1))
    # one dominant group: duplicates only where unavoidable, every index still used once
    skewed = ["a"] * 30 + ["b", "c"]
    batches = group_batches(skewed, 4, np.random.default_rng(0))
    assert sorted(i for b in batches for i in b) == list(range(32))


def test_contrastive_loss_masks_same_group_negatives() -> None:
    q = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]), dim=1)
    p = q.clone()
    plain = contrastive_loss(q, p, torch.tensor([0, 1, 2]), scale=20.0)
    masked = contrastive_loss(q, p, torch.tensor([0, 0, 2]), scale=20.0)
    logits = q @ p.T * 20.0
    want = torch.nn.functional.cross_entropy(logits, torch.arange(3))
    assert plain.item() == pytest.approx(want.item(), rel=1e-5)
    assert masked.item() < plain.item()  # the near-duplicate no longer counts as a negative
    sym = contrastive_loss(q, p, torch.tensor([0, 1, 2]), scale=20.0, symmetric=True)
    assert sym.item() == pytest.approx(want.item(), rel=1e-5)  # p == q: both directions equal


def test_excluded_positives_are_not_negatives_of_that_query_only() -> None:
    q = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]), dim=1)
    p = q.clone()
    groups = torch.tensor([0, 1, 2])
    excluded = torch.tensor([[False, True, False], [False, False, False], [False, False, False]])
    got = contrastive_loss(q, p, groups, scale=20.0, excluded=excluded)
    logits = q @ p.T * 20.0
    logits[0, 1] = float("-inf")  # query 0 also liked positive 1: masked for query 0 alone
    want = torch.nn.functional.cross_entropy(logits, torch.arange(3))
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    assert _excluded_in_batch([2, 0], ["a", "b", "c"], [{"c"}, set(), {"b", "a"}]).tolist() == [
        [False, True],  # query 2 excludes "a" (pair 0's positive)
        [True, False],  # query 0 excludes "c" (pair 2's positive)
    ]


def test_config_round_trip(tmp_path: Path) -> None:
    cfg = ContrastiveTuningConfig(epochs=3, lora=True, scale=30.0)
    assert cfg.effective_learning_rate == 1e-4
    assert ContrastiveTuningConfig().effective_learning_rate == 2e-5
    cfg.save_pretrained(tmp_path)
    assert ContrastiveTuningConfig.from_pretrained(tmp_path) == cfg


def test_bad_pairs(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no training pairs"):
        tune_encoder(tiny_encoder_dir, [], tmp_path / "out")
    with pytest.raises(ValueError, match=r"pairs\[1\]"):
        tune_encoder(tiny_encoder_dir, [("a", "b"), ("a", "")], tmp_path / "out")
    with pytest.raises(ValueError, match="1 groups for 2 pairs"):
        tune_encoder(tiny_encoder_dir, [("a", "b"), ("c", "d")], tmp_path / "out", groups=["x"])


def test_full_tuning_improves_retrieval_and_loads(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    before = _accuracy(Encoder.from_pretrained(tiny_encoder_dir, device="cpu"))
    cfg = ContrastiveTuningConfig(epochs=4, batch_size=8, learning_rate=1e-3, device="cpu")
    out = tune_encoder(tiny_encoder_dir, PAIRS, tmp_path / "tuned", cfg, groups=GROUPS,
                       show_progress=False)
    tuned = Encoder.from_pretrained(out, device="cpu")
    after = _accuracy(tuned)
    assert after >= before + 0.25, (before, after)
    report = json.loads((out / "aigc_tuning.json").read_text())
    assert report["pairs"] == 40 and report["groups"] == 8 and report["kind"] == "full"
    losses = [h["loss"] for h in report["loss_history"]]
    assert losses[-1] < losses[0]
    assert ContrastiveTuningConfig.from_pretrained(out) == cfg
    # same seed, same result
    again = tune_encoder(tiny_encoder_dir, PAIRS, tmp_path / "again", cfg, groups=GROUPS,
                         show_progress=False)
    np.testing.assert_allclose(
        Encoder.from_pretrained(again, device="cpu").encode(["refund"]),
        tuned.encode(["refund"]), atol=1e-5,
    )


def test_lora_tuning_writes_adapter_that_loads(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    base = Encoder.from_pretrained(tiny_encoder_dir, device="cpu")
    cfg = ContrastiveTuningConfig(epochs=5, batch_size=8, lora=True, lora_r=8,
                                  learning_rate=5e-3, device="cpu")
    out = tune_encoder(tiny_encoder_dir, PAIRS, tmp_path / "lora", cfg, show_progress=False)
    assert (out / "adapter_config.json").is_file()
    assert not (out / "model.safetensors").exists()
    meta = json.loads((out / "adapter_config.json").read_text())
    assert meta["base_model_name_or_path"] == str(tiny_encoder_dir.resolve())
    tuned = Encoder.from_pretrained(out, device="cpu")
    assert tuned.dim == base.dim
    assert _accuracy(tuned) > _accuracy(base)
