"""The ``/sentiment`` dashboard in a real browser, against a real ``aigc serve``.

A workspace with a tiny trained model (random-init BERT + LoRA, so labels are arbitrary but
real), two watch-list topics and 36 hours of documents posted through the API, with a
volume surge that fires an alert. The page must draw what the API says, pick up new
documents by itself, list the documents behind each alert and the latest negative ones
(stored markup shown as text), and need a ``sentiment:read`` token. Browser helpers:
``tests/browser.py``; with ``AIGC_UPDATE_SCREENSHOTS=1`` the screenshot replaces
``docs/img/sentiment-dashboard.png``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import ROOT, aigc, keep_screenshot, launch, need_browser
from tests.serve.conftest import aigc_serve

HEADLINES = ROOT / "data" / "sentiment" / "headlines.csv"
TEXTS = {"banking": ("Lender shares plunge", "Bank profits rise", "Lender holds meeting"),
         "energy": ("Crude oil slumps", "Oil output rises", "Crude stocks steady")}
WAIT = 30_000  # ms
XSS = '<img src=x onerror="window.__xss=1"> Bank <b>plunge</b><script>window.__xss=1</script>'


def feed(start: datetime) -> list[dict[str, Any]]:
    """36 hours from ``start``: banking 10 an hour with a surge of 30 in hours 30 and 31
    (a volume alert), energy 4 an hour; in each surge hour one banking document is markup
    that must stay text wherever the page lists documents."""
    docs: list[dict[str, Any]] = []
    for h in range(36):
        for topic, count in (("banking", 30 if h in (30, 31) else 10), ("energy", 4)):
            for i in range(count):
                at = start + timedelta(hours=h, minutes=i * 50 // count)
                docs.append({"id": f"{topic}-{h}-{i}", "source": "wire",
                             "text": f"{TEXTS[topic][i % 3]} #{h}.{i}",
                             "published_at": at.isoformat()})
    for h in (30, 31):
        at = start + timedelta(hours=h, minutes=55)
        docs.append({"id": f"markup-{h}", "source": "blog", "text": f"{XSS} #{h}",
                     "published_at": at.isoformat()})
    return docs


def _post(url: str, token: str, docs: list[dict[str, Any]]) -> dict[str, Any]:
    resp = httpx.post(f"{url}/v1/sentiment/documents", json={"documents": docs},
                      headers={"Authorization": f"Bearer {token}"}, timeout=300)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _get(url: str, token: str, path: str, **params: str) -> dict[str, Any]:
    resp = httpx.get(f"{url}/v1/sentiment/{path}", params=params,
                     headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


@pytest.fixture
def dashboard_server(workspace: Path, tiny_encoder_dir: Path,
                     tmp_path: Path) -> Iterator[dict[str, str]]:
    """``aigc serve`` on a workspace with a tiny model, two topics, a day and a half of
    documents with an alert, a read token and a write token."""
    need_browser()  # before the set-up: a skip should not cost a training run
    aigc(workspace, "sentiment", "train", "--data", str(HEADLINES), "--name", "tiny",
         "--base", str(tiny_encoder_dir), "--max-steps", "3", "--batch-size", "8",
         "--max-length", "32")
    aigc(workspace, "sentiment", "topics", "add", "banking", "--keywords", "lender, bank")
    aigc(workspace, "sentiment", "topics", "add", "energy", "--keywords", "oil, crude")
    read = aigc(workspace, "tokens", "create", "--name", "analyst", "--scope", "sentiment:read")
    write = aigc(workspace, "tokens", "create", "--name", "feed", "--scope", "sentiment:write")
    with aigc_serve([], workspace, log=tmp_path / "serve.log") as url:
        start = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
        report = _post(url, write.strip(), feed(start - timedelta(hours=36)))
        assert report["stored"] == 36 * 14 + 40 + 2 and report["alerts"], report
        yield {"url": url, "read": read.strip(), "write": write.strip()}


def test_dashboard_headers_and_assets() -> None:
    """The page's security headers and content types; nothing outside ``web/``."""
    from fastapi.testclient import TestClient

    from aigc_apps.serve.app import create_app

    client = TestClient(create_app())
    page = client.get("/sentiment")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "<script>" not in page.text  # only <script src>: the CSP allows no inline code
    assert "javascript" in client.get("/sentiment-web/dashboard.js").headers["content-type"]
    assert client.get("/sentiment-web/dashboard.css").headers["content-type"].startswith(
        "text/css")
    for bad in ("pages.py", "nope.js", ".hidden.css", "..%2Fpages.py", "%2e%2e%2fapi.py"):
        assert client.get(f"/sentiment-web/{bad}").status_code == 404, bad
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p == "/sentiment" or p.startswith("/sentiment-web")]


