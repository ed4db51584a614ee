"""The plain records of the support knowledge index: an entry's metadata, how neighbours
are scored, a ranking and an ingest report.

Kept apart from :mod:`.retrieval` (which re-exports them) so that module stays about
storing and searching the vectors.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EntryMeta:
    id: int
    kind: str
    intent: str | None
    text: str
    answer: str | None
    title: str | None
    source: str

    @property
    def key(self) -> str:
        """What a question entry votes for: its intent, or the dialogue pair itself."""
        return self.intent if self.intent is not None else f"pair:{self.id}"


@dataclass
class RetrievalConfig:
    """How neighbours become intent scores.

    The score of an intent is its best neighbour's similarity plus ``vote_weight`` times the
    log of its softmax-weighted votes among the ``k`` nearest questions (kNN voting), plus
    ``answer_weight`` times the question's similarity to the intent's answer text (a
    dialogue pair's: its answer), plus ``head_weight`` times the log probability from the
    linear intent head, plus ``lexical_weight`` times that of the lexical (TF-IDF) head,
    each when fitted.

    The defaults were chosen on the validation half of data/support/customer_questions.csv
    (``benchmarks/support_faq.py``, mpnet-base, confidence with the margin): the answer text
    at weight 1.0 and the lexical head at 0.03 answer 96 of 168 questions right with at
    most 3% wrong, against 35 for the nearest example alone.
    """

    k: int = 10
    vote_weight: float = 0.0
    vote_temperature: float = 20.0
    head_weight: float = 0.0
    lexical_weight: float = 0.03
    answer_weight: float = 1.0


@dataclass
class Ranking:
    """Intents (or dialogue pairs) for one query, best first, with the features of the best."""

    keys: list[str]
    scores: list[float]
    top_entry: dict[str, EntryMeta] = field(default_factory=dict)
    neighbour_ids: list[int] = field(default_factory=list)

    @property
    def margin(self) -> float:
        if not self.scores:
            return 0.0
        return self.scores[0] - (self.scores[1] if len(self.scores) > 1 else 0.0)


@dataclass
class IngestReport:
    files: list[str] = field(default_factory=list)
    added_sources: int = 0
    replaced_sources: int = 0
    unchanged_sources: int = 0
    entries_added: int = 0
    entries_removed: int = 0
    skipped: list[str] = field(default_factory=list)
