"""``/sentiment``: the analysts' live dashboard (static HTML + JS over the sentiment API).

The page and its assets are plain files in ``web/`` served by
:class:`aigc_apps.serve.pages.PageFiles` (strict CSP, nosniff, nothing outside ``web/``).
The script reads ``/v1/sentiment`` with the token the analyst types in (``sentiment:read``),
so the page itself needs no auth and holds no data.
"""

from __future__ import annotations

from pathlib import Path as FsPath

from fastapi import APIRouter, Path
from fastapi.responses import Response

from aigc_apps.serve.pages import PageFiles

WEB = PageFiles(FsPath(__file__).resolve().parent / "web")
ASSET_PREFIX = "/sentiment-web"

router = APIRouter(include_in_schema=False)


@router.get("/sentiment")
def dashboard() -> Response:
    """The dashboard (may not be framed by other sites)."""
    return WEB.response("dashboard.html")


@router.get(ASSET_PREFIX + "/{name}")
def asset(name: str = Path(max_length=64)) -> Response:
    """The dashboard's script and style."""
    return WEB.response(name)
