"""``/v1/sentiment``: score texts, ingest documents, trends per topic and bucket, alerts, and
the stored documents (the latest, or those behind an alert).

The routes call the same :class:`~apps.sentiment.service.SentimentService` as the CLI. Texts
are scored by the registry's active sentiment model (or the one a request names); with none
trained, scoring and ingest answer 404 ``model_not_found`` naming ``aigc sentiment train``,
as OpenAI answers for a model that does not exist. Documents are checked whole before any is
stored (a document the ingester could not use refuses the batch, 400), then stored in
batches; a document is identified by (source, id), so re-posting a batch stores nothing
twice. Alert rules run on what was stored and the new alerts come back with the report.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from aigc_apps.errors import ModelNotFoundError, NotFoundError
from aigc_apps.serve.auth import require_scope
from aigc_apps.serve.deps import app_service
from aigc_apps.serve.errors import ApiError, bad_request

from .constants import APP, MAX_ID_CHARS, MAX_SOURCE_CHARS
from .horizon import FUTURE_TOLERANCE_HOURS, too_far_ahead
from .schemas import (
    AlertOut,
    AlertsOut,
    Probabilities,
    ScoreOut,
    TrendsOut,
    alerts_out,
    scored_out,
    series_out,
)

if TYPE_CHECKING:
    from .service import SentimentService

MAX_TEXTS = 256
MAX_DOCUMENTS = 1000
MAX_CHARS = 100_000  # longer texts are refused; texts over the model's limit are cut, flagged
NO_MODEL = (
    "no sentiment model to score with: train one with `aigc sentiment train --data "
    "FILE --name NAME`, or activate a registered one with `aigc models activate NAME`"
)

router = APIRouter(prefix="/v1/sentiment", tags=[APP])
READ = [Depends(require_scope(f"{APP}:read"))]
WRITE = [Depends(require_scope(f"{APP}:write"))]
Since = Annotated[
    str | None,
    Query(
        max_length=64,
        description=("ISO 8601 time (UTC if no zone) or a duration back from now: 30m, 24h, 7d."),
    ),
]
Topic = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=200,
        description=(
            "One topic of the watch list, or `all` for every record; omitted: every topic."
        ),
    ),
]
ModelName = Field(
    None,
    max_length=200,
    pattern=r"^[^\x00]+$",
    description="A registered sentiment model; omitted: the active one.",
)


class ScoreIn(BaseModel):
    texts: list[Annotated[str, Field(max_length=MAX_CHARS)]] = Field(
        min_length=1, max_length=MAX_TEXTS, description=f"1 to {MAX_TEXTS} texts."
    )
    model: str | None = ModelName


def _not_ahead(value: datetime | None) -> datetime | None:
    """A time past the clock-skew horizon is the client's error (422), as on every path."""
    if value is not None:
        reason = too_far_ahead(value if value.tzinfo else value.replace(tzinfo=timezone.utc))
        if reason is not None:
            raise PydanticCustomError("future_time", reason)
    return value


def _id_digits(value: object) -> object:
    """An integer id is its digits, as on the stream and in files; any other kind but a
    string (an object, a boolean...) is refused by the ``str`` type, never read as text."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


DocumentId = Annotated[
    str | None,
    BeforeValidator(_id_digits),
    WithJsonSchema({"anyOf": [{"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS},
                              {"type": "integer"}, {"type": "null"}]}),
]


class DocumentIn(BaseModel):
    id: DocumentId = Field(
        None,
        min_length=1,
        max_length=MAX_ID_CHARS,
        description="The document's id in its source (a string or an integer): re-posting "
        "it stores nothing.",
    )
    source: str | None = Field(
        None, max_length=MAX_SOURCE_CHARS, description="The feed it came from."
    )
    text: str = Field(min_length=1, max_length=MAX_CHARS)
    published_at: Annotated[datetime | None, AfterValidator(_not_ahead)] = Field(
        None,
        description="ISO 8601 or epoch seconds (naive: UTC); omitted: now. At most "
        f"{FUTURE_TOLERANCE_HOURS}h in the future (clock skew); later: 422.",
    )
    url: str | None = Field(None, max_length=2000)


class DocumentsIn(BaseModel):
    documents: list[DocumentIn] = Field(min_length=1, max_length=MAX_DOCUMENTS)
    source: str | None = Field(
        None,
        max_length=MAX_SOURCE_CHARS,
        description=("The source of documents that name none (default: api)."),
    )
    model: str | None = ModelName


class DocumentsOut(BaseModel):
    received: int
    stored: int
    duplicates: int = Field(description="Documents stored before (or repeated in the batch).")
    truncated: list[int] = Field(description="Indexes of documents cut to the model's limit.")
    alerts: list[AlertOut] = Field(description="Alerts the new documents fired.")


class StoredDocumentOut(BaseModel):
    source: str
    id: str | None = Field(description="The document's id in its source, if it had one.")
    text: str = Field(description="As stored (cut when over the model's limit).")
    url: str | None
    published_at: datetime
    label: str = Field(description="negative, neutral or positive")
    score: float = Field(description="p(positive) - p(negative), in [-1, 1].")
    probabilities: Probabilities
    topics: list[str]
    truncated: bool
    model: str = Field(description="The model that scored it.")


class StoredDocumentsOut(BaseModel):
    documents: list[StoredDocumentOut]


Limit = Annotated[int, Query(ge=1, le=200, description="At most this many.")]


def _service(request: Request) -> SentimentService:
    from .service import SentimentService

    return app_service(request, APP, SentimentService.from_settings)


SentimentDep = Annotated["SentimentService", Depends(_service)]


@contextmanager
def _model_needed(name: str | None) -> Iterator[None]:
    """A missing model is the client's 404, whatever layer notices it."""
    try:
        yield
    except (NotFoundError, ModelNotFoundError) as exc:
        message = str(exc) if name else NO_MODEL
        raise ApiError(404, message, "not_found_error", "model_not_found", param="model") from None


