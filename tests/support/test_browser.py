"""The chat page and the agent console in a real browser, against a real ``aigc serve``.

Browser and CLI helpers: ``tests/browser.py``. Screenshots of both pages go to the test's folder;
with ``AIGC_UPDATE_SCREENSHOTS=1`` they also replace the README's ``docs/img/support-*.png``.
"""

from __future__ import annotations

import contextlib
import csv
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from tests.browser import aigc, keep_screenshot, launch, need_browser
from tests.serve.conftest import aigc_serve

ROOT = Path(__file__).resolve().parents[2]
KB = ROOT / "data" / "support" / "kb"
XSS = '<script>window.__xss=1</script> <img src=x onerror="window.__xss=1"> is this shown?'
ANSWER_S = 120_000  # ms: the first answer loads the encoder in the server


def _faq_intent(example: str) -> str:
    """The sample knowledge base's intent whose example questions include ``example``."""
    with (KB / "templates.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            if any(example.lower() in q.lower() for q in row[1].split("|")):
                return row[0]
    raise AssertionError(f"no template asks {example!r}")


@pytest.fixture
def support_server(workspace: Path, tmp_path: Path) -> Iterator[dict[str, str]]:
    """``aigc serve`` on a workspace with the sample knowledge base, a chat token and two
    agents' tokens (Alice's and Bob's)."""
    need_browser()  # before the set-up: a skip should not cost an ingest
    aigc(workspace, "support", "ingest", str(KB))
    chat = aigc(workspace, "tokens", "create", "--name", "web-chat", "--scope", "support:chat")
    agent = aigc(workspace, "tokens", "create", "--name", "alice", "--scope", "support:agent",
                 "--agent", "Alice")
    rival = aigc(workspace, "tokens", "create", "--name", "bob", "--scope", "support:agent",
                 "--agent", "Bob")
    with aigc_serve([], workspace, log=tmp_path / "serve.log") as url:
        yield {"url": url, "chat": chat.strip(), "agent": agent.strip(), "rival": rival.strip()}


def test_pages_headers_and_assets() -> None:
    """The pages' security headers, content types, and no file outside ``web/``."""
    from fastapi.testclient import TestClient

    from aigc_apps.serve.app import create_app

    client = TestClient(create_app())
    chat, agent = client.get("/chat"), client.get("/agent")
    for page in (chat, agent):
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["x-content-type-options"] == "nosniff"
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "<script>" not in page.text  # only <script src>: the CSP allows no inline code
    assert "frame-ancestors *" in chat.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in agent.headers["content-security-policy"]
    assert agent.headers["x-frame-options"] == "DENY"
    embed = client.get("/chat/embed.js")
    assert embed.status_code == 200 and "javascript" in embed.headers["content-type"]
    assert client.get("/support-web/style.css").headers["content-type"].startswith("text/css")
    for name in ("chat.js", "agent.js", "common.js"):
        assert "javascript" in client.get(f"/support-web/{name}").headers["content-type"]
    for bad in ("pages.py", "nope.js", ".hidden.css", "..%2Fpages.py", "%2e%2e%2fapi.py"):
        assert client.get(f"/support-web/{bad}").status_code == 404, bad
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p in ("/chat", "/agent") or p.startswith("/support-web")]


@contextmanager
def _host_page(html: str) -> Iterator[str]:
    """A page on another origin (localhost, not 127.0.0.1) that embeds the service."""
    body = html.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _Link:
    """A TCP relay in front of the server whose connections can be cut: the customer's
    network dropping mid-conversation (new connections are refused until ``restore``)."""

    def __init__(self, target: str) -> None:
        self.target = ("127.0.0.1", int(target.rsplit(":", 1)[1]))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.open: set[socket.socket] = set()
        self.down = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.open |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self.open.discard(src)
            src.close()

    def cut(self) -> None:
        self.down = True
        for s in list(self.open):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self.down = False

    def close(self) -> None:
        self.cut()
        self.listener.close()


class _HeldReads:
    """GETs of one conversation that wait until :meth:`release` (see _hold_session_reads)."""

    def __init__(self, page: Any, path: str) -> None:
        self.path, self.holding = path, True
        self.waiting: list[Any] = []
        page.route(lambda url: urlparse(url).path == path, self._hold)

    def _hold(self, route: Any) -> None:
        if self.holding and route.request.method == "GET":
            self.waiting.append(route)
        else:
            route.continue_()

    def release(self) -> None:
        assert self.waiting, f"the page did not read {self.path}"
        self.holding = False
        for route in self.waiting:
            route.continue_()


def _hold_session_reads(page: Any, session: str) -> _HeldReads:
    """Hold the page's ``GET /v1/support/sessions/<session>`` (the read after a send) so
    that the event stream's update arrives before it: the order a loaded machine gives."""
    return _HeldReads(page, f"/v1/support/sessions/{session}")


def _no_script_ran(page: Any) -> None:
    assert page.evaluate("() => window.__xss") is None
    assert page.locator(".messages img, .cards img").count() == 0


