"""Lazy package exports: ``from pkg import Name`` loads the module that defines it on first use.

Packages re-export their public API from heavy modules (torch, scikit-learn, faiss); eager
imports in ``__init__`` would make ``import pkg`` and every ``aigc --help`` pay for all of
them. A package lists ``{name: module}`` and installs the returned hooks:

    __getattr__, __dir__ = lazy_exports(__name__, {"SupportBot": ".bot"})
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module-level ``__getattr__`` and ``__dir__`` for ``package`` (PEP 562)."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
