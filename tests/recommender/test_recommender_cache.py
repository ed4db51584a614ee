"""Recommendations served from the store's cache (issue 26): training fills it, two workers
read one cache, an event changes the user's next answer at once, a withdrawn item is never
served, and a cached list is the list ranked on the spot; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aigc_apps.registry import ModelRegistry
from aigc_apps.serve import create_app
from aigc_apps.stamps import current
from apps.recommender.cache import WARM_K
from apps.recommender.runtime import NewEvent, NewItem
from apps.recommender.service import RecommenderService
from apps.recommender.store import CATALOG_STAMP, STAMPS
from tests.recommender.test_recommender_cli import run
from tests.recommender.test_recommender_workers import fast, statements


@pytest.fixture
def workers(db_url: str, sample_dir: Path) -> Iterator[tuple[RecommenderService, ...]]:
    """Two services on one database (two ``aigc serve --workers`` processes); the first
    trained the sample shop, which filled the cache."""
    a, b = (RecommenderService(db_url, registry=ModelRegistry(db_url)) for _ in range(2))
    a.ingest(sample_dir / "items.csv", sample_dir / "events.csv")
    report = a.train(fast()).report
    assert report["cache"]["users"] == a.counts()["users"] == a.cache.store.size() > 10
    yield a, b
    for service in (a, b):
        service.close()
        service.registry.close()


def ids(service: RecommenderService, user: str, k: int = WARM_K) -> list[str]:
    return [r.item_id for r in service.for_user(user, k=k, explain=True).items]


def on_the_spot(service: RecommenderService, user: str, k: int = WARM_K) -> list[str]:
    """The uncached path: the user's stored events handed to the served model."""
    events = service.user_events(user)
    return [r.item_id for r in service.model().recommend(user, k=k, events=events).items]


def ranked(service: RecommenderService, call: object) -> bool:
    """Whether ``call`` read a user's history (a cache miss ranks; a hit does not)."""
    return any("FROM rec_events" in q and "ORDER BY" in q for q in statements(service, call))


def test_a_cached_list_is_the_list_ranked_on_the_spot_and_costs_no_ranking(
    workers: tuple[RecommenderService, RecommenderService],
) -> None:
    a, b = workers
    users = [u for u, _ in _users(b)]
    b.model()
    for user in users:
        assert not ranked(b, lambda u=user: b.for_user(u, k=WARM_K))  # filled by a's training
        assert ids(b, user) == on_the_spot(b, user), user
    reasons = b.for_user(users[0], k=WARM_K, explain=True).items[0].reasons
    assert reasons and b.for_user(users[0], k=WARM_K).items[0].reasons == []
    assert ranked(b, lambda: b.for_user(users[0], k=3))  # another k: ranked once, then cached
    assert not ranked(b, lambda: b.for_user(users[0], k=3))
    assert ids(a, users[0], 3) == on_the_spot(a, users[0], 3)


def test_an_event_changes_the_next_answer_of_either_worker(
    workers: tuple[RecommenderService, RecommenderService],
) -> None:
    a, b = workers
    before = ids(b, "u01")
    a.add_events([NewEvent("u01", before[0], "purchase")])  # through the other worker
    after = ids(b, "u01")
    assert before[0] not in after and after == on_the_spot(b, "u01")
    assert not ranked(a, lambda: a.for_user("u01", k=WARM_K))  # b's ranking filled it for a
    # the worker that took the events also ranks them again in the background
    b.add_events([NewEvent("u01", after[0], "click")])
    assert b.cache.refresher.wait(timeout=30)
    assert not ranked(a, lambda: a.for_user("u01", k=WARM_K))
    assert after[0] not in ids(a, "u01")


def test_a_withdrawn_item_is_never_served_until_posted_again(
    workers: tuple[RecommenderService, RecommenderService], sample_dir: Path
) -> None:
    a, b = workers
    top = ids(b, "u01")[0]
    holders = [u for u, _ in _users(b) if top in ids(b, u)]
    assert a.withdraw([top]) == [top] and a.withdraw([top]) == []  # the second: already
    for user in holders:
        assert top not in ids(b, user) and ids(b, user) == on_the_spot(b, user)
    assert top not in ids(b, "never-seen-visitor")  # the popular items leave it out too
    assert all(top not in [r.item_id for r in b.similar(i, k=30)] for i in ids(b, "u02")[:3])
    a.ingest(sample_dir / "items.csv")  # a nightly catalogue export does not list it again
    assert top not in ids(b, "u01")
    a.add_items([NewItem(top, "Back in stock", "the same item, listed again")])
    everything = len(b.model().catalog)
    assert top in {r.item_id for r in b.similar(ids(b, "u02")[0], k=everything)}