def _since(value: str | None, what: str) -> datetime | None:
    from .trends import parse_since

    return parse_since(value, what=what) if value else None


@router.post(
    "/score",
    response_model=ScoreOut,
    dependencies=READ,
    summary="Score texts",
    description=f"Label, probabilities, score and watch-list topics of 1 to {MAX_TEXTS} "
    "texts; nothing is stored. A blank text: 400; no trained model: 404 model_not_found.",
)
def score(service: SentimentDep, body: ScoreIn) -> ScoreOut:
    with _model_needed(body.model):
        scorer = service.model(body.model)  # one registry read per request
    found = service.score(body.texts, scorer)
    return ScoreOut(model=scorer.name, results=scored_out(found))


@router.post(
    "/documents",
    response_model=DocumentsOut,
    dependencies=WRITE,
    summary="Ingest documents",
    description="Scores and stores documents (with their topics), then runs the alert "
    "rules. Idempotent by (source, id): a re-post reports duplicates and stores nothing. "
    "The batch is checked whole first: a document that cannot be stored refuses it (400).",
)
def ingest_documents(service: SentimentDep, body: DocumentsIn) -> DocumentsOut:
    from .ingest import RefusedRecord
    from .service import IngestOptions

    options = IngestOptions(source=body.source, model=body.model)
    try:
        with _model_needed(body.model):
            report = service.ingest_all_or_none([_record(d) for d in body.documents], options)
    except RefusedRecord as exc:
        raise bad_request(
            f"documents[{exc.index}]: {exc.reason}; no document was stored",
            "invalid_document",
            param=f"documents[{exc.index}]",
        ) from None
    return DocumentsOut(
        received=len(body.documents),
        stored=report.stored,
        duplicates=report.duplicates,
        truncated=[line - 1 for line in report.truncated],
        alerts=[AlertOut(**a) for a in report.alerts],
    )


def _record(doc: DocumentIn) -> dict[str, Any]:
    record: dict[str, Any] = {"text": doc.text, "id": doc.id, "source": doc.source, "url": doc.url}
    if doc.published_at is not None:
        record["published_at"] = doc.published_at.isoformat()
    return {k: v for k, v in record.items() if v is not None}


@router.get(
    "/trends",
    response_model=TrendsOut,
    dependencies=READ,
    summary="Sentiment per topic and time bucket",
    description="Counts, negative share and mean score per topic in buckets aligned to UTC "
    "(1h buckets start on the hour), from `since` to before `until`. Unknown topic: 404; "
    "an unreadable time or bucket, or over 20,000 buckets without `since`: 400.",
)
def trends(
    service: SentimentDep,
    topic: Topic = None,
    bucket: Annotated[str, Query(max_length=16, description="15m, 1h, 1d, 1w...")] = "1h",
    since: Since = None,
    until: Since = None,
) -> TrendsOut:
    from .trends import SeriesTooLong, parse_duration

    seconds = int(parse_duration(bucket).total_seconds())
    try:
        series = service.trends(
            topic, bucket=bucket, since=_since(since, "since"), until=_since(until, "until")
        )
    except SeriesTooLong as exc:  # its own words name the CLI's --since and --bucket
        raise bad_request(exc.naming("since=", "bucket="), param="since") from None
    return TrendsOut(
        bucket=bucket,
        bucket_seconds=seconds,
        series=series_out(series),
    )


@router.get(
    "/alerts",
    response_model=AlertsOut,
    dependencies=READ,
    summary="Alerts since a time",
    description="Stored alerts (a topic's negative share or volume far above its baseline), "
    "newest first, for buckets from `since` on. Unknown topic: 404; unreadable time: 400.",
)
def alerts(
    service: SentimentDep,
    since: Since = None,
    topic: Topic = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 50,
) -> AlertsOut:
    found = service.alerts(topic, since=_since(since, "since"), limit=limit)
    return AlertsOut(alerts=alerts_out(found))


@router.get(
    "/documents",
    response_model=StoredDocumentsOut,
    dependencies=READ,
    summary="Stored documents",
    description="Stored documents with their label, scores and topics, newest first (by "
    "published time, then id), published from `since` to before `until`. Unknown topic: "
    "404; an unreadable time: 400.",
)
def documents(
    service: SentimentDep,
    label: Annotated[
        Literal["negative", "neutral", "positive"] | None,
        Query(description="Only documents with this label."),
    ] = None,
    topic: Topic = None,
    since: Since = None,
    until: Since = None,
    limit: Limit = 20,
) -> StoredDocumentsOut:
    found = service.documents(
        topic, label, since=_since(since, "since"), until=_since(until, "until"), limit=limit
    )
    return StoredDocumentsOut(documents=[StoredDocumentOut(**d.to_dict()) for d in found])


@router.get(
    "/alerts/{alert_id}/documents",
    response_model=StoredDocumentsOut,
    dependencies=READ,
    summary="The documents behind an alert",
    description="The alert topic's documents published in the alert's bucket: negatives "
    "first, then newest. Unknown alert: 404.",
)
def alert_documents(
    service: SentimentDep,
    alert_id: Annotated[int, Path(ge=1, le=2**31 - 1, description="An alert's id.")],
    limit: Limit = 20,
) -> StoredDocumentsOut:
    found = service.alert_documents(alert_id, limit)
    return StoredDocumentsOut(documents=[StoredDocumentOut(**d.to_dict()) for d in found])
