from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aigc_apps.embeddings import Encoder

TEXTS = [
    "hello how can i reset my password",
    "refund",
    "the delivery of my order is very slow today and i am not happy about it at all",
    "card payment error",
    "thanks",
]


@pytest.fixture(scope="module")
def encoder(tiny_encoder_dir: Path) -> Encoder:
    return Encoder.from_pretrained(tiny_encoder_dir, device="cpu")


def test_shape_dtype_and_unit_norm(encoder: Encoder) -> None:
    vecs = encoder.encode(TEXTS)
    assert vecs.shape == (len(TEXTS), encoder.dim) == (5, 32)
    assert vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vecs[0], vecs[1])


def test_batching_does_not_change_vectors_and_order_is_kept(encoder: Encoder) -> None:
    full = encoder.encode(TEXTS, batch_size=64)
    np.testing.assert_allclose(encoder.encode(TEXTS, batch_size=1), full, atol=1e-5)
    np.testing.assert_allclose(encoder.encode(TEXTS, batch_size=2), full, atol=1e-5)
    one_by_one = np.concatenate([encoder.encode([t]) for t in TEXTS])
    np.testing.assert_allclose(one_by_one, full, atol=1e-5)
    np.testing.assert_allclose(encoder.encode(TEXTS[::-1]), full[::-1], atol=1e-5)


def test_empty_single_and_bad_input(encoder: Encoder) -> None:
    assert encoder.encode([]).shape == (0, encoder.dim)
    np.testing.assert_allclose(encoder.encode("refund"), encoder.encode(["refund"]), atol=1e-6)
    with pytest.raises(ValueError, match=r"texts\[1\] is int"):
        encoder.encode(["ok", 3])  # type: ignore[list-item]


def test_long_texts_are_truncated(tiny_encoder_dir: Path) -> None:
    short = Encoder.from_pretrained(tiny_encoder_dir, device="cpu", max_length=8)
    long_text = "please help " * 600  # far beyond the 512 positions of the model
    vecs = short.encode([long_text, long_text + "refund"])
    np.testing.assert_allclose(vecs[0], vecs[1], atol=1e-6)  # both cut at 8 tokens


def test_save_pretrained_round_trip(encoder: Encoder, tmp_path: Path) -> None:
    out = encoder.save_pretrained(tmp_path / "copy")
    again = Encoder.from_pretrained(out, device="cpu")
    np.testing.assert_allclose(again.encode(TEXTS), encoder.encode(TEXTS), atol=1e-6)


def test_cached_returns_one_shared_instance(tiny_encoder_dir: Path) -> None:
    a = Encoder.cached(str(tiny_encoder_dir), device="cpu")
    assert Encoder.cached(str(tiny_encoder_dir), device="cpu") is a


@pytest.mark.slow
def test_minilm_paraphrases_are_closer_than_unrelated_sentences() -> None:
    enc = Encoder.from_pretrained("minilm-l6", device="cpu")
    assert enc.dim == 384
    a, b, c = enc.encode(
        [
            "How do I reset my password?",
            "I forgot my password, how can I change it?",
            "The film had wonderful music and a moving story.",
        ]
    )
    assert a @ b > 0.6
    assert a @ b > a @ c + 0.3
