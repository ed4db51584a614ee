"""``aigc recommend for-user|similar --json`` print the models the HTTP API answers: the
same keys and values as ``/v1/recommend/...``, plus the CLI's 0.1.0 keys for one release."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aigc_apps.serve import create_app
from apps.recommender.recommender import RecommenderConfig
from apps.recommender.service import RecommenderService
from tests.recommender.test_recommender_cli import run
from tests.serve.checks import keys_of

R = "/v1/recommend"


@pytest.fixture
def url(tmp_path: Path, sample_dir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The sample shop stored and trained (hashing encoder) in a SQLite file the server
    reads too."""
    url = f"sqlite:///{tmp_path / 'recommend.db'}"
    monkeypatch.setenv("AIGC_RECOMMEND_DB_URL", url)
    with RecommenderService(url) as service:
        service.ingest(sample_dir / "items.csv", sample_dir / "events.csv")
        service.train(RecommenderConfig(encoder="hashing", interest=None))
    return url


@pytest.fixture
def client(url: str) -> Iterator[TestClient]:
    with TestClient(create_app()) as c:
        yield c


def _new_keys(cli: dict, old: set[str]) -> dict:
    """The CLI's reply without its 0.1.0 keys, which must still be there."""
    assert old <= cli.keys()
    return {k: v for k, v in cli.items() if k not in old}


@pytest.mark.parametrize("user", ["u01", "zz-new"])  # known; unknown (popular items, a note)
def test_for_user_prints_what_the_api_answers(url: str, client: TestClient, user: str) -> None:
    cli = json.loads(run("for-user", user, "-k", "5", "--explain", "--db", url, "--json"))
    http = client.get(f"{R}/users/{user}/recommendations", params={"k": 5}).json()
    assert len(http["items"]) == 5 and (http["note"] is None) == (user == "u01")
    assert cli["user"] == user
    cli = _new_keys(cli, {"user"})
    assert keys_of(cli) == keys_of(http) and cli == http


def test_similar_prints_what_the_api_answers(url: str, client: TestClient) -> None:
    cli = json.loads(run("similar", "n-voyager", "-k", "3", "--db", url, "--json"))
    http = client.get(f"{R}/items/n-voyager/similar", params={"k": 3}).json()
    assert len(http["items"]) == 3
    assert (cli["item"], cli["similar"]) == (cli["item_id"], cli["items"])
    cli = _new_keys(cli, {"item", "similar"})
    assert keys_of(cli) == keys_of(http) and cli == http
