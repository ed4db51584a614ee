"""Everything the sentiment app serves: the API routes and the dashboard page."""

from __future__ import annotations

from fastapi import APIRouter

from . import api, pages

router = APIRouter()
for part in (api.router, pages.router):
    router.include_router(part)
