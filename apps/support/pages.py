"""``/chat`` and ``/agent``: the customer chat page and the agent console (static HTML + JS)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
