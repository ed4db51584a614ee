"""/v1/support: sessions, messages with cited sources and handoff, history, feedback and ask,
served by the workspace's SupportService (the bag-of-words test encoder, template answers, no
LLM), with each route's errors as OpenAI-shaped JSON."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from aigc_apps.serve import create_app
from apps.support import SupportService
from apps.support.store import Feedback, Turn
from tests.serve.checks import assert_documented, error

ORDER = "Where is my order?"  # an example question of the sample FAQ's order_status intent


def count(db_url: str, table: Any) -> int:
    with SupportService(db_url) as service, service.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


def test_a_conversation_in_one_session_seen_by_every_worker(
    db_url: str, knowledge: str, client: TestClient
) -> None:
    created = client.post("/v1/support/sessions")
    assert created.status_code == 201, created.text
    sid = created.json()["session_id"]
    assert client.get(f"/v1/support/sessions/{sid}").json()["turns"] == []
    reply = client.post(f"/v1/support/sessions/{sid}/messages", json={"message": ORDER}).json()
    assert (reply["session_id"], reply["turn_number"], reply["path"]) == (sid, 1, "template")
    assert reply["turn_id"] == 1  # the 0.1.0 name, kept for one release
    assert reply["intent"] == "order_status" and "Track package" in reply["answer"]
    assert not reply["handoff"] and reply["handoff_reason"] is None
    assert 0 < reply["confidence"] <= 1 and reply["latency_ms"] > 0
    source = reply["sources"][0]
    assert source["kind"] == "example" and source["source"] == "templates.csv"
    assert source["excerpt"] and source["score"] > 0.5 and isinstance(source["entry_id"], int)
    assert source["id"] == source["entry_id"]  # the 0.1.0 name, kept for one release

    with TestClient(create_app()) as other:  # another worker continues the session
        second = other.post(
            f"/v1/support/sessions/{sid}/messages",
            json={"message": "xyzzy plugh jane.doe@example.com"},
        )
        second_reply = second.json()
        assert (second_reply["turn_number"], second_reply["path"]) == (2, "handoff")
        # not answered: a second time in a row would queue it for a person
        assert not second_reply["handoff"] and second_reply["handoff_reason"]
        assert second_reply["sources"] == [] and second_reply["state"] == "bot"
    history = client.get(f"/v1/support/sessions/{sid}").json()
    assert history["session_id"] == sid and history["handoff"] is False
    assert [t["turn_number"] for t in history["turns"]] == [1, 2]
    assert [t["turn_id"] for t in history["turns"]] == [1, 2]  # the 0.1.0 name
    assert history["turns"][0]["question"] == ORDER
    assert "jane.doe" not in history["turns"][1]["question"]  # stored masked
    assert history["created_at"] <= history["updated_at"]

    rated = client.post(
        f"/v1/support/sessions/{sid}/messages/2/feedback",
        json={"helpful": False, "correct_answer": "Try the magic words."},
    )
    assert rated.status_code == 201, rated.text
    assert rated.json()["session_id"] == sid and rated.json()["turn_number"] == 2
    assert rated.json()["turn_id"] == 2  # the 0.1.0 name, kept for one release
    assert count(knowledge, Feedback) == 1
    # NUL characters (which PostgreSQL cannot store) leave a question; no session has one.
    nul = client.post(
        f"/v1/support/sessions/{sid}/messages", json={"message": "Where\x00 is my order?"}
    )
    assert nul.json()["question"] == ORDER and nul.json()["turn_number"] == 3
    error(client.get("/v1/support/sessions/a%00b"), 404, "not_found_error")


def test_messages_posted_at_once_to_one_session_are_all_answered(
    db_url: str, knowledge: str, live_server: Callable[[object], str]
) -> None:
    """Issue 24 item 1: five concurrent posts to one session were [200, 500, 500, 500, 500]
    (a real server: the route's threads answer them, one turn after another)."""
    url = live_server(create_app())
    with httpx.Client(base_url=url, timeout=30) as c:
        sid = c.post("/v1/support/sessions").json()["session_id"]
        for text in (ORDER, "talk to a human"):  # the bot answers, then a person will
            barrier = threading.Barrier(5, timeout=30)

            def post(n: int, text: str = text,
                     barrier: threading.Barrier = barrier) -> tuple[int, str]:
                with httpx.Client(base_url=url, timeout=30) as mine:
                    barrier.wait()
                    r = mine.post(f"/v1/support/sessions/{sid}/messages",
                                  json={"message": f"{text} ({n})"})
                    return r.status_code, r.text

            with ThreadPoolExecutor(5) as pool:
                answers = list(pool.map(post, range(5)))
            assert [code for code, _ in answers] == [200] * 5, answers
        turns = c.get(f"/v1/support/sessions/{sid}").json()["turns"]
        assert [t["turn_number"] for t in turns] == list(range(1, 11))
        assert {t["path"] for t in turns[5:]} <= {"handoff", "human"}


def test_ask_without_a_session(client: TestClient) -> None:
    reply = client.post("/v1/support/ask", json={"message": "How do I reset my password?"})
    body = reply.json()
    assert reply.status_code == 200 and body["path"] == "template"
    assert body["intent"] == "reset_password" and body["turn_number"] == 1
    turns = client.get(f"/v1/support/sessions/{body['session_id']}").json()["turns"]
    assert len(turns) == 1  # stored in a new session, so it can be rated
    good = client.post(
        f"/v1/support/sessions/{body['session_id']}/messages/1/feedback", json={"helpful": True}
    )
    assert good.status_code == 201


def test_errors_store_nothing(knowledge: str, client: TestClient) -> None:
    sid = client.post("/v1/support/sessions").json()["session_id"]
    turns = count(knowledge, Turn)
    messages = f"/v1/support/sessions/{sid}/messages"
    assert "empty" in error(
        client.post(messages, json={"message": "   "}), 400, "invalid_request_error"
    )
    assert "empty" in error(client.post("/v1/support/ask", json={"message": "\n\t"}), 400)
    for body in ({"message": ""}, {}, {"message": 42}, {"message": "x" * 4001}, [ORDER]):
        error(client.post(messages, json=body), 422, "invalid_request_error")
        error(client.post("/v1/support/ask", json=body), 422)
    assert count(knowledge, Turn) == turns

    unknown = client.post("/v1/support/sessions/nope/messages", json={"message": ORDER})
    assert "nope" in error(unknown, 404, "not_found_error")
    error(client.get("/v1/support/sessions/nope"), 404, "not_found_error")
    assert count(knowledge, Turn) == turns

    feedback = f"/v1/support/sessions/{sid}/messages/{{}}/feedback"
    error(client.post(feedback.format(1), json={"helpful": True}), 404, "not_found_error")
    error(client.post(feedback.format(0), json={"helpful": True}), 422)
    error(client.post(feedback.format(1), json={"helpful": "maybe"}), 422)
    error(client.post(feedback.format(1), json={}), 422)
    client.post(messages, json={"message": ORDER})
    blank = client.post(feedback.format(1), json={"helpful": False, "correct_answer": "  "})
    assert error(blank, 400, code="empty_correct_answer") == "correct_answer is empty"
    assert count(knowledge, Feedback) == 0


def test_scopes(client: TestClient, token_store: Any) -> None:
    _, reader = token_store.create("dashboard", ["support:read"])
    _, other = token_store.create("shop", ["recommend"])
    with TestClient(create_app()) as c:
        error(c.post("/v1/support/ask", json={"message": ORDER}), 401, "authentication_error")
        as_reader = {"Authorization": f"Bearer {reader}"}
        resp = c.post("/v1/support/ask", json={"message": ORDER}, headers=as_reader)
        assert "support:write" in error(resp, 403, "permission_error", "insufficient_scope")
        resp = c.get("/v1/support/sessions/nope", headers={"Authorization": f"Bearer {other}"})
        assert "support:read" in error(resp, 403, "permission_error")
        error(c.get("/v1/support/sessions/nope", headers=as_reader), 404)  # allowed, unknown


def test_openapi_documents_every_route() -> None:
    routes = {
        ("post", "/v1/support/sessions"),
        ("post", "/v1/support/sessions/{session_id}/messages"),
        ("get", "/v1/support/sessions/{session_id}"),
        ("post", "/v1/support/sessions/{session_id}/messages/{turn_number}/feedback"),
        ("post", "/v1/support/ask"),
        ("get", "/v1/support/sessions/{session_id}/events"),
        ("get", "/v1/support/queue"),
        ("get", "/v1/support/conversations/{session_id}"),
        ("get", "/v1/support/conversations/{session_id}/events"),
        ("post", "/v1/support/conversations/{session_id}/take"),
        ("post", "/v1/support/conversations/{session_id}/reply"),
        ("post", "/v1/support/conversations/{session_id}/release"),
        ("post", "/v1/support/conversations/{session_id}/resolve"),
        ("get", "/v1/support/suggestions"),
        ("post", "/v1/support/suggestions/{suggestion_id}/approve"),
        ("post", "/v1/support/suggestions/{suggestion_id}/reject"),
        ("get", "/v1/support/handoff-stats"),
    }
    assert_documented(create_app().openapi(), "support", routes)
