"""Deprecated home of the support bot: :class:`SupportBot` is now :class:`SupportService`.

The names that lived here (replies, prompts, question checks) are re-exported from
:mod:`apps.support.answers.reply` so that code importing them from
``apps.support.answers.bot`` keeps working for one release.
"""

from __future__ import annotations

import warnings
from typing import Any

from ..knowledge.retrieval import index_dir_for
from ..service import SupportService
from .reply import (
    ANAPHORA,
    FOLLOW_UP_OPENERS,
    HANDOFF_REPLY,
    MAX_QUESTION_CHARS,
    QUOTES,
    SAFE_QUOTES,
    SYSTEM_PROMPT,
    BotReply,
    Decision,
    clean_question,
    is_follow_up,
    whole_sentences,
)

__all__ = [
    "ANAPHORA",
    "FOLLOW_UP_OPENERS",
    "HANDOFF_REPLY",
    "MAX_QUESTION_CHARS",
    "QUOTES",
    "SAFE_QUOTES",
    "SYSTEM_PROMPT",
    "BotReply",
    "Decision",
    "SupportBot",
    "clean_question",
    "index_dir_for",
    "is_follow_up",
    "whole_sentences",
]


class SupportBot(SupportService):
    """Deprecated: use :class:`SupportService` (same arguments, same methods).

    Unlike the 0.1.0 bot it opens nothing in ``__init__``: the database, the encoder and the
    index load on first use.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        warnings.warn(
            "SupportBot is deprecated and will be removed in the next release; use "
            "apps.support.SupportService (same arguments)",
            FutureWarning,  # shown to users by default, unlike DeprecationWarning
            stacklevel=2,
        )
        super().__init__(*args, **kwargs)
