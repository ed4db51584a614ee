"""The interest model's training pairs and its plumbing on the tiny random encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from apps.recommender.content import HashingEncoder
from apps.recommender.dataset import Catalog, Interactions
from apps.recommender.interest import InterestConfig, InterestModel
from apps.recommender.recommender import Recommender, RecommenderConfig


def test_pairs_are_history_then_next_item(clustered_data: tuple[Catalog, Interactions]) -> None:
    catalog, log = clustered_data
    model = InterestModel(InterestConfig(history=2, max_pairs=10))
    pairs = model.pairs(catalog, log)
    assert len(pairs) == 10
    b = log.bounds()
    last, prev = log.item[b[1] - 1], log.item[b[1] - 3 : b[1] - 1]
    query, positive, user, item = pairs[0]  # user 0's latest step comes first
    assert (user, item) == (0, int(last)) and positive == catalog.text(int(last))
    assert query.startswith("recently liked: ") and catalog.titles[int(prev[-1])] in query
    assert query.index(catalog.titles[int(prev[-1])]) < query.index(catalog.titles[int(prev[0])])


def test_interest_model_trains_and_serves(
    clustered_data: tuple[Catalog, Interactions], tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    catalog, log = clustered_data
    cfg = InterestConfig(base=str(tiny_encoder_dir), max_pairs=40, batch_size=8, max_length=32)
    config = RecommenderConfig(encoder="hashing", interest=cfg)
    model = Recommender(config).fit(catalog, log, encoder=HashingEncoder())
    assert model.interest is not None and model.interest.item_V.shape[0] == len(catalog)
    assert model.info["interest_pairs"] == 40
    vec = model.interest.user_vectors([np.array([0, 1, 2])])[0]
    assert np.isclose(np.linalg.norm(vec), 1.0, atol=1e-4)
    before = model.recommend("user0").to_dict()
    model.save_pretrained(tmp_path / "m")
    loaded = Recommender.from_pretrained(tmp_path / "m", encoder=HashingEncoder())
    assert loaded.interest is not None and (tmp_path / "m" / "interest_encoder").is_dir()
    after = loaded.recommend("user0").to_dict()
    assert [i["item_id"] for i in after["items"]] == [i["item_id"] for i in before["items"]]


def test_interest_model_with_lora_saves_an_adapter_and_reloads(
    clustered_data: tuple[Catalog, Interactions], tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    """``InterestConfig(lora=True)`` goes through the core's PEFT path, with the LoRA knobs
    in the core's spelling (alpha follows the rank), and survives save/load."""
    catalog, log = clustered_data
    cfg = InterestConfig(
        base=str(tiny_encoder_dir), max_pairs=24, batch_size=8, max_length=32, lora=True, lora_r=4
    )
    model = Recommender(RecommenderConfig(encoder="hashing", interest=cfg)).fit(
        catalog, log, encoder=HashingEncoder()
    )
    assert model.interest is not None
    adapter = json.loads((model.interest.folder / "adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"]) == (4, 8)
    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "interest_encoder" / "adapter_config.json").is_file()
    loaded = Recommender.from_pretrained(tmp_path / "m", encoder=HashingEncoder())
    assert loaded.interest is not None
    assert np.allclose(loaded.interest.item_V, model.interest.item_V, atol=1e-5)
    history = [np.array([0, 1, 2])]
    assert np.allclose(
        loaded.interest.user_vectors(history), model.interest.user_vectors(history), atol=1e-4
    )


def test_interest_config_defaults_and_lora_knobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIGC_ENCODER", "my-encoder")
    assert InterestConfig().base == "my-encoder"  # read when the config is made
    assert RecommenderConfig().encoder == "my-encoder"
    assert InterestConfig().lora_knobs() == {}  # the core's contrastive-tuning defaults
    knobs = InterestConfig(lora_r=8, lora_dropout=0.0).lora_knobs()
    assert knobs == {"lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0}
    assert InterestConfig(lora_r=8, lora_alpha=4).lora_knobs()["lora_alpha"] == 4
    saved = RecommenderConfig.from_dict(RecommenderConfig(encoder="hashing").to_dict())
    assert saved.encoder == "hashing" and saved.interest == InterestConfig()
