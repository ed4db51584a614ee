"""Quarantine: passages that read like instructions wait for an admin instead of being indexed.

At ingest, :func:`screen` takes every passage that
:func:`~apps.support.knowledge.injection.find_injection`
flags out of the sources before they are written, and records it as a
:class:`~apps.support.store.QuarantinedPassage`. The knowledge tables then hold released
knowledge only, so the FAISS index, the intent heads, calibration and tuning never see a
held passage. An admin releases a false positive with :func:`decide` (``approved``): it is
written as the entry it would have been, and later ingests of its source let it through. A
decision follows the passage's text, so the same passage in another file inherits it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from aigc_apps.data import content_hash
from aigc_apps.errors import DataError, NotFoundError
from aigc_apps.store import Database, utcnow

from ..answers.pii import mask_pii
from ..answers.reply import BotReply
from ..store import BlockedAnswer, Entry, Intent, QuarantinedPassage, Source, Turn
from .generation import bump
from .ingest import SourceItems, intents_by_name
from .injection import find_injection
from .retrieval import IngestReport

STATUSES = ("pending", "approved", "rejected")
ANSWER = "answer"  # the kind of a held template answer (an intent's text, not an entry)


@dataclasses.dataclass
class ScreenedIngestReport(IngestReport):
    """An ingest report that also counts the passages held in quarantine."""

    quarantined: int = 0


@dataclasses.dataclass(frozen=True)
class Flagged:
    """One passage of one source that reads like an instruction."""

    kind: str
    text: str
    content_hash: str
    reason: str
    intent: str | None = None
    answer: str | None = None
    title: str | None = None
    position: int = 0


def _answer_hash(intent: str, answer: str) -> str:
    return content_hash([ANSWER, intent, answer])


def flagged_passages(item: SourceItems) -> list[Flagged]:
    """The passages of ``item`` that read like instructions (title, text and answer)."""
    found = []
    for e in item.entries:
        reason = _finding(e.title, e.text, e.answer)
        if reason is not None:
            found.append(
                Flagged(e.kind, e.text, e.hash, reason, e.intent, e.answer, e.title, e.position)
            )
    for intent, answer in item.answers.items():
        reason = _finding(answer)
        if reason is not None:
            found.append(Flagged(ANSWER, answer, _answer_hash(intent, answer), reason, intent))
    return found


def _decisions(s: Session, hashes: Iterable[str]) -> dict[str, str]:
    """The decision already taken on each passage (by its text, in any source)."""
    rows = s.execute(
        select(QuarantinedPassage.content_hash, QuarantinedPassage.status).where(
            QuarantinedPassage.content_hash.in_(set(hashes)),
            QuarantinedPassage.status != "pending",
        )
    )
    return dict(rows.all())


def screen(db: Database, items: Sequence[SourceItems]) -> tuple[list[SourceItems], int]:
    """``items`` without the passages held in quarantine, and how many were held.

    Each flagged passage gets (or keeps) a row for its source; one approved before passes
    through. Rows of a passage its source no longer has are dropped. Written in one
    transaction before the knowledge itself, so a crash in between leaves a pending row
    for a passage that is not stored, never a passage that is stored and unlisted.
    """
    screened: list[SourceItems] = []
    held = 0
    with db.session() as s:
        for item in items:
            flagged = {f.content_hash: f for f in flagged_passages(item)}
            rows = {
                r.content_hash: r
                for r in s.scalars(
                    select(QuarantinedPassage).where(
                        QuarantinedPassage.source_kind == item.kind,
                        QuarantinedPassage.source_uri == item.uri,
                    )
                )
            }
            decided = _decisions(s, set(flagged) - set(rows))
            for h, row in rows.items():
                if h not in flagged:
                    s.delete(row)
            for h, f in flagged.items():
                if h not in rows:
                    rows[h] = _row(item.kind, item.uri, f, decided.get(h, "pending"))
                    s.add(rows[h])
            keep = {h for h in flagged if rows[h].status != "approved"}
            held += len(keep)
            screened.append(_without(item, keep))
    return screened, held


def _row(kind: str, uri: str, f: Flagged, status: str = "pending") -> QuarantinedPassage:
    return QuarantinedPassage(
        source_kind=kind,
        source_uri=uri,
        kind=f.kind,
        intent=f.intent,
        text=f.text,
        answer=f.answer,
        title=f.title,
        position=f.position,
        content_hash=f.content_hash,
        reason=f.reason[:500],
        status=status,
        reviewed_at=None if status == "pending" else utcnow(),
    )


def _without(item: SourceItems, hashes: set[str]) -> SourceItems:
    if not hashes:
        return item
    return dataclasses.replace(
        item,
        entries=[e for e in item.entries if e.hash not in hashes],
        answers={k: v for k, v in item.answers.items() if _answer_hash(k, v) not in hashes},
    )


def listing(db: Database, status: str | None = None) -> list[dict[str, Any]]:
    """Quarantined passages (newest first), all or those with ``status``."""
    if status is not None and status not in STATUSES:
        raise DataError(f"unknown status {status!r} (use one of {', '.join(STATUSES)})")
    query = select(QuarantinedPassage).order_by(QuarantinedPassage.id.desc())
    if status is not None:
        query = query.where(QuarantinedPassage.status == status)
    with db.session() as s:
        return [_as_dict(r) for r in s.scalars(query)]


def _as_dict(r: QuarantinedPassage) -> dict[str, Any]:
    return {
        "id": r.id,
        "status": r.status,
        "kind": r.kind,
        "source": Path(r.source_uri).name,
        "source_uri": r.source_uri,
        "title": r.title,
        "intent": r.intent,
        "reason": r.reason,
        "text": r.text,
        "answer": r.answer,
        "created_at": r.created_at.isoformat(),
        "reviewed_at": r.reviewed_at.isoformat() if r.reviewed_at else None,
    }


def decide(db: Database, ids: Sequence[int], status: str) -> list[dict[str, Any]]:
    """Approve (release into the knowledge base) or reject (withdraw if released) passages.

    Returns the rows whose knowledge changed: the caller reindexes when there are any.
    Unknown ids are a NotFoundError and change nothing.
    """
    if status not in ("approved", "rejected"):
        raise DataError(f"a decision is 'approved' or 'rejected', not {status!r}")
    changed = []
    with db.session() as s:
        rows = {
            r.id: r
            for r in s.scalars(select(QuarantinedPassage).where(QuarantinedPassage.id.in_(ids)))
        }
        missing = sorted(set(ids) - set(rows))
        if missing:
            raise NotFoundError(f"no quarantined passage with id {', '.join(map(str, missing))}")
        for row in (rows[i] for i in dict.fromkeys(ids)):
            if row.status == status:
                continue
            if status == "approved":
                _release(s, row)
                changed.append(row)
            elif row.status == "approved":
                _withdraw(s, row)
                changed.append(row)
            row.status, row.reviewed_at = status, utcnow()
        if changed:
            bump(s)  # the knowledge changed with these rows
        s.flush()
        return [_as_dict(r) for r in changed]


def _source(s: Session, row: QuarantinedPassage) -> Source:
    src = s.scalar(
        select(Source).where(Source.kind == row.source_kind, Source.uri == row.source_uri)
    )
    if src is None:
        raise NotFoundError(
            f"quarantined passage {row.id}: its source {row.source_uri} is not in the "
            "knowledge base any more; ingest it again"
        )
    return src


def _release(s: Session, row: QuarantinedPassage) -> None:
    """Write the passage as the entry (or template answer) it would have been."""
    if row.kind == ANSWER:
        intent = intents_by_name(s, {row.intent or ""})[row.intent or ""]
        intent.answer, intent.updated_at = row.text, utcnow()
        return
    src = _source(s, row)
    exists = s.scalar(
        select(Entry.id).where(Entry.source_id == src.id, Entry.content_hash == row.content_hash)
    )
    if exists is None:
        intent_id = intents_by_name(s, {row.intent})[row.intent].id if row.intent else None
        s.add(
            Entry(
                source_id=src.id,
                kind=row.kind,
                text=row.text,
                answer=row.answer,
                title=row.title,
                position=row.position,
                content_hash=row.content_hash,
                intent_id=intent_id,
            )
        )


def _withdraw(s: Session, row: QuarantinedPassage) -> None:
    """Take a released passage out of the knowledge base again."""
    if row.kind == ANSWER:
        intent = s.scalar(select(Intent).where(Intent.name == row.intent))
        if intent is not None and intent.answer == row.text:
            intent.answer, intent.updated_at = None, utcnow()
        return
    source_ids = select(Source.id).where(
        Source.kind == row.source_kind, Source.uri == row.source_uri
    )
    s.execute(
        delete(Entry).where(Entry.source_id.in_(source_ids), Entry.content_hash == row.content_hash)
    )


def _finding(*texts: str | None) -> str | None:
    """Why the first of ``texts`` that reads like an instruction does, or None."""
    for text in texts:
        found = find_injection(text or "")
        if found is not None:
            return str(found)
    return None


def scan(db: Database) -> list[dict[str, Any]]:
    """Move stored knowledge that reads like instructions into quarantine (pending): for a
    knowledge base ingested before the guard existed. Passages approved before stay. The
    caller reindexes when any moved."""
    moved: list[QuarantinedPassage] = []
    with db.session() as s:
        approved = set(
            s.scalars(
                select(QuarantinedPassage.content_hash).where(
                    QuarantinedPassage.status == "approved"
                )
            )
        )
        for entry, src in s.execute(select(Entry, Source).join(Source)):
            reason = _finding(entry.title, entry.text, entry.answer)
            if reason is None or entry.content_hash in approved:
                continue
            intent = entry.intent.name if entry.intent else None
            f = Flagged(
                entry.kind,
                entry.text,
                entry.content_hash,
                reason,
                intent,
                entry.answer,
                entry.title,
                entry.position,
            )
            moved.append(_hold(s, src.kind, src.uri, f))
            s.delete(entry)
        for intent_row in s.scalars(select(Intent).where(Intent.answer.is_not(None))):
            answer = intent_row.answer or ""
            reason = _finding(answer)
            h = _answer_hash(intent_row.name, answer)
            if reason is None or h in approved:
                continue
            uri = s.scalar(
                select(Source.uri).join(Entry).where(Entry.intent_id == intent_row.id).limit(1)
            )
            f = Flagged(ANSWER, answer, h, reason, intent_row.name)
            moved.append(_hold(s, "templates", uri or "", f))
            intent_row.answer = None
        if moved:
            bump(s)
        s.flush()
        return [_as_dict(r) for r in moved]


def _hold(s: Session, kind: str, uri: str, f: Flagged) -> QuarantinedPassage:
    """The passage's row for its source, (back) in the pending state."""
    row = s.scalar(
        select(QuarantinedPassage).where(
            QuarantinedPassage.source_kind == kind,
            QuarantinedPassage.source_uri == uri,
            QuarantinedPassage.content_hash == f.content_hash,
        )
    )
    if row is None:
        row = _row(kind, uri, f)
        s.add(row)
    else:
        row.status, row.reviewed_at = "pending", None
    return row