def test_added_items_refresh_older_entries_in_the_background(
    workers: tuple[RecommenderService, RecommenderService],
) -> None:
    a, _ = workers
    a.for_user("u01", k=WARM_K)  # a serves
    a.add_items([NewItem("spa-new", "Moons of Saturn", "A space documentary about moons.")])
    assert a.cache.refresher.wait(timeout=60)
    assert a.cache.store.older_than(current(a.db, CATALOG_STAMP, table=STAMPS)) == []
    assert not ranked(a, lambda: a.for_user("u01", k=WARM_K))


def test_withdraw_over_http_and_the_cli(db_url: str, sample_dir: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("the server reads the workspace's store: SQLite is enough here")
    monkeypatch.setenv("AIGC_RECOMMEND_DB_URL", db_url)
    with RecommenderService(db_url) as service:
        service.ingest(sample_dir / "items.csv", sample_dir / "events.csv")
        service.train(fast())
        top = ids(service, "u01")[0]
    with TestClient(create_app()) as http:
        path = "/v1/recommend/items/{}"
        assert http.delete(path.format(top)).json() == {"item_id": top, "withdrawn": True}
        assert http.delete(path.format(top)).json() == {"item_id": top, "withdrawn": False}
        missing = http.delete(path.format("no-such-item"))
        assert missing.status_code == 404 and "no-such-item" in missing.text
        listed = http.get("/v1/recommend/users/u01/recommendations").json()["items"]
        assert top not in [i["item_id"] for i in listed]
    second = ids(RecommenderService(db_url), "u01")[0]
    out = json.loads(run("withdraw", second, top, "--db", db_url, "--json"))
    assert out == {"items": [{"item_id": second, "withdrawn": True},
                             {"item_id": top, "withdrawn": False}]}  # fmt: skip


def _users(service: RecommenderService) -> list[tuple[str, int]]:
    from apps.recommender.dataset import stored_users

    return [(u, WARM_K) for u in stored_users(service.db)]


def test_a_cache_ttl_of_zero_ranks_every_request(
    tmp_path: Path, sample_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aigc_apps.errors import AigcError
    from aigc_apps.settings import Settings

    monkeypatch.setenv("AIGC_HOME", str(tmp_path))
    monkeypatch.setenv("AIGC_RECOMMEND_CACHE_TTL", "0")
    with RecommenderService.from_settings(Settings.from_env()) as service:
        service.ingest(sample_dir / "items.csv", sample_dir / "events.csv")
        service.train(fast())
        assert service.cache.store.size() == 0
        assert ranked(service, lambda: service.for_user("u01", k=WARM_K))
        assert ranked(service, lambda: service.for_user("u01", k=WARM_K))
    monkeypatch.setenv("AIGC_RECOMMEND_CACHE_TTL", "a day")
    with pytest.raises(AigcError, match="AIGC_RECOMMEND_CACHE_TTL must be a number of seconds"):
        Settings.from_env()


def test_a_store_that_cannot_take_the_entry_still_answers(
    workers: tuple[RecommenderService, RecommenderService], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from sqlalchemy.exc import OperationalError

    _, b = workers

    def locked(*args: object) -> None:
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(b.cache.store, "write", locked)
    b.add_events([NewEvent("u05", ids(b, "u05")[0], "view")])  # its entry is stale now
    assert ids(b, "u05") == on_the_spot(b, "u05")
    assert "could not cache the list of 'u05'" in caplog.text


def test_a_hit_never_loads_or_ranks_and_says_none_when_it_would_have_to(
    workers: tuple[RecommenderService, RecommenderService], db_url: str,
) -> None:
    """What the HTTP route answers on its event loop (SQLite files): only valid entries of
    the model already served; anything else is None, for the thread pool to rank."""
    a, b = workers
    assert b.cached("u01", WARM_K) is None  # b serves nothing yet: it would have to load
    listed = b.for_user("u01", k=WARM_K, explain=True)
    assert b.cache.local == db_url.startswith("sqlite")
    hit = b.cached("u01", WARM_K, explain=True)
    assert hit is not None and hit.items == listed.items
    plain = b.cached("u01", WARM_K)
    assert plain is not None and [r.reasons for r in plain.items] == [[]] * len(plain.items)
    assert not ranked(b, lambda: b.cached("u01", WARM_K))
    assert b.cached("u03", 7) is None  # no entry of that k
    a.add_events([NewEvent("u01", listed.items[0].item_id, "purchase")])
    assert b.cached("u01", WARM_K) is None  # an event came after the entry
    a.activate("recommend-1")  # the registry's stamp moves: b must reload before serving
    assert b.cached("u02", WARM_K) is None
    assert b.for_user("u02", k=WARM_K).items and b.cached("u02", WARM_K) is not None
