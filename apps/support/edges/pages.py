"""``/chat`` and ``/agent``: the customer chat page and the agent console (static HTML + JS).

The pages are plain files in ``web/`` served by :class:`aigc_apps.serve.pages.PageFiles`
(strict CSP, nosniff, no path outside ``web/``); their scripts call the ``/v1/support`` API
with the caller's token, so the pages themselves need no auth and hold no data. ``/chat`` may be
framed by any site (it is the embeddable widget); ``/agent`` may not.
"""

from __future__ import annotations

from pathlib import Path as FsPath

from fastapi import APIRouter, Path
from fastapi.responses import Response

from aigc_apps.serve.pages import PageFiles

WEB = PageFiles(FsPath(__file__).resolve().parent.parent / "web")
ASSET_PREFIX = "/support-web"

router = APIRouter(include_in_schema=False)


def _file(name: str, *, ancestors: str = "'none'") -> Response:
    return WEB.response(name, ancestors=ancestors)


@router.get("/chat")
def chat_page() -> Response:
    """The customer chat (``?token=`` a chat-scoped token, ``?session=`` to resume)."""
    return _file("chat.html", ancestors="*")


@router.get("/chat/embed.js")
def chat_embed() -> Response:
    """A script tag's way in: it adds an iframe of ``/chat`` to the embedding page."""
    return _file("embed.js", ancestors="*")


@router.get("/agent")
def agent_page() -> Response:
    """The agent console (the agent types a ``support:agent`` token into it)."""
    return _file("agent.html")


@router.get(ASSET_PREFIX + "/{name}")
def asset(name: str = Path(max_length=64)) -> Response:
    """The pages' scripts and styles."""
    return _file(name)
