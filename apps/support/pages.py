"""``/chat`` and ``/agent``: the customer chat page and the agent console (static HTML + JS).

The pages are plain files in ``web/`` (no build step, no CDN: they work offline); their
scripts call the ``/v1/support`` API with the caller's token, so the pages themselves need
no auth and hold no data. Every response carries a Content-Security-Policy that only lets
the service's own scripts, styles and API run (no inline script), which is a second line of
defence behind the scripts' rule of never rendering stored text as HTML. ``/chat`` may be
framed by any site (it is the embeddable widget); ``/agent`` may not.
"""

from __future__ import annotations

import re
from pathlib import Path as FsPath

from fastapi import APIRouter, Path
from fastapi.responses import Response

from aigc_apps.serve.errors import ApiError

WEB = FsPath(__file__).resolve().parent / "web"
ASSET_PREFIX = "/support-web"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\.[a-z]+")
# Everything from this origin only; no inline script or style, no plugins, no <base>.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}"
)

router = APIRouter(include_in_schema=False)


def _headers(ancestors: str) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": CSP.format(ancestors=ancestors),
        "X-Content-Type-Options": "nosniff",
        # the chat URL may carry a token: never send it on to another site
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }
    if ancestors == "'none'":
        headers["X-Frame-Options"] = "DENY"  # for browsers that predate frame-ancestors
    return headers


def _file(name: str, *, ancestors: str = "'none'") -> Response:
    """``web/<name>`` with its content type; 404 for anything that is not a file there.

    Only plain names are accepted (no ``/``, no ``..``, no leading dot), and the name must be
    one of the folder's own files, so nothing outside ``web/`` can ever be read.
    """
    path = WEB / name
    kind = CONTENT_TYPES.get(path.suffix)
    if not SAFE_NAME.fullmatch(name) or kind is None or name not in _listing():
        raise ApiError(404, f"no page asset named {name!r}", "not_found_error", "not_found")
    return Response(path.read_bytes(), media_type=kind, headers=_headers(ancestors))


def _listing() -> set[str]:
    return {p.name for p in WEB.iterdir() if p.is_file()}


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
