"""The database-only side of the support service: sessions, feedback, agents' suggestions
and handoff figures (no model loads, except that approving a suggestion indexes it).

:class:`ConversationRecords` is a part of :class:`~apps.support.service.SupportService`; it
receives the database as a callable (opened on first use) and the one writer of knowledge
it needs, ingesting an approved suggestion, as another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aigc_apps.errors import ConflictError

from . import sessions

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from aigc_apps.store import Database

    from ..knowledge.ingest import SourceItems
    from ..knowledge.quarantine import ScreenedIngestReport


class ConversationRecords:
    """Sessions, ratings, suggestions and handoff statistics of one support database:
    ``db`` returns it opened; ``ingest_items`` indexes an approved suggestion (the
    knowledge part's :meth:`~apps.support.knowledge.changes.Knowledge.ingest_items`)."""

    def __init__(
        self,
        db: Callable[[], Database],
        ingest_items: Callable[[Sequence[SourceItems]], ScreenedIngestReport],
    ) -> None:
        self._db = db
        self._ingest_items = ingest_items

    @property
    def db(self) -> Database:
        return self._db()

    def turns(self, session_id: str) -> list[dict[str, Any]]:
        return sessions.turns(self.db, session_id)

    def create_session(self) -> dict[str, Any]:
        """Open an empty session (``ask`` with no session opens one too)."""
        return sessions.create(self.db)

    def session(self, session_id: str) -> dict[str, Any]:
        """A session's times, handoff flag and turns; NotFoundError for an unknown id."""
        return sessions.info(self.db, session_id)

    def handoffs(self) -> list[str]:
        return sessions.handoffs(self.db)

    def feedback(
        self, session_id: str, turn: int, good: bool, correct_answer: str | None = None
    ) -> int:
        """Rate a turn; a corrected answer becomes training data. Returns the feedback id."""
        return sessions.record_feedback(self.db, session_id, turn, good, correct_answer)

    def suggestions(self, status: str | None = "pending") -> list[dict[str, Any]]:
        """Question/answer pairs from resolved conversations (``status`` None: all)."""
        from .suggestions import listing

        return listing(self.db, status)

    def approve_suggestion(
        self, suggestion_id: int, intent: str | None = None, question: str | None = None
    ) -> dict[str, Any]:
        """Ingest a suggestion as an answer template (screened, indexed, citable like any
        other), optionally with the question reworded; ConflictError if already decided."""
        from .suggestions import as_template, decide

        item = as_template(self.db, suggestion_id, intent, question)
        report = self._ingest_items([item])
        if report.quarantined:
            raise ConflictError(
                f"suggestion {suggestion_id} reads like an instruction to the assistant; it "
                "is held in quarantine (see `aigc support quarantine list`)",
                "suggestion_quarantined",
            )
        return decide(self.db, suggestion_id, "approved", next(iter(item.answers)))

    def reject_suggestion(self, suggestion_id: int) -> dict[str, Any]:
        from .suggestions import decide

        return decide(self.db, suggestion_id, "rejected")

    def handoff_stats(self) -> dict[str, Any]:
        """Handoff rate, waits before take-over, resolution rate, overall and per intent."""
        from .handoff_stats import handoff_stats

        return handoff_stats(self.db)
