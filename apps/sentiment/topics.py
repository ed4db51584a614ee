"""Watch-list topics ("rates: interest rate, Fed, ECB") and how texts are matched to them.

A text belongs to a topic when one of its keywords occurs as a word (plurals too; keywords
with capitals such as "Fed" match case-sensitively so "fed up" is not about the Fed), or when
its embedding is close enough to the topic's (name and keywords), which catches
paraphrases like "the central bank raised borrowing costs". A trained topic classifier, when
there is one, adds its confident predictions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sqlalchemy import select

from aigc_apps.errors import DataError, NotFoundError
from aigc_apps.store import Database

from .store import Topic

_NAME = re.compile(r"^[\w][\w .&/-]{0,99}$")


class TextEncoder(Protocol):
    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray: ...


class TopicPredictor(Protocol):
    labels: list[str]

    def predict_proba(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray: ...


@dataclass
class WatchTopic:
    """A topic the risk team watches, with optional alert-rule overrides."""

    name: str
    keywords: list[str]
    rule: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.name = self.name.strip()
        if not _NAME.match(self.name):
            raise DataError(f"topic name {self.name!r}: use letters, digits, space, . & / -")
        self.keywords = list(dict.fromkeys(k.strip() for k in self.keywords if k.strip()))
        if not self.keywords:
            raise DataError(f"topic {self.name!r}: give at least one keyword")

    @property
    def description(self) -> str:
        return f"{self.name}: {', '.join(self.keywords)}"


@dataclass(frozen=True)
class TopicHit:
    topic: str
    method: str  # "keyword", "embedding" or "model"
    similarity: float


def parse_topics(text: str, source: str = "<topics>") -> list[WatchTopic]:
    """``name: kw1, kw2`` lines (``#`` comments) or JSON ``{name: [kw]}`` / ``[{...}]``."""
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise DataError(f"{source}: invalid JSON at line {exc.lineno} ({exc.msg})") from None
        if isinstance(data, dict):
            data = [{"name": k, "keywords": v} for k, v in data.items()]
        topics = []
        for i, item in enumerate(data, start=1):
            if not isinstance(item, dict) or "name" not in item:
                raise DataError(f"{source}: entry {i}: expected an object with 'name', 'keywords'")
            kws = item.get("keywords") or []
            kws = kws.split(",") if isinstance(kws, str) else [str(k) for k in kws]
            topics.append(WatchTopic(str(item["name"]), kws, dict(item.get("rule") or {})))
        return topics
    topics = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if ":" not in line:
            raise DataError(f"{source}: line {line_no}: expected 'name: keyword, keyword'")
        name, kws = line.split(":", 1)
        try:
            topics.append(WatchTopic(name, kws.split(",")))
        except DataError as exc:
            raise DataError(f"{source}: line {line_no}: {exc}") from None
    return topics


def load_topics_file(path: str | Path) -> list[WatchTopic]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: topics file not found")
    try:
        return parse_topics(path.read_text(encoding="utf-8"), str(path))
    except UnicodeDecodeError:
        raise DataError(f"{path}: text is not valid UTF-8") from None


def save_topics(db: Database, topics: Sequence[WatchTopic]) -> None:
    """Insert or replace topics by name (idempotent)."""
    with db.session() as s:
        for t in topics:
            row = s.get(Topic, t.name) or Topic(name=t.name)
            row.keywords_json = json.dumps(t.keywords)
            row.rule_json = json.dumps(t.rule)
            s.add(row)


def list_topics(db: Database) -> list[WatchTopic]:
    with db.session() as s:
        rows = s.scalars(select(Topic).order_by(Topic.name)).all()
        return [WatchTopic(r.name, r.keywords, r.rule) for r in rows]


def remove_topic(db: Database, name: str) -> None:
    with db.session() as s:
        row = s.get(Topic, name)
        if row is None:
            raise NotFoundError(f"unknown topic {name!r}; see `aigc sentiment topics list`")
        s.delete(row)


def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    body = r"\s+".join(re.escape(part) for part in keyword.split())
    flags = 0 if any(c.isupper() for c in keyword) else re.IGNORECASE
    return re.compile(rf"(?<!\w){body}(?:s|es|'s)?(?!\w)", flags)


class TopicMatcher:
    """Assigns texts to watch-list topics by keyword, embedding similarity and model."""

    def __init__(
        self,
        topics: Sequence[WatchTopic],
        encoder: TextEncoder | None = None,
        threshold: float = 0.4,
        topic_model: TopicPredictor | None = None,
        model_threshold: float = 0.6,
    ) -> None:
        self.topics = list(topics)
        self.encoder = encoder
        self.threshold = threshold
        self.topic_model = topic_model
        self.model_threshold = model_threshold
        self._patterns = [[_keyword_pattern(k) for k in t.keywords] for t in self.topics]
        self._topic_vecs: np.ndarray | None = None

    def _vectors(self) -> np.ndarray:
        """One unit vector per topic: mean of its description's and keywords' embeddings."""
        if self._topic_vecs is None:
            assert self.encoder is not None
            rows = []
            for t in self.topics:
                vecs = self.encoder.encode([t.description, *t.keywords])
                mean = vecs.mean(axis=0)
                rows.append(mean / (np.linalg.norm(mean) or 1.0))
            self._topic_vecs = np.asarray(rows, dtype=np.float32)
        return self._topic_vecs

    def match(self, texts: Sequence[str]) -> list[list[TopicHit]]:
        hits: list[dict[str, TopicHit]] = [{} for _ in texts]
        for i, text in enumerate(texts):
            for topic, patterns in zip(self.topics, self._patterns, strict=True):
                if any(p.search(text) for p in patterns):
                    hits[i][topic.name] = TopicHit(topic.name, "keyword", 1.0)
        if self.encoder is not None and self.topics and texts:
            sims = self.encoder.encode(list(texts)) @ self._vectors().T
            for i, row in enumerate(sims):
                for j, sim in enumerate(row):
                    name = self.topics[j].name
                    if sim >= self.threshold and name not in hits[i]:
                        hits[i][name] = TopicHit(name, "embedding", float(sim))
        if self.topic_model is not None and texts:
            probs = self.topic_model.predict_proba(list(texts))
            labels = self.topic_model.labels
            for i, row in enumerate(probs):
                j = int(np.argmax(row))
                if row[j] >= self.model_threshold and labels[j] not in hits[i]:
                    hits[i][labels[j]] = TopicHit(labels[j], "model", float(row[j]))
        return [list(h.values()) for h in hits]
