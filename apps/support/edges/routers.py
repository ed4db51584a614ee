"""Everything the support app serves: the customer routes, the agents' routes, the pages."""

from __future__ import annotations

from fastapi import APIRouter

from . import agent_api, api, pages

router = APIRouter()
for part in (api.routes, agent_api.router, pages.router):
    router.include_router(part)
