"""A small FAQ to answer from: find the entry a customer's own wording asks about, ground on it.

The core demo answers "How long do I have to return a jacket?" from the sample FAQ. Asked
bare, the fine-tuned 135M model makes a figure up ("10 days"; the FAQ says 60). Grounded in
the nearest *whole sample* (question and answer embedded together with MiniLM) it was given
"I returned a jacket two weeks ago and haven't got my refund." -- another customer's words
("returned", "jacket") won over what the question asks -- and said "12 weeks".

So the index holds the FAQ's *answers*: a question is about the policy that answers it, not
about another customer's question with the same nouns. Which encoder embeds them is chosen by
a rule on the FAQ itself, not on any test question (``self_retrieval``): each entry's own
question must find its own answer. On ``data/core/sft_sample.jsonl`` all-MiniLM-L6-v2 finds
50 of 60 and all-mpnet-base-v2 53 of 60, so mpnet wins, at about 4-5x MiniLM's cost to embed
(seconds for 60 answers). A model this small still adds figures of its own even when
grounded, so ``unsupported_figures`` names the numbers of an answer that its passage lacks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aigc_apps.errors import AigcError

if TYPE_CHECKING:
    from aigc_apps.embeddings import Encoder


@dataclass(frozen=True)
class FaqEntry:
    """One question and the answer the business wrote for it."""

    question: str
    answer: str


def read_faq(path: str | Path) -> list[FaqEntry]:
    """The entries of a prompt/response file (the SFT sample's format)."""
    from aigc_apps.data import read_records

    records = read_records(path, required=["prompt", "response"]).records
    return [FaqEntry(str(r["prompt"]), str(r["response"])) for r in records]


def self_retrieval(
    encoder: Encoder, entries: Sequence[FaqEntry], answers: np.ndarray | None = None
) -> float:
    """Share of entries whose own question's nearest answer is their own answer
    (``answers``: the answers' embeddings, when the caller has them already).

    The rule for choosing an encoder from the FAQ alone: the customers' questions are not
    known in advance, the FAQ's questions are the closest stand-in for them.
    """
    if not entries:
        raise AigcError("an empty FAQ has nothing to retrieve")
    questions = encoder.encode([e.question for e in entries])
    if answers is None:
        answers = encoder.encode([e.answer for e in entries])
    nearest = (questions @ answers.T).argmax(axis=1)
    return float((nearest == np.arange(len(entries))).mean())


def choose_encoder(
    names: Sequence[str], entries: Sequence[FaqEntry]
) -> tuple[Encoder, dict[str, float]]:
    """The encoder with the best ``self_retrieval`` (the first, cheapest, on a tie), and the
    score of each one that loaded (see :func:`choose_index`)."""
    index, scores = choose_index(names, entries)
    return index.encoder, scores


def choose_index(
    names: Sequence[str], entries: Sequence[FaqEntry]
) -> tuple[FaqIndex, dict[str, float]]:
    """The FAQ index of the encoder with the best ``self_retrieval`` (the first, cheapest, on
    a tie): its answers are embedded once, for the score and the index alike.

    A name that cannot be loaded here (a bundled model whose packages are not installed)
    is skipped; the returned dict has the score of each one that loaded.
    """
    from aigc_apps.embeddings import Encoder

    best: FaqIndex | None = None
    best_score = -1.0
    scores: dict[str, float] = {}
    for name in dict.fromkeys(names):
        try:
            encoder = Encoder.from_pretrained(name)
        except AigcError:
            continue
        index = FaqIndex(encoder, entries)
        scores[name] = self_retrieval(encoder, entries, index.answers)
        if scores[name] > best_score:
            best, best_score = index, scores[name]
    if best is None:
        raise AigcError(f"none of the encoders {list(names)} could be loaded")
    return best, scores


class FaqIndex:
    """The FAQ's answers embedded once; ``search`` gives the entries nearest a question."""

    def __init__(self, encoder: Encoder, entries: Sequence[FaqEntry]) -> None:
        from aigc_apps.index import VectorIndex

        self.encoder, self.entries = encoder, list(entries)
        self.answers = encoder.encode([e.answer for e in self.entries])
        self.index = VectorIndex(encoder.dim)
        self.index.add(range(len(self.entries)), self.answers)

    def search(self, question: str, k: int = 1) -> list[tuple[float, FaqEntry]]:
        """Up to ``k`` (score, entry) pairs, nearest first."""
        scores, ids = self.index.search(self.encoder.encode([question]), k)
        return [
            (float(s), self.entries[int(i)])
            for s, i in zip(scores[0], ids[0], strict=True)
            if i >= 0
        ]


def grounded_prompt(entry: FaqEntry, question: str) -> str:
    """The user message that puts the entry's answer before the customer's question.

    In the user turn, not the system prompt: with the passage as a system prompt the
    fine-tuned 135M model answered "30 days" and a "20-day return policy" of its own.
    """
    return f"FAQ entry: {entry.answer}\n\nUsing only the FAQ entry above, answer: {question}"


_SMALL = "zero one two three four five six seven eight nine ten eleven twelve"
_WORD_NUMBERS = {w: str(n) for n, w in enumerate(_SMALL.split(" "))} | {
    "twenty": "20",
    "thirty": "30",
    "forty": "40",
    "fifty": "50",
    "sixty": "60",
    "ninety": "90",
}
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*|\b(?:" + "|".join(_WORD_NUMBERS) + r")\b", re.IGNORECASE)


def figures(text: str) -> set[str]:
    """The numbers a text states, digits or words ("two" = "2", "1,000" = "1000")."""
    found = set()
    for match in _NUMBER.findall(text):
        word = match.lower()
        found.add(_WORD_NUMBERS.get(word, word.replace(",", "")))
    return found


def unsupported_figures(answer: str, passage: str) -> list[str]:
    """The numbers of ``answer`` that ``passage`` does not state (made up), sorted."""
    return sorted(figures(answer) - figures(passage), key=lambda f: (len(f), f))
