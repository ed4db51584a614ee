"""The agents' CLI ``--json`` and the HTTP API print one model per output: the queue, the
suggestions and the handoff figures have the same keys (and values) on both edges, the CLI
printing the list that the API wraps in an object."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aigc_apps.embeddings import Encoder
from aigc_apps.serve import create_app
from apps.support import Calibration, SupportService
from tests.serve.checks import keys_of
from tests.support.conftest import KB, BowEncoder
from tests.support.test_support_cli import run

Q = "/v1/support"


@pytest.fixture
def url(tmp_path: Path, tiny_llm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A SQLite store with the sample FAQ, one conversation waiting for a person, one held
    by alice and one resolved (a pending suggestion); the server reads the same file."""
    url = f"sqlite:///{tmp_path / 'support.db'}"
    monkeypatch.setenv("AIGC_SUPPORT_DB_URL", url)
    monkeypatch.setenv("AIGC_LLM", str(tiny_llm_dir))
    monkeypatch.setattr(Encoder, "from_pretrained", classmethod(lambda cls, *a, **k: BowEncoder()))
    with SupportService(url, encoder=BowEncoder(), llm=str(tiny_llm_dir)) as bot:  # type: ignore[arg-type]
        bot.ingest([KB])
        bot.calibration = Calibration(w_score=40.0, w_margin=0.0, bias=-30.0, threshold=0.5)
        c = bot.conversations
        waiting = bot.ask("Where is my order?").session_id
        bot.ask("agent please", waiting)
        held = bot.ask("I want a real person").session_id
        c.take(held, "alice")
        done = bot.ask("Can I pay with a gift card from another store?").session_id
        bot.ask("talk to a person", done)
        c.take(done, "bob")
        c.reply(done, "bob", "Only our own gift cards, sorry.")
        c.resolve(done, "bob")
    return url


@pytest.fixture
def client(url: str) -> Iterator[TestClient]:
    with TestClient(create_app()) as c:
        yield c


def test_queue_suggestions_and_stats_print_what_the_api_answers(
    url: str, client: TestClient
) -> None:
    cli = run("queue", "--state", "all", "--db", url, "--json")
    http = client.get(f"{Q}/queue", params={"state": "all"}).json()["conversations"]
    assert [q["state"] for q in cli] == ["pending_human", "human"]
    assert keys_of(cli) == keys_of(http)  # every message and source too
    for row in (*cli, *http):
        row.pop("waiting_seconds")  # the clock moved between the two reads
    assert cli == http

    cli = run("suggestions", "--db", url, "--json")
    http = client.get(f"{Q}/suggestions").json()["suggestions"]
    assert len(cli) == 1 and cli[0]["agent"] == "bob"
    assert cli == http

    cli = run("stats", "--db", url, "--json")
    assert cli["handoffs"] == 3 and cli["per_intent"]
    assert cli == client.get(f"{Q}/handoff-stats").json()
