"""The support app's 0.2 module paths (before its sub-packages) keep working for a release."""

from __future__ import annotations

import importlib
import sys

import pytest


def test_an_old_module_path_imports_the_new_module_with_a_warning() -> None:
    sys.modules.pop("apps.support.handoff", None)
    from apps.support.people import handoff

    with pytest.warns(DeprecationWarning, match="apps.support.handoff moved to"):
        old = importlib.import_module("apps.support.handoff")
    # one class, one copy of the state: the alias reads the new module
    assert old.Conversations is handoff.Conversations
    assert old is not handoff


def test_the_deprecated_bot_module_still_has_support_bot() -> None:
    sys.modules.pop("apps.support.bot", None)
    with pytest.warns(DeprecationWarning):
        from apps.support.bot import SupportBot  # type: ignore[attr-defined]
    from apps.support import SupportBot as current

    assert SupportBot is current


def test_a_package_that_took_a_module_name_finds_the_old_modules_names() -> None:
    from apps.support.answers.reply import HANDOFF_REPLY
    from apps.support.knowledge.changes import Knowledge

    with pytest.warns(DeprecationWarning, match="apps.support.answers.HANDOFF_REPLY moved"):
        from apps.support.answers import HANDOFF_REPLY as old_reply  # type: ignore[attr-defined]
    with pytest.warns(DeprecationWarning):
        from apps.support.knowledge import Knowledge as old_knowledge  # type: ignore[attr-defined]
    assert old_reply == HANDOFF_REPLY
    assert old_knowledge is Knowledge
    with pytest.raises(ImportError):
        from apps.support.answers import no_such_name  # type: ignore[attr-defined]  # noqa: F401


def test_unknown_paths_are_still_errors() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("apps.support.no_such_module")
