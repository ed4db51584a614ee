"""Static pages of an app: files from a package folder, served with strict security headers.

The apps' browser pages are plain files (no build step, no CDN: they work offline) whose
scripts call the app's API with the caller's token, so the pages need no auth and hold no
data. Every response carries a Content-Security-Policy that only lets the service's own
scripts, styles and API run (no inline script): a second line of defence behind the
scripts' rule of never rendering stored text as HTML.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.responses import Response

from .errors import ApiError

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


def page_headers(ancestors: str = "'none'") -> dict[str, str]:
    """CSP, nosniff and no referrer; ``ancestors`` is who may frame the page."""
    headers = {
        "Content-Security-Policy": CSP.format(ancestors=ancestors),
        "X-Content-Type-Options": "nosniff",
        # a page URL may carry a token: never send it on to another site
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }
    if ancestors == "'none'":
        headers["X-Frame-Options"] = "DENY"  # for browsers that predate frame-ancestors
    return headers


class PageFiles:
    """The files of one folder (``web/`` next to an app's ``pages.py``), by plain name."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()

    def response(self, name: str, *, ancestors: str = "'none'") -> Response:
        """``<folder>/<name>`` with its content type; 404 for anything that is not a file there.

        Only plain names are accepted (no ``/``, no ``..``, no leading dot), and the name must
        be one of the folder's own files, so nothing outside the folder can ever be read.
        """
        path = self.folder / name
        kind = CONTENT_TYPES.get(path.suffix)
        if not SAFE_NAME.fullmatch(name) or kind is None or name not in self._listing():
            raise ApiError(404, f"no page asset named {name!r}", "not_found_error", "not_found")
        return Response(path.read_bytes(), media_type=kind, headers=page_headers(ancestors))

    def _listing(self) -> set[str]:
        return {p.name for p in self.folder.iterdir() if p.is_file()}
