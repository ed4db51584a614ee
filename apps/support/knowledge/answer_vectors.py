"""Embeddings of the intents' answer texts: a question can match what an answer says.

A company's FAQ has a few example questions per answer, and customers ask in their own
words. The answer text is the fullest description of what an intent covers ("we have stores
in Portland, Denver, Boulder ..."), so the bot scores each intent by its nearest example
question *and* by the similarity of the question to the intent's answer
(``RetrievalConfig.answer_weight``, chosen on validation questions: see
``benchmarks/support_faq.py``).

The vectors are cached beside the index (``answers.npz``), keyed by the encoder and each
answer's text, so a worker that opens the index embeds only answers that changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aigc_apps.fileio import atomic_file

if TYPE_CHECKING:
    from aigc_apps.embeddings import Encoder


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class AnswerVectors:
    """Unit vectors of each answerable intent's answer text, for one encoder."""

    def __init__(self, path: Path, encoder_tag: str) -> None:
        self.path = Path(path)
        self.encoder_tag = encoder_tag
        self.keys: list[str] = []
        self.digests: list[str] = []
        self.matrix = np.zeros((0, 0), dtype=np.float32)
        self._read()

    def _read(self) -> None:
        """The cached vectors, if they were made by this encoder (anything else: none)."""
        try:
            with np.load(self.path, allow_pickle=False) as z:
                if str(z["encoder_tag"]) != self.encoder_tag:
                    return
                self.keys = [str(k) for k in z["keys"]]
                self.digests = [str(d) for d in z["digests"]]
                self.matrix = z["matrix"].astype(np.float32)
        except (OSError, KeyError, ValueError):  # absent or damaged: a cache, re-embedded
            self.keys, self.digests = [], []

    def update(self, answers: Mapping[str, str | None], encoder: Encoder) -> bool:
        """Match the vectors to ``answers`` (intent -> answer text): embed new or changed
        answers, drop the ones gone; returns whether anything changed."""
        want = {k: a for k, a in answers.items() if a}
        cached = {
            k: (d, row) for row, (k, d) in enumerate(zip(self.keys, self.digests, strict=True))
        }
        keys = sorted(want)
        digests = [_digest(want[k]) for k in keys]
        todo = [n for n, (k, d) in enumerate(zip(keys, digests, strict=True))
                if cached.get(k, ("",))[0] != d]
        if not todo and len(keys) == len(self.keys):
            return False
        dim = int(encoder.dim)
        matrix = np.zeros((len(keys), dim), dtype=np.float32)
        for n, k in enumerate(keys):
            if n not in todo:
                matrix[n] = self.matrix[cached[k][1]]
        if todo:
            matrix[todo] = encoder.encode([want[keys[n]] for n in todo])
        self.keys, self.digests, self.matrix = keys, digests, matrix
        self._write()
        return True

    def _write(self) -> None:
        try:
            with atomic_file(self.path, suffix=".npz") as tmp:
                np.savez(
                    tmp,
                    keys=np.array(self.keys),
                    digests=np.array(self.digests),
                    matrix=self.matrix,
                    encoder_tag=np.array(self.encoder_tag),
                )
        except OSError:  # a read-only workspace serves from memory
            pass

    def similarities(self, vec: np.ndarray) -> dict[str, float]:
        """Cosine similarity of a question vector to every answer."""
        if not self.keys:
            return {}
        return dict(zip(self.keys, (self.matrix @ vec).tolist(), strict=True))
