"""``/sentiment``: the analysts' live dashboard (static HTML + JS over the sentiment API)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
