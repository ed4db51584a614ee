"""``/v1/support`` agent routes: the handoff queue, take-over, replies, suggestions."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/support", tags=["support"])
