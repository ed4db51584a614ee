"""Questions asked at the same time share one encoder pass and get their own vectors."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from aigc_apps.encode_queue import EncodeQueue, encode_queue
from apps.support.answers.answerer import embed_question


class SlowEncoder:
    """Embeds a text as [len, first letter]; the first call waits until ``release``."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.release = threading.Event()
        self.fail = False

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        if len(self.calls) == 1:
            assert self.release.wait(10)
        if self.fail:
            raise ValueError("encoder broke")
        return np.array([[len(t), ord(t[0])] for t in texts], dtype=np.float32)


def test_questions_waiting_for_a_pass_share_the_next_one() -> None:
    encoder = SlowEncoder()
    batcher = EncodeQueue(lambda: encoder)  # type: ignore[arg-type, return-value]
    texts = ["alpha", "be", "gamma ray", "delta", "epsilon!"]
    with ThreadPoolExecutor(len(texts)) as pool:
        first = pool.submit(batcher.embed, texts[0])
        while not encoder.calls:  # the first pass is running
            threading.Event().wait(0.005)
        rest = [pool.submit(batcher.embed, t) for t in texts[1:]]
        while len(batcher._waiting) < len(texts) - 1:
            threading.Event().wait(0.005)
        encoder.release.set()
        vecs = [first.result(), *(f.result() for f in rest)]
    assert encoder.calls == [texts[:1], texts[1:]]  # a lone question first, then one pass
    assert batcher.passes == 2
    for text, vec in zip(texts, vecs, strict=True):
        assert vec.tolist() == [len(text), ord(text[0])]


def test_every_question_of_a_failed_pass_gets_the_error() -> None:
    encoder = SlowEncoder()
    encoder.release.set()
    encoder.fail = True
    batcher = EncodeQueue(lambda: encoder)  # type: ignore[arg-type, return-value]
    with pytest.raises(ValueError, match="encoder broke"):
        batcher.embed("hello")
    encoder.fail = False
    assert batcher.embed("hello").tolist() == [5, ord("h")]  # the next pass works


def test_embed_question_goes_through_the_encoders_batcher() -> None:
    encoder = SlowEncoder()
    encoder.release.set()
    vec = embed_question(encoder, "where is [EMAIL] my parcel")  # type: ignore[arg-type]
    assert encoder.calls and "[EMAIL]" not in encoder.calls[0][0]
    assert vec.tolist() == [len(encoder.calls[0][0]), ord("w")]
    assert encode_queue(encoder).passes == 1  # type: ignore[arg-type]