def _expect_docs(page: Any, selector: str, docs: list[dict[str, Any]]) -> None:
    """The page lists ``docs`` under ``selector``: texts, labels, sources, in order."""
    from playwright.sync_api import expect

    items = page.locator(f"{selector} li.doc")
    expect(items.locator(".doc-text")).to_have_text([d["text"] for d in docs], timeout=WAIT)
    expect(items.locator(".label")).to_have_text([d["label"] for d in docs])
    assert page.evaluate(
        "sel => Array.from(document.querySelectorAll(`${sel} li.doc`)).map(li => "
        "[li.dataset.source, li.dataset.id, li.querySelector('.doc-when').textContent])",
        selector) == [[d["source"], d["id"], " · " + d["published_at"][:16].replace("T", " ")
                       + " UTC · " + d["source"]] for d in docs]


def _expect_negatives(page: Any, url: str, read: str, **params: str) -> list[dict[str, Any]]:
    """The latest negative items panel shows what the API lists (or says there are none)."""
    from playwright.sync_api import expect

    negatives = _get(url, read, "documents", label="negative", limit="10", **params)
    docs: list[dict[str, Any]] = negatives["documents"]
    assert all(d["label"] == "negative" for d in docs)
    _expect_docs(page, "#negatives", docs)
    if docs:
        expect(page.locator("#no-negatives")).to_be_hidden()
    else:  # the tiny model may call nothing negative: the panel must say so
        expect(page.locator("#no-negatives")).to_be_visible()
    return docs


def _page_counts(page: Any, topic: str) -> dict[str, int]:
    """The dashboard's figures table for ``topic``: bucket start -> volume."""
    return dict(page.evaluate(
        """topic => Object.fromEntries(Array.from(document.querySelectorAll(
             `figure[data-topic="${topic}"] tbody tr`)).map(r =>
             [r.dataset.start, Number(r.querySelector('.count').textContent)]))""", topic))