@pytest.mark.slow
def test_handoff_in_the_browser(support_server: dict[str, str], tmp_path: Path) -> None:
    """A customer and two agents, each in their own browser context, through one handoff:
    cited answer, queue, take (and a lost race), live reply, dropped connection, release,
    resolve, a new conversation, a suggestion approved; markup typed by the customer stays
    text on every page."""
    from playwright.sync_api import expect, sync_playwright

    url, chat_token, agent_token, rival_token = (
        support_server[k] for k in ("url", "chat", "agent", "rival"))
    # the tokens are scoped: the chat token cannot work the queue
    denied = httpx.get(f"{url}/v1/support/queue",
                       headers={"Authorization": f"Bearer {chat_token}"}, timeout=30)
    assert denied.status_code == 403, denied.text
    shots = tmp_path / "screenshots"
    shots.mkdir()
    csp_errors: list[str] = []

    def watch(page: Any) -> Any:
        page.on("console", lambda m: csp_errors.append(m.text)
                if "Content Security Policy" in m.text else None)
        return page

    with sync_playwright() as pw:
        link = _Link(url)  # the customer's network, which drops in step 6
        browser = launch(pw)
        try:
            customer = watch(browser.new_context(viewport={"width": 560, "height": 860}).new_page())
            console = browser.new_context(viewport={"width": 1360, "height": 860})
            agent, rival = watch(console.new_page()), watch(console.new_page())

            # 1. an FAQ: the cited template answer
            customer.goto(f"{link.url}/chat?token={chat_token}")
            customer.evaluate("() => { window.__sameDocument = true; }")
            # by keyboard: Tab reaches Send, which shows where the focus is; Enter sends
            customer.get_by_label("Your message").fill("Where can I track my package?")
            customer.keyboard.press("Tab")
            expect(customer.get_by_role("button", name="Send")).to_be_focused()
            assert customer.evaluate(
                "() => getComputedStyle(document.activeElement).outlineStyle") != "none"
            customer.keyboard.press("Enter")
            first = customer.locator(".msg-bot").first
            expect(first).to_contain_text("Track package", timeout=ANSWER_S)
            source = first.locator(".source-title").first
            expect(source).to_be_visible()
            expect(source).to_contain_text(_faq_intent("How can I track my package?"))
            session = parse_qs(urlparse(customer.url).query)["session"][0]

            # 2. asking for a person: pending, first in the queue; markup typed while waiting.
            #    The page's read of the conversation after the send is held until the event
            #    stream has said "pending" (which the live watch may do first on a busy
            #    machine): the queue position stays, whichever update comes last.
            held = _hold_session_reads(customer, session)
            customer.get_by_role("button", name="Talk to a person").click()
            banner = customer.locator("#banner")
            expect(banner).to_contain_text("Waiting for a person", timeout=ANSWER_S)
            expect(customer.locator(".msg-system").last).to_contain_text(
                "Waiting for a person", timeout=30_000)  # only the stream brings it here
            held.release()
            expect(banner).to_contain_text("you are number 1 in the queue")
            expect(customer.get_by_label("Your message")).to_be_enabled()  # the send is over
            expect(banner).to_contain_text("you are number 1 in the queue")
            customer.get_by_label("Your message").fill(XSS)
            customer.get_by_role("button", name="Send").click()
            typed = customer.locator(".msg-customer .msg-text").last
            expect(typed).to_have_text(XSS, timeout=30_000)

            # 3. the agent console: log in with one's own token (it names the agent), see
            #    the conversation in the queue with the markup as text; a second agent (Bob)
            #    opens it too
            for page, name, token in ((agent, "Alice", agent_token), (rival, "Bob", rival_token)):
                page.goto(f"{url}/agent")
                page.get_by_label("Agent token").fill(token)
                page.get_by_role("button", name="Connect").click()
                expect(page.locator("#connection")).to_contain_text(f"Connected as {name}",
                                                                    timeout=30_000)
                expect(page.get_by_label("Act for agent")).to_be_hidden()
            card = agent.locator(f'#queue li[data-session="{session}"]')
            expect(card).to_be_visible(timeout=30_000)
            expect(card).to_contain_text(XSS)
            rival.get_by_role("button", name=f"Open conversation {session}").click()
            expect(rival.locator("#conv-messages")).to_contain_text(XSS, timeout=30_000)

            # 4. Alice takes it; Bob is too late and is told so
            card.get_by_role("button", name=f"Take conversation {session}").focus()
            agent.keyboard.press("Enter")
            expect(banner).to_contain_text("You are chatting with Alice", timeout=30_000)
            expect(agent.locator("#conv-messages")).to_contain_text(XSS)
            expect(agent.locator(f'#mine li[data-session="{session}"]')).to_be_visible(
                timeout=30_000)
            rival.get_by_role("button", name="Take", exact=True).click()
            expect(rival.locator("#error")).to_contain_text("Another agent took", timeout=30_000)

            # 5. Alice replies; the customer sees it live, in the same document
            reply = "Hi, this is Alice. Your parcel left our warehouse this morning."
            agent.get_by_label("Your reply").fill(reply)
            agent.get_by_role("button", name="Send reply").click()
            expect(customer.locator(".msg-agent").last).to_contain_text(reply, timeout=30_000)
            assert customer.evaluate("() => window.__sameDocument") is True  # no reload
            for page in (customer, agent, rival):
                _no_script_ran(page)
            customer.screenshot(path=str(shots / "support-chat.png"), full_page=True)
            agent.screenshot(path=str(shots / "support-agent.png"), full_page=True)

            # 6. the customer's connection drops; what Alice writes meanwhile arrives once
            #    the page has reconnected (after=<last message id>), once, without a reload
            link.cut()
            expect(customer.locator("#connection")).to_contain_text("Reconnecting",
                                                                    timeout=30_000)
            later = "Are you still there? The parcel number is in your order page."
            agent.get_by_label("Your reply").fill(later)
            agent.get_by_role("button", name="Send reply").click()
            expect(agent.locator(".msg-agent").last).to_contain_text(later, timeout=30_000)
            link.restore()
            expect(customer.locator("#connection")).to_have_text("Live", timeout=30_000)
            expect(customer.locator(".msg-agent").last).to_contain_text(later, timeout=30_000)
            expect(customer.locator(".msg-agent")).to_have_count(2)
            assert customer.evaluate("() => window.__sameDocument") is True
            #    the customer answers; once the send is over the banner still names Alice
            #    (the end of a send used to forget the agent: "chatting with a person")
            thanks = "Thanks, I will look there."
            customer.get_by_label("Your message").fill(thanks)
            customer.get_by_role("button", name="Send").click()
            expect(agent.locator("#conv-messages")).to_contain_text(thanks, timeout=30_000)
            expect(customer.get_by_label("Your message")).to_be_enabled(timeout=30_000)
            expect(banner).to_have_text("You are chatting with Alice")

            # 7. Alice releases; the bot answers the next question
            agent.get_by_role("button", name="Release to the bot").click()
            expect(customer.locator("body")).to_have_attribute("data-state", "bot",
                                                               timeout=30_000)
            expect(banner).to_be_hidden()
            answers = customer.locator(".msg-bot").count()
            customer.get_by_label("Your message").fill("How long do I have to return an item?")
            customer.get_by_label("Your message").press("Enter")  # Enter sends, as in chats
            expect(customer.locator(".msg-bot")).to_have_count(answers + 1, timeout=ANSWER_S)
            expect(customer.locator(".msg-bot").last).to_contain_text("30 days")
            _no_script_ran(customer)

            # 8. Alice pulls the conversation in again and resolves it; the customer starts
            #    a new one. Her answer waits as a suggestion (the question shown as text)
            #    until she approves it.
            agent.get_by_role("button", name="Take", exact=True).click()
            expect(banner).to_contain_text("You are chatting with Alice", timeout=30_000)
            agent.get_by_role("button", name="Resolve").click()
            expect(banner).to_have_text("Resolved", timeout=30_000)
            expect(customer.get_by_label("Your message")).to_be_disabled()
            customer.get_by_role("button", name="Start a new conversation").click()
            expect(customer.locator(".msg")).to_have_count(0)
            customer.get_by_label("Your message").fill("Can I return an item?")
            customer.get_by_role("button", name="Send").click()
            expect(customer.locator(".msg-bot")).to_have_count(1, timeout=ANSWER_S)
            assert parse_qs(urlparse(customer.url).query)["session"][0] != session
            suggestion = agent.locator("#suggestions li").filter(has_text=reply)
            expect(suggestion).to_contain_text(XSS, timeout=30_000)
            _no_script_ran(agent)
            suggestion.get_by_label("Intent (optional)").fill("parcel_dispatched")
            suggestion.get_by_role("button", name="Approve").click()
            expect(agent.locator("#suggestions li")).to_have_count(0, timeout=ANSWER_S)
            expect(agent.locator("#error")).to_be_hidden()

            # 9. the widget: a page of another origin embeds the chat with one script tag;
            #    the console refuses to be framed
            with _host_page(f'<h1>Shop</h1><script src="{url}/chat/embed.js" '
                            f'data-token="{chat_token}"></script>'
                            f'<iframe src="{url}/agent" title="console"></iframe>') as shop:
                host = browser.new_page()
                host.goto(shop)
                frame = host.frame_locator("iframe[title='Support chat']")
                expect(frame.get_by_label("Your message")).to_be_visible(timeout=30_000)
                host.wait_for_function(
                    "() => document.querySelectorAll('iframe').length === 2")
                host.wait_for_timeout(500)
                assert not [f for f in host.frames if f.url.startswith(f"{url}/agent")
                            and f.locator("#token").count()], "/agent was framed"
        finally:
            browser.close()
            link.close()

    assert csp_errors == []
    for name in ("support-chat.png", "support-agent.png"):
        assert (shots / name).stat().st_size > 10_000
        keep_screenshot(shots / name, name)
