"""Turn company files into knowledge entries: answer templates, document chunks, dialogue pairs.

Parsing is separate from storing: each file becomes a :class:`SourceItems` (entries plus
skipped rows) and :func:`apply_source` writes it inside the caller's transaction. A file
whose content hash is unchanged is a no-op; a changed file keeps the entries it still has
(same ids, no re-embedding), drops the ones it lost and adds the new ones. An entry's
identity is its content (:attr:`NewEntry.hash`): the same entry read from another path or
another file is the same knowledge (see :mod:`apps.support.knowledge.retrieval`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aigc_apps.data import Skip, content_hash, detect_format, parse_rows, read_records
from aigc_apps.errors import DataError
from aigc_apps.store import utcnow

from ..answers.pii import mask_pii
from ..store import Entry, Intent, Source
from .chunking import DOC_SUFFIXES, chunk_text, read_document

KINDS = ("auto", "templates", "documents", "dialogues")
USER_ROLES = {"user", "customer", "client", "human"}
AGENT_ROLES = {"assistant", "agent", "support", "bot", "staff"}


@dataclass(frozen=True)
class NewEntry:
    """An entry before it has a database id."""

    kind: str  # example | chunk | pair
    text: str
    intent: str | None = None
    answer: str | None = None
    title: str | None = None
    position: int = 0

    @property
    def hash(self) -> str:
        """The entry's identity: its content, never the path it was read from. A chunk's
        title is embedded with it (content); a dialogue pair's only says which file and row
        it came from, so it is left out."""
        title = "" if self.kind == "pair" else self.title or ""
        return content_hash([self.kind, self.intent or "", self.text, self.answer or "", title])


@dataclass
class SourceItems:
    """Everything one file contributes, plus the rows that had to be skipped."""

    kind: str
    uri: str
    content_hash: str
    title: str | None = None
    entries: list[NewEntry] = field(default_factory=list)
    answers: dict[str, str] = field(default_factory=dict)  # intent -> template answer
    skipped: list[Skip] = field(default_factory=list)


@dataclass
class ApplyResult:
    status: str  # added | unchanged | replaced
    added: list[Entry] = field(default_factory=list)
    removed_ids: list[int] = field(default_factory=list)


def split_questions(cell: Any) -> list[str]:
    """Example questions in one cell, separated by ``|`` or new lines."""
    if isinstance(cell, list):
        return [str(q).strip() for q in cell if str(q).strip()]
    return [q.strip() for q in re.split(r"\s*\|\s*|\n", str(cell)) if q.strip()]


def templates_from_records(
    records: Iterable[dict[str, Any]],
    *,
    uri: str,
    text_col: str = "text",
    intent_col: str = "intent",
    answer_col: str | None = "answer",
    skipped: Sequence[Skip] = (),
) -> SourceItems:
    """Templates from rows with example question(s), an intent and an optional answer."""
    rows = list(records)
    entries: dict[str, NewEntry] = {}
    answers: dict[str, str] = {}
    skips = list(skipped)
    for n, row in enumerate(rows, start=1):
        intent = str(row.get(intent_col) or "").strip()
        questions = split_questions(row.get(text_col) or "")
        if not intent or not questions:
            skips.append(Skip(n, f"empty {intent_col if not intent else text_col!r}"))
            continue
        answer = str(row.get(answer_col) or "").strip() if answer_col else ""
        if answer:
            answers[intent] = answer
        for q in questions:
            e = NewEntry("example", mask_pii(q), intent=intent[:200])
            entries.setdefault(e.hash, e)
    digest = content_hash(
        [e.hash for e in entries.values()] + sorted(f"{k}\x01{v}" for k, v in answers.items())
    )
    return SourceItems("templates", uri, digest, None, list(entries.values()), answers, skips)


def load_templates(
    path: Path,
    text_col: str = "text",
    intent_col: str = "intent",
    answer_col: str | None = "answer",
) -> SourceItems:
    """Read a templates CSV/TSV/JSONL/JSON file; the answer column may be absent."""
    result = read_records(path, required=[text_col, intent_col])
    has_answer = answer_col is not None and any(answer_col in r for r in result.records)
    return templates_from_records(
        result.records,
        uri=str(path.resolve()),
        text_col=text_col,
        intent_col=intent_col,
        answer_col=answer_col if has_answer else None,
        skipped=result.skipped,
    )


def load_document(path: Path, max_words: int = 120, overlap: int = 25) -> SourceItems:
    """Chunk a Markdown/TXT/HTML document; an empty document is a DataError."""
    title, text = read_document(path)
    if not text.strip():
        raise DataError(f"{path}: document is empty")
    chunks = chunk_text(text, title, max_words=max_words, overlap=overlap)
    if not chunks:
        raise DataError(f"{path}: document has no text (only headings?)")
    entries = [
        NewEntry(
            "chunk",
            c.text,
            title=c.title if c.section == c.title else f"{c.title} > {c.section}"[:500],
            position=c.position,
        )
        for c in chunks
    ]
    return SourceItems("document", str(path.resolve()), content_hash([text]), title, entries)


def _turns(record: dict[str, Any]) -> list[tuple[str, str]]:
    raw = record.get("turns") or record.get("messages") or []
    out = []
    for t in raw if isinstance(raw, list) else []:
        if isinstance(t, dict):
            role = str(t.get("role") or t.get("speaker") or "").lower()
            text = str(t.get("text") or t.get("content") or "").strip()
            if text:
                out.append((role, text))
    return out


def dialogue_pairs(turns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(question, answer) pairs: customer turns followed by the agent turns that answer them."""
    pairs: list[tuple[str, str]] = []
    question: list[str] = []
    answer: list[str] = []
    for role, text in [*turns, ("user", "")]:
        if role in USER_ROLES:
            if question and answer:
                pairs.append((" ".join(question), " ".join(answer)))
                question = []
            if answer:
                question, answer = [], []
            if text:
                question.append(text)
        elif role in AGENT_ROLES and question:
            answer.append(text)
    return pairs


