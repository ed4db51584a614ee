"""What ingest needs from a sentiment model, and label-name normalisation.

Anything with ``name`` and ``predict_proba(texts) -> [n, 3]`` (columns in :data:`LABELS`
order) can score a stream: the fine-tuned :class:`~apps.sentiment.classifier.SentimentModel`
in production, :class:`LexiconScorer` in tests and offline dry runs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

LABELS: tuple[str, str, str] = ("negative", "neutral", "positive")

_ALIASES = {
    "negative": "negative", "neg": "negative", "bearish": "negative", "-1": "negative",
    "neutral": "neutral", "neu": "neutral", "0": "neutral", "none": "neutral",
    "positive": "positive", "pos": "positive", "bullish": "positive", "1": "positive",
    "+1": "positive",
}


def normalize_label(value: object) -> str | None:
    """Canonical sentiment label for common spellings, ``None`` when unknown."""
    return _ALIASES.get(str(value).strip().lower())


@dataclass(frozen=True)
class Prediction:
    """What one row of ``predict_proba`` means: the label, each probability, and the score.

    ``score = p_positive - p_negative`` (in [-1, 1]) is what trends average; stored records
    and ``score`` answers both come from here, so they cannot disagree.
    """

    label: str
    p_negative: float
    p_neutral: float
    p_positive: float

    @classmethod
    def from_probabilities(cls, row: Sequence[float] | np.ndarray) -> Prediction:
        """``row`` in :data:`LABELS` order."""
        p = [float(v) for v in row]
        return cls(LABELS[int(np.argmax(p))], p[0], p[1], p[2])

    @property
    def score(self) -> float:
        return self.p_positive - self.p_negative

    @property
    def probabilities(self) -> dict[str, float]:
        return dict(zip(LABELS, (self.p_negative, self.p_neutral, self.p_positive), strict=True))

    def to_dict(self, digits: int = 4) -> dict[str, Any]:
        return {
            "label": self.label,
            "probabilities": {k: round(v, digits) for k, v in self.probabilities.items()},
            "score": round(self.score, digits),
        }


def predictions(probabilities: np.ndarray) -> list[Prediction]:
    """One :class:`Prediction` per row of a scorer's ``predict_proba`` output."""
    return [Prediction.from_probabilities(row) for row in np.asarray(probabilities)]


@runtime_checkable
class Scorer(Protocol):
    """Scores texts; columns of the result follow :data:`LABELS`."""

    name: str

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...


class LexiconScorer:
    """Deterministic word-list scorer: a stand-in where the model is not the point.

    Each negative/positive word shifts the text's probabilities; no word means neutral.
    """

    NEGATIVE = frozenset(
        str.split(
            "loss losses fall falls fell drop drops dropped plunge plunges plunged slump "
            "default defaults downgrade downgraded lawsuit fraud fine fined probe warning "
            "warns weak decline declines declined cut cuts layoffs bankruptcy crisis risk miss "
            "misses fears fear suspends shortfall emergency slow slows sink sinks tumble slide "
            "collapse defaults lays losses deteriorates outage"
        )
    )
    POSITIVE = frozenset(
        str.split(
            "gain gains rise rises rose jump jumps jumped surge surges record profit profits "
            "beat beats upgrade upgraded growth grow grows strong rally rallies improve improved"
        )
    )

    def __init__(self, name: str = "lexicon") -> None:
        self.name = name

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), 3), dtype=np.float32)
        for i, text in enumerate(texts):
            words = re.findall(r"[a-z]+", text.lower())
            neg = sum(w in self.NEGATIVE for w in words)
            pos = sum(w in self.POSITIVE for w in words)
            logits = np.array([neg - pos, 0.5, pos - neg], dtype=np.float32) * 2.0
            exp = np.exp(logits - logits.max())
            out[i] = exp / exp.sum()
        return out
