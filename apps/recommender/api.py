"""``/v1/recommend``: top-k for a user, similar items, and run-time inserts of events and items.

Modelled on Gorse's REST API (recommend, neighbours, insert feedback, insert items), in this
service's JSON spelling. Everything a worker answers comes from the store and the registry's
active model, so two workers answer alike:

- a user's recommendations read their events from the store on every request, so events
  posted a moment ago (through any worker) change the next list, without a retrain; items
  they already have are left out unless ``exclude_seen=false``;
- a user with no events (unknown to the store) gets the popular items, with a ``note``
  saying so: a shop's new visitor is normal, not an error (Gorse does the same);
- a user's list is served from the store's cache (:mod:`.cache`), which every worker shares;
  an entry is never served after the user's next event or once it holds a withdrawn item;
- items posted after training are served by their text (cold items): in similar items and
  steered lists at once, in cached lists at their background refresh (seconds); they learn
  their collaborative signal at the next ``aigc recommend train``;
- a withdrawn item (``DELETE /v1/recommend/items/{id}``) is never recommended again;
- a batch of events that names an item missing from the catalogue is refused whole (404,
  nothing stored); with timestamps, re-posting a batch stores nothing twice.

With no trained model, reads answer 404 ``model_not_found`` naming ``aigc recommend train``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from aigc_apps.errors import ModelNotFoundError
from aigc_apps.serve.auth import require_scope
from aigc_apps.serve.deps import app_service
from aigc_apps.serve.errors import ApiError

from .schemas import Recommendations, SimilarItems, WithdrawnItem, items_out

if TYPE_CHECKING:
    from .service import RecommenderService

APP = "recommend"
MAX_K = 1000
MAX_EVENTS = 10_000
MAX_ITEMS = 1_000
EventType = Literal[
    "view",
    "click",
    "like",
    "add_to_cart",
    "cart",
    "purchase",
    "buy",
    "order",
    "rating",
    "interaction",
]

router = APIRouter(prefix="/v1/recommend", tags=[APP])
READ = [Depends(require_scope(f"{APP}:read"))]
WRITE = [Depends(require_scope(f"{APP}:write"))]

UserId = Annotated[str, Path(min_length=1, max_length=200, description="The user's id.")]
ItemId = Annotated[str, Path(min_length=1, max_length=200, description="The item's id.")]
K = Annotated[int, Query(ge=1, le=MAX_K, description=f"How many items (1 to {MAX_K}).")]


class ItemIn(BaseModel):
    """An item to insert or update (matched by ``item_id``); it needs some text."""

    item_id: str = Field(min_length=1, max_length=200)
    title: str = Field("", max_length=10_000)
    description: str = Field("", max_length=100_000)
    tags: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=100)
    attributes: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict, description="Other fields, stored with the item."
    )


class ItemsReport(BaseModel):
    received: int
    added: int
    updated: int
    unchanged: int


class EventIn(BaseModel):
    """Feedback: ``user_id`` did ``type`` to ``item_id`` at ``timestamp``."""

    user_id: str = Field(min_length=1, max_length=200)
    item_id: str = Field(min_length=1, max_length=200)
    type: EventType = Field("view", description="A purchase counts more than a view.")
    timestamp: datetime | None = Field(
        None,
        description="ISO 8601 (naive: UTC) or epoch seconds; omitted: now. With a "
        "timestamp, re-posting the same event stores nothing.",
    )
    weight: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="Multiplies the type's weight."
    )
    rating: float | None = Field(None, allow_inf_nan=False)


class EventsReport(BaseModel):
    received: int
    inserted: int
    duplicates: int = Field(description="Events already stored (or repeated in the batch).")


def _service(request: Request) -> RecommenderService:
    from .service import RecommenderService

    return app_service(request, APP, RecommenderService.from_settings)


RecommenderDep = Annotated["RecommenderService", Depends(_service)]


@contextmanager
def _model_needed() -> Iterator[None]:
    try:
        yield
    except ModelNotFoundError as exc:
        raise ApiError(404, str(exc), "not_found_error", "model_not_found") from None


@router.get(
    "/users/{user_id}/recommendations",
    response_model=Recommendations,
    dependencies=READ,
    summary="Top-k items for a user",
    description="The user's latest events (read from the store at request time) ranked by "
    "the active model, items the user already has left out; a user with no events gets the "
    "popular items and a note. `interest` steers the list with free text.",
)
async def recommendations(
    service: RecommenderDep,
    user_id: UserId,
    k: K = 10,
    explain: Annotated[bool, Query(description="Say why each item is there.")] = True,
    exclude_seen: Annotated[bool, Query(description="Leave out items the user has.")] = True,
    interest: Annotated[
        str | None, Query(max_length=1000, description="Free text, e.g. 'space documentaries'.")
    ] = None,
) -> Recommendations:
    result = None
    if exclude_seen and not interest and service.cache.local:
        # a hit on local SQLite files is microseconds: answered here, on the event loop
        result = service.cached(user_id, k, explain)
    if result is None:  # a miss ranks (milliseconds of CPU) in the thread pool
        with _model_needed():
            result = await run_in_threadpool(
                service.for_user, user_id, k=k, exclude_seen=exclude_seen,
                interest=interest or None, explain=explain,
            )
    return Recommendations(user_id=user_id, items=items_out(result.items), note=result.note)


@router.get(
    "/items/{item_id}/similar",
    response_model=SimilarItems,
    dependencies=READ,
    summary="Items similar to an item",
    description="Other items like this one, by text and by the users who interacted with "
    "both; never the item itself. Unknown item: 404.",
)
def similar(service: RecommenderDep, item_id: ItemId, k: K = 10) -> SimilarItems:
    with _model_needed():
        found = service.similar(item_id, k)
    return SimilarItems(item_id=item_id, items=items_out(found))


@router.post(
    "/events",
    response_model=EventsReport,
    dependencies=WRITE,
    summary="Insert feedback events",
    description="A JSON array of events, stored in one transaction. An event naming an item "
    "the catalogue lacks refuses the whole batch (404, nothing stored). The user's next "
    "recommendations use the new events at once, no retrain needed.",
)
def insert_events(
    service: RecommenderDep,
    events: Annotated[list[EventIn], Body(min_length=1, max_length=MAX_EVENTS)],
) -> EventsReport:
    from .runtime import NewEvent

    batch = [
        NewEvent(e.user_id, e.item_id, e.type, e.timestamp, e.weight, e.rating) for e in events
    ]
    report = service.add_events(batch)
    return EventsReport(
        received=len(events), inserted=report.events_added, duplicates=report.events_duplicate
    )


@router.post(
    "/items",
    response_model=ItemsReport,
    dependencies=WRITE,
    summary="Insert or update items",
    description="A JSON array of items, upserted by `item_id` in one transaction; each needs "
    "a title or a description. New items are recommended by their text: in similar items and "
    "steered lists from the next request on, in users' cached lists at their background "
    "refresh (seconds); the next `aigc recommend train` learns who likes them. Posting a "
    "withdrawn item lists it again.",
)
def insert_items(
    service: RecommenderDep,
    items: Annotated[list[ItemIn], Body(min_length=1, max_length=MAX_ITEMS)],
) -> ItemsReport:
    from .runtime import NewItem

    batch = [NewItem(i.item_id, i.title, i.description, i.tags, dict(i.attributes)) for i in items]
    report = service.add_items(batch)
    return ItemsReport(
        received=len(items),
        added=report.items_added,
        updated=report.items_updated,
        unchanged=report.items_unchanged,
    )


@router.delete(
    "/items/{item_id}",
    response_model=WithdrawnItem,
    dependencies=WRITE,
    summary="Withdraw an item",
    description="The item is never recommended again (nor listed as similar), by any worker, "
    "from the next request on; cached lists holding it are not served. Its row and events "
    "stay (history, and the next training's signal). Posting the item again lists it "
    "again. Unknown item: 404.",
)
def withdraw_item(service: RecommenderDep, item_id: ItemId) -> WithdrawnItem:
    return WithdrawnItem(item_id=item_id, withdrawn=bool(service.withdraw([item_id])))