def load_dialogues(path: Path) -> SourceItems:
    """Question/best-answer pairs from a JSONL of conversations (``turns`` or ``messages``)."""
    fmt = detect_format(path)
    # the core's own file checks (missing, empty, binary); rows keep their line numbers
    from aigc_apps.data import read_file_bytes

    rows, skips = parse_rows(read_file_bytes(path), fmt, str(path))
    entries: dict[str, NewEntry] = {}
    for row_no, row in rows:
        turns = _turns(row) if isinstance(row, dict) else []
        pairs = dialogue_pairs(turns)
        if not pairs:
            skips.append(Skip(row_no, "no customer question followed by an agent answer"))
            continue
        for q, a in pairs:
            e = NewEntry("pair", mask_pii(q), answer=mask_pii(a), title=f"{path.name}:{row_no}")
            entries.setdefault(e.hash, e)
    if not entries:
        raise DataError(f"{path}: no usable dialogues ({skips[0] if skips else 'empty'})")
    digest = content_hash(sorted(entries))
    return SourceItems(
        "dialogues",
        str(path.resolve()),
        digest,
        path.name,
        list(entries.values()),
        skipped=sorted(skips, key=lambda s: s.row),
    )


def _looks_like_dialogues(path: Path) -> bool:
    head = path.read_text(encoding="utf-8-sig", errors="replace")[:4000]
    return bool(re.search(r'"(turns|messages)"\s*:', head))


def discover(path: Path, kind: str = "auto") -> list[tuple[str, Path]]:
    """``(kind, file)`` for a file or every supported file under a folder."""
    if kind not in KINDS:
        raise DataError(f"unknown kind {kind!r} (use one of {', '.join(KINDS)})")
    if not path.exists():
        raise DataError(f"{path}: not found")
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    found = []
    for f in files:
        suffix = f.suffix.lower()
        if kind in ("documents",) or (kind == "auto" and suffix in DOC_SUFFIXES):
            if suffix in DOC_SUFFIXES:
                found.append(("documents", f))
        elif suffix in (".csv", ".tsv", ".jsonl", ".ndjson", ".json"):
            if kind == "auto":
                dialog = suffix in (".jsonl", ".ndjson", ".json") and _looks_like_dialogues(f)
                found.append(("dialogues" if dialog else "templates", f))
            elif kind in ("templates", "dialogues"):
                found.append((kind, f))
    if not found:
        raise DataError(f"{path}: no supported files (CSV/TSV/JSONL/JSON, .md/.txt/.html)")
    return found