@pytest.mark.slow
def test_dashboard_in_the_browser(dashboard_server: dict[str, str], tmp_path: Path) -> None:
    """Token, charts that match the API, the alert, a text scored with its markup shown as
    text, live updates without a reload, the topic and bucket controls, and a screenshot."""
    from playwright.sync_api import expect, sync_playwright

    url, read, write = (dashboard_server[k] for k in ("url", "read", "write"))
    denied = httpx.get(f"{url}/v1/sentiment/trends", timeout=30)
    assert denied.status_code == 401  # tokens exist: the API is closed without one
    csp_errors: list[str] = []
    shot = tmp_path / "sentiment-dashboard.png"
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_context(viewport={"width": 1360, "height": 900}).new_page()
            page.on("console", lambda m: csp_errors.append(m.text)
                    if "Content Security Policy" in m.text else None)
            page.goto(f"{url}/sentiment")
            page.evaluate("() => { window.__sameDocument = true; }")
            expect(page.locator("#error")).to_contain_text("sentiment:read", timeout=WAIT)

            # the token, typed and submitted by keyboard
            page.get_by_label("Read token").fill(read)
            page.get_by_label("Read token").press("Enter")
            expect(page.locator("#status")).to_contain_text("Updated", timeout=WAIT)
            expect(page.locator("#error")).to_be_hidden()
            assert page.evaluate("() => sessionStorage.getItem('sentiment-token')") == read

            # a chart per topic, drawn, with axes, a legend, and the API's figures
            api = _get(url, read, "trends", bucket="1h", since="48h")
            assert set(api["series"]) == {"all", "banking", "energy"}  # all: every record
            legend = page.locator("#legend li")
            expect(legend).to_have_text(["Negative", "Neutral", "Positive",
                                         "Volume (documents)", "Alert fired"])
            for topic, series in api["series"].items():
                figure = page.locator(f'figure[data-topic="{topic}"]')
                expect(figure.locator("figcaption")).to_contain_text(topic)
                expect(figure.locator("g.bucket")).to_have_count(len(series))
                drawn = sum(1 for b in series for k in ("negative", "neutral", "positive")
                            if b[k])
                expect(figure.locator("rect.share")).to_have_count(drawn)
                expect(figure.locator("rect.vol")).to_have_count(
                    sum(1 for b in series if b["count"]))
                assert figure.locator("text.tick").count() >= 5  # y ticks and time labels
                assert _page_counts(page, topic) == {b["bucket_start"]: b["count"]
                                                     for b in series}
            # the alert: listed as the API has it, and marked on its topic's chart
            alerts = _get(url, read, "alerts", since="48h")["alerts"]
            assert alerts and alerts[0]["topic"] == "banking"
            items = page.locator("#alerts li.alert")
            expect(items).to_have_count(len(alerts))
            expect(items.first).to_contain_text(alerts[0]["message"])
            expect(page.locator('figure[data-topic="banking"] .alert-mark')).to_have_count(
                len({a["bucket_start"] for a in alerts if a["topic"] == "banking"}))

            # under each alert, the documents that drove it, as the API lists them; the
            # markup documents of the surge hours are among them, shown as text
            markup = 0
            for alert in alerts[:10]:
                docs = _get(url, read, f"alerts/{alert['id']}/documents", limit="50")
                found = docs["documents"]
                assert found and all("banking" in d["topics"] for d in found)
                _expect_docs(page, f'#alerts li.alert[data-id="{alert["id"]}"]', found)
                markup += sum(1 for d in found if d["text"].startswith(XSS))
            assert markup >= 1
            expect(page.locator("#alerts .doc-text").filter(has_text=XSS)).to_have_count(markup)
            # the latest negative items, across topics, over the charts' period
            negatives = _expect_negatives(page, url, read, since="48h")
            assert page.locator("#alerts img, #alerts script, #negatives img, "
                                "#negatives script").count() == 0
            assert page.evaluate("() => window.__xss") is None

            # a text scored on the page: markup in it stays text, no script runs
            page.get_by_label("Text to score").fill(XSS)
            page.get_by_role("button", name="Score", exact=True).click()
            scored = page.locator("#scored .scored-text")
            expect(scored).to_have_text(XSS, timeout=WAIT)
            expect(page.locator("#scored .scored-topics")).to_contain_text("banking")
            assert page.evaluate("() => window.__xss") is None
            assert page.locator("#scored img, #scored script").count() == 0
            page.screenshot(path=str(shot), full_page=True)

            # new documents show up by themselves (polling), in the same document
            banking = page.locator('figure[data-topic="banking"] .topic-total')
            before = int(banking.text_content().split()[1])  # " · N documents"
            now = datetime.now(timezone.utc) - timedelta(seconds=5)
            fresh = [{"id": f"live-{i}", "text": f"Lender shares plunge again {i}",
                      "published_at": now.isoformat()} for i in range(7)]
            assert _post(url, write, fresh)["stored"] == 7
            expect(banking).to_have_text(f" · {before + 7} documents", timeout=WAIT)
            if _get(url, read, "documents", label="negative", limit="10", since="48h"
                    )["documents"] != negatives:  # the panel follows without a reload
                _expect_negatives(page, url, read, since="48h")
            assert page.evaluate("() => window.__sameDocument") is True
            latest = _get(url, read, "trends", bucket="1h", since="48h")["series"]["banking"]
            assert _page_counts(page, "banking") == {b["bucket_start"]: b["count"]
                                                     for b in latest}

            # the controls: one topic, day buckets
            page.get_by_label("Topic", exact=True).select_option("energy")
            expect(page.locator("figure.topic-chart")).to_have_count(1, timeout=WAIT)
            expect(page.locator("figure.topic-chart")).to_have_attribute("data-topic", "energy")
            expect(items).to_have_count(0, timeout=WAIT)  # energy had no alert
            energy_negatives = _expect_negatives(page, url, read, since="48h", topic="energy")
            assert all("energy" in d["topics"] for d in energy_negatives)
            page.get_by_label("Bucket", exact=True).select_option("1d")
            daily = _get(url, read, "trends", bucket="1d", since="30d", topic="energy")
            expect(page.locator('figure[data-topic="energy"] g.bucket')).to_have_count(
                len(daily["series"]["energy"]), timeout=WAIT)
            assert _page_counts(page, "energy") == {b["bucket_start"]: b["count"]
                                                    for b in daily["series"]["energy"]}
        finally:
            browser.close()

    assert csp_errors == []
    assert shot.stat().st_size > 10_000
    keep_screenshot(shot, "sentiment-dashboard.png")


@pytest.mark.slow
def test_dashboard_open_server_needs_no_token(workspace: Path, tmp_path: Path) -> None:
    """A loopback server with no tokens: the page loads without one and says there is no
    data yet (nothing trained, nothing stored)."""
    need_browser()
    from playwright.sync_api import expect, sync_playwright

    with aigc_serve([], workspace, log=tmp_path / "serve.log") as url, \
            sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page()
            page.goto(f"{url}/sentiment")
            expect(page.locator("#status")).to_contain_text("Updated", timeout=WAIT)
            expect(page.locator("#error")).to_be_hidden()
            expect(page.locator("#no-data")).to_be_visible()
            expect(page.locator("#no-alerts")).to_be_visible()
            expect(page.locator("figure.topic-chart")).to_have_count(0)  # no series at all
        finally:
            browser.close()