def record_blocked(
    db: Database, reply: BotReply, path: str, answer: str, entry_ids: Sequence[int]
) -> None:
    """Store why the answer to ``reply``'s turn was held back (``reply`` is recorded)."""
    with db.session() as s:
        turn_id = s.scalar(
            select(Turn.id).where(Turn.session_id == reply.session_id, Turn.number == reply.turn)
        )
        s.add(
            BlockedAnswer(
                turn_id=turn_id,
                path=path,
                reason=(reply.handoff_reason or "")[:500],
                answer=mask_pii(answer),
                entry_ids=json.dumps(list(entry_ids)),
            )
        )


def blocked_answers(db: Database, limit: int = 100) -> list[dict[str, Any]]:
    """Answers held back at answer time, newest first: the turn, why, and what it said."""
    with db.session() as s:
        rows = s.execute(
            select(BlockedAnswer, Turn)
            .join(Turn, BlockedAnswer.turn_id == Turn.id)
            .order_by(BlockedAnswer.id.desc())
            .limit(limit)
        )
        return [
            {
                "id": b.id,
                "session_id": t.session_id,
                "turn": t.number,
                "question": t.question,
                "path": b.path,
                "reason": b.reason,
                "answer": b.answer,
                "entry_ids": json.loads(b.entry_ids),
                "at": b.created_at.isoformat(),
            }
            for b, t in rows
        ]