def load_sources(
    paths: Sequence[str | Path],
    kind: str = "auto",
    text_col: str = "text",
    intent_col: str = "intent",
    answer_col: str | None = "answer",
) -> tuple[list[SourceItems], list[str]]:
    """Parse files and folders into :class:`SourceItems`, plus the files skipped.

    A file named on its own that cannot be used is an error (nothing is ingested); one
    found inside a folder (an empty document among many) is a counted skip instead, so
    the rest of the folder is usable. A folder with no usable file at all is an error.
    """
    items: list[SourceItems] = []
    file_skips: list[str] = []
    for path in map(Path, paths):
        for found_kind, file in discover(path, kind):
            try:
                if found_kind == "templates":
                    items.append(load_templates(file, text_col, intent_col, answer_col))
                elif found_kind == "dialogues":
                    items.append(load_dialogues(file))
                else:
                    items.append(load_document(file))
            except DataError as exc:
                if not path.is_dir():
                    raise
                file_skips.append(f"{exc} (file skipped)")
    if file_skips and not items:
        more = f" (+{len(file_skips) - 1} more)" if len(file_skips) > 1 else ""
        raise DataError(f"no usable files: {file_skips[0]}{more}")
    return items, file_skips


def apply_source(s: Session, items: SourceItems) -> ApplyResult:
    """Write ``items`` in session ``s``; unchanged content is a no-op (idempotent re-ingest)."""
    src = s.scalar(select(Source).where(Source.kind == items.kind, Source.uri == items.uri))
    if src is not None and src.content_hash == items.content_hash:
        return ApplyResult("unchanged")
    status = "added" if src is None else "replaced"
    if src is None:
        src = Source(kind=items.kind, uri=items.uri, title=items.title, content_hash="")
        s.add(src)
        s.flush()
    src.content_hash, src.title, src.ingested_at = items.content_hash, items.title, utcnow()
    intents = intents_by_name(s, {e.intent for e in items.entries if e.intent} | set(items.answers))
    for name, answer in items.answers.items():
        if intents[name].answer != answer:
            intents[name].answer, intents[name].updated_at = answer, utcnow()
    old = {e.content_hash: e for e in s.scalars(select(Entry).where(Entry.source_id == src.id))}
    new = {e.hash: e for e in items.entries}
    result = ApplyResult(status)
    for entry in _hand_over(s, src.id, {h: e for h, e in old.items() if h not in new}):
        result.removed_ids.append(entry.id)
        s.delete(entry)
    for h, e in new.items():
        if h in old:
            old[h].position = e.position
            continue
        row = Entry(
            source_id=src.id,
            kind=e.kind,
            text=e.text,
            answer=e.answer,
            title=e.title,
            position=e.position,
            content_hash=h,
            intent_id=intents[e.intent].id if e.intent else None,
        )
        s.add(row)
        result.added.append(row)
    s.flush()
    return result


def _hand_over(s: Session, source_id: int, gone: dict[str, Entry]) -> list[Entry]:
    """The rows of ``gone`` (hash -> row) whose content no other source has.

    Where another source has a copy, the older of the two rows stays, as that source's row:
    the entry keeps the id it is indexed under, so nothing is re-embedded or removed.
    """
    if not gone:
        return []
    copies: dict[str, Entry] = {}
    for row in s.scalars(
        select(Entry)
        .where(Entry.content_hash.in_(gone), Entry.source_id != source_id)
        .order_by(Entry.id)
    ):
        copies.setdefault(row.content_hash, row)
    moved = []
    for h, copy in copies.items():
        if gone[h].id < copy.id:
            s.delete(copy)
            moved.append((gone[h], copy.source_id, copy.position))
        else:
            s.delete(gone[h])
    s.flush()  # the copies' (source, content) keys are free before their older rows move in
    for row, new_source, position in moved:
        row.source_id, row.position = new_source, position
    return [row for h, row in gone.items() if h not in copies]


def intents_by_name(s: Session, names: set[str]) -> dict[str, Intent]:
    found = (
        {i.name: i for i in s.scalars(select(Intent).where(Intent.name.in_(names)))}
        if names
        else {}
    )
    for name in names - set(found):
        found[name] = Intent(name=name)
        s.add(found[name])
    s.flush()
    return found
